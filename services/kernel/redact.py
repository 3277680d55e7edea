"""Secrets out of what is printed and logged: the password, or the token, in a URL's user part, and
NATS nkey seeds (`nats.nkey`, the seed in a `nats.creds` file)."""

from __future__ import annotations

import logging
import re

HIDDEN = "***"
# scheme://user:password@ or scheme://token@, as in nats://darkroom:s3cret@host:4222
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/@:]*)(?P<password>:[^\s/@]*)?@")

# A seed: S, then the key's kind (User, Account, Operator, Server, Cluster), base32 to 58 characters.
_SEED = re.compile(r"\bS[UAONC][A-Z2-7]{56}\b")


def _hide(match: re.Match[str]) -> str:
    if match.group("password") is None:  # a lone token is the secret itself
        return f"{match.group('scheme')}{HIDDEN}@"
    return f"{match.group('scheme')}{match.group('user')}:{HIDDEN}@"


def redact(text: str) -> str:
    return _SEED.sub(HIDDEN, _USERINFO.sub(_hide, text))


class RedactSecrets(logging.Filter):
    """Rewrites each record, exception text included, before any handler formats it."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def redact_logs() -> None:
    """Every handler of the root logger (the one logging.basicConfig made) redacts what it writes."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets())
