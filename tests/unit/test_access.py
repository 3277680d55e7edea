"""Pure parts of access control: the data folder's credentials, redaction, the same-origin rules."""

from __future__ import annotations

import logging
import stat
import sys
from pathlib import Path

import pytest

from darkroom.api.origin import cross_origin, wrong_body
from darkroom.kernel.credentials import CREDENTIALS_FILE, CredentialsError, for_data_folder, write_private
from darkroom.kernel.redact import RedactSecrets, redact


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_credentials_are_made_once_per_data_folder_and_only_its_owner_reads_them(tmp_path: Path) -> None:
    first = for_data_folder(tmp_path / "data")
    assert first.user == "darkroom" and len(first.password) >= 40
    assert mode(tmp_path / "data" / CREDENTIALS_FILE) == 0o600
    assert for_data_folder(tmp_path / "data") == first
    assert for_data_folder(tmp_path / "other") != first
    (tmp_path / "data" / CREDENTIALS_FILE).write_text("{not json")
    with pytest.raises(CredentialsError, match=CREDENTIALS_FILE):
        for_data_folder(tmp_path / "data")


def test_a_private_file_is_0600_even_where_a_readable_one_was(tmp_path: Path) -> None:
    path = tmp_path / "nats.url"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "nats://darkroom:pw@127.0.0.1:4222\n")
    assert mode(path) == 0o600 and path.read_text() == "nats://darkroom:pw@127.0.0.1:4222\n"
    assert [p.name for p in tmp_path.iterdir()] == ["nats.url"]


@pytest.mark.parametrize(
    "text, shown",
    [
        (
            "darkroom up: http://127.0.0.1:8080 (NATS nats://darkroom:s3cr-et_x@127.0.0.1:4222, data /d)",
            "darkroom up: http://127.0.0.1:8080 (NATS nats://darkroom:***@127.0.0.1:4222, data /d)",
        ),
        ("nats://a:p1@n1:4222,nats://a:p2@n2:4222", "nats://a:***@n1:4222,nats://a:***@n2:4222"),
        ("tls://t0ken@host:4222 refused", "tls://***@host:4222 refused"),
        ("no URL here, an address a@b and http://host/path@x", "no URL here, an address a@b and http://host/path@x"),
        (
            "bad seed SUAHEQ33WUVKNHQS2GNUHG3HOEAYQFA2NPG47I3Z4ZVD7OJXFG2RM3ASJQ in /etc/darkroom/darkroom.nk",
            "bad seed *** in /etc/darkroom/darkroom.nk",
        ),
        (
            "public key UAHEQ33WUVKNHQS2GNUHG3HOEAYQFA2NPG47I3Z4ZVD7OJXFG2RM3ASJ",
            "public key UAHEQ33WUVKNHQS2GNUHG3HOEAYQFA2NPG47I3Z4ZVD7OJXFG2RM3ASJ",
        ),
    ],
)
def test_redact_hides_the_secret_in_a_url_and_nothing_else(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_log_records_are_redacted_with_their_arguments_and_exceptions() -> None:
    record = logging.LogRecord("nats", logging.ERROR, __file__, 1, "connecting to %s", ("nats://u:pw@h:1",), None)
    try:
        raise OSError("nats://u:pw@h:1 is gone")
    except OSError:
        record.exc_info = sys.exc_info()
    assert RedactSecrets().filter(record)
    text = logging.Formatter().format(record)
    assert "pw" not in text and "connecting to nats://u:***@h:1" in text and "nats://u:***@h:1 is gone" in text


@pytest.mark.parametrize(
    "headers, refused",
    [
        ({}, False),  # not a browser: curl, scripts
        ({"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:8080"}, False),
        ({"Sec-Fetch-Site": "none"}, False),
        ({"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:3000"}, True),  # another port of this host
        ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, True),
        ({"Origin": "http://127.0.0.1:8080"}, False),  # an older browser: Origin only
        ({"Origin": "http://127.0.0.1:3000"}, True),
        ({"Origin": "null"}, True),
    ],
)
def test_a_request_from_another_origin_is_refused(headers: dict, refused: bool) -> None:
    assert (cross_origin(headers, "127.0.0.1:8080") is not None) == refused


@pytest.mark.parametrize(
    "content_type, has_body, multipart, refused",
    [
        ("application/json", True, False, False),
        ("application/json; charset=utf-8", True, False, False),
        (None, False, False, False),  # a POST without a body (cancel, commit)
        ("application/octet-stream", False, False, False),
        ("application/x-www-form-urlencoded", False, False, True),  # an empty form
        ("text/plain", True, False, True),
        ("text/plain;charset=UTF-8", False, False, True),
        ("application/x-www-form-urlencoded", True, False, True),
        ("multipart/form-data; boundary=x", True, False, True),
        ("multipart/form-data; boundary=x", True, True, False),  # the upload route
        (None, True, False, True),
        ("application/octet-stream", True, False, True),
    ],
)
def test_a_cookie_authenticated_body_must_be_json_or_an_upload(content_type, has_body, multipart, refused) -> None:
    assert (wrong_body(content_type, has_body, multipart) is not None) == refused
