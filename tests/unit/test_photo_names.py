"""services/kernel/photos.py: names are limited in bytes, so what is made of them fits a file system."""

from __future__ import annotations

from darkroom.kernel.photos import MAX_NAME_BYTES, name_key, printable, sanitize_folder, unsafe_name


def test_a_file_name_is_limited_in_bytes_not_characters() -> None:
    assert unsafe_name("a" * 196 + ".jpg") is None
    assert unsafe_name("日" * 65 + "a.jpg") is None  # 200 bytes
    assert unsafe_name("日" * 66 + ".jpg") == f"file name is longer than {MAX_NAME_BYTES} bytes"  # 70 characters


def test_a_file_name_that_was_not_utf8_is_refused_and_told_back_readably() -> None:
    name = b"bad\xff.jpg".decode("utf-8", "surrogateescape")  # as aiohttp reads a multipart header
    assert unsafe_name(name) == "file name is not valid UTF-8"
    assert printable(name) == "bad\ufffd.jpg"
    assert printable("ok.jpg") == "ok.jpg"


def test_a_folder_is_cut_to_200_bytes_at_a_character_boundary() -> None:
    folder = sanitize_folder("🎞" * 63)  # 252 bytes
    assert folder == "🎞" * 50 and len(folder.encode()) == 200
    assert sanitize_folder("é" * 150) == "é" * 100  # 100 characters, 200 bytes
    assert sanitize_folder("x" + "🎞" * 60) == "x" + "🎞" * 49  # the 50th would be cut in two: it goes


def test_a_name_key_is_the_same_in_every_project_and_exact() -> None:
    assert name_key("DSC01") == __import__("hashlib").sha256(b"DSC01").hexdigest()[:24]
    assert name_key("DSC01") != name_key("dsc01")
