"""services/kernel/natsauth.py: credentials out of the URL into options every server gets."""

from __future__ import annotations

import pytest

from darkroom.kernel.config import ConfigError, load_config
from darkroom.kernel.natsauth import connect_options, split_servers


def test_the_user_part_leaves_the_urls_and_becomes_options():
    servers, options = split_servers("nats://darkroom:s3cr%40t@nats-1:4222, nats://darkroom:s3cr%40t@nats-2:4222")
    assert servers == ["nats://nats-1:4222", "nats://nats-2:4222"]
    assert options == {"user": "darkroom", "password": "s3cr@t"}


def test_a_lone_user_part_is_a_token_and_urls_without_one_pass_as_they_are():
    assert split_servers("tls://t0ken@[::1]:4222") == (["tls://[::1]:4222"], {"token": "t0ken"})
    assert split_servers("nats://a:4222,b:4223") == (["nats://a:4222", "nats://b:4223"], {})


def test_servers_with_different_users_are_refused():
    with pytest.raises(ConfigError, match="different credentials"):
        split_servers("nats://a:1@x:4222,nats://b:2@y:4222")


def test_creds_nkey_and_tls_files_become_connect_options(tmp_path):
    creds, seed = tmp_path / "darkroom.creds", tmp_path / "darkroom.nk"
    creds.write_text("creds")
    seed.write_text("seed")
    config = load_config(tmp_path, environ={"DARKROOM_NATS__CREDS": str(creds)})
    assert connect_options("nats://x:4222", config.nats)[1] == {"user_credentials": str(creds)}
    config = load_config(tmp_path, environ={"DARKROOM_NATS__NKEY": str(seed)})
    assert connect_options("nats://x:4222", config.nats)[1] == {"nkeys_seed": str(seed)}


def test_a_missing_file_names_its_key(tmp_path):
    config = load_config(tmp_path, environ={"DARKROOM_NATS__TLS__CA": str(tmp_path / "nope.pem")})
    with pytest.raises(ConfigError, match="nats.tls.ca: cannot read"):
        connect_options("tls://x:4222", config.nats)


@pytest.mark.parametrize(
    "environ, key",
    [
        ({"DARKROOM_NATS__CREDS": "a", "DARKROOM_NATS__NKEY": "b"}, "nats.creds and nats.nkey"),
        ({"DARKROOM_NATS__TLS__CERT": "a"}, "nats.tls.cert and nats.tls.key"),
    ],
)
def test_settings_that_do_not_go_together_are_refused(tmp_path, environ, key):
    with pytest.raises(ConfigError, match=key):
        load_config(tmp_path, environ=environ)
