"""How a service signs in to NATS: the servers of `nats.url` with their user part taken out and
given as options (so servers learned from the cluster get them too), `nats.creds`, `nats.nkey`
and `nats.tls`, as nats-py's connect arguments."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .config import ConfigError, NatsConfig


def split_servers(url: str) -> tuple[list[str], dict[str, str]]:
    """`nats://u:p@a:4222,nats://u:p@b:4222` → the servers without credentials, and {user, password}
    (or {token}) once: nats-py sends a URL's own user part only to that URL's server."""
    servers, found = [], set()
    for part in (p.strip() for p in url.split(",")):
        if not part:
            continue
        split = urlsplit(part if "://" in part else f"nats://{part}")
        if split.username is not None:
            found.add((unquote(split.username), unquote(split.password) if split.password is not None else None))
        host = split.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{split.port}" if split.port else "")
        servers.append(urlunsplit((split.scheme, netloc, split.path, split.query, split.fragment)))
    if len(found) > 1:
        raise ConfigError("nats.url: the servers carry different credentials; Darkroom signs in as one user")
    if not found:
        return servers, {}
    user, password = found.pop()
    return servers, ({"token": user} if password is None else {"user": user, "password": password})


def connect_options(url: str, nats: NatsConfig | None = None) -> tuple[list[str], dict[str, Any]]:
    """The servers and the nats-py `connect` keyword arguments that sign in to them."""
    servers, user = split_servers(url)
    options: dict[str, Any] = dict(user)
    if nats is None:
        return servers, options
    if nats.creds:
        options["user_credentials"] = _readable(nats.creds, "nats.creds")
    if nats.nkey:
        options["nkeys_seed"] = _readable(nats.nkey, "nats.nkey")
    if nats.tls.ca or nats.tls.cert:
        options["tls"] = tls_context(nats)
    return servers, options


def tls_context(nats: NatsConfig) -> ssl.SSLContext:
    """Verifies the servers against `nats.tls.ca` (the system's CAs without it); presents `cert`."""
    ca = _readable(nats.tls.ca, "nats.tls.ca") if nats.tls.ca else None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        if nats.tls.cert and nats.tls.key:
            context.load_cert_chain(_readable(nats.tls.cert, "nats.tls.cert"), _readable(nats.tls.key, "nats.tls.key"))
    except ssl.SSLError as exc:
        raise ConfigError(f"nats.tls: {exc.reason or exc}") from None
    return context


def _readable(path: str, key: str) -> str:
    try:
        with Path(path).open("rb"):
            return path
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path} ({exc.strerror})") from None
