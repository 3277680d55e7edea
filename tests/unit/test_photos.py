"""services/kernel/photos.py: sidecars, upload part files and what a file's first bytes say."""

from __future__ import annotations

import pytest

from darkroom.kernel.photos import content_mismatch, is_upload_temp, sidecar_photo, upload_temp


@pytest.mark.parametrize(
    "name, photo",
    [
        ("DSC01.xmp", "DSC01"),
        ("DSC01.ARW.xmp", "DSC01"),
        ("DSC01.jpg.XMP", "DSC01"),
        ("My.Trip.xmp", "My.Trip"),  # `Trip` is no variant: the photo is `My.Trip`
        ("DSC01.JPG", None),
        ("DSC01.ARW", None),
        ("notes.txt", None),
    ],
)
def test_the_photo_a_sidecar_belongs_to(name, photo):
    assert sidecar_photo(name) == photo


@pytest.mark.parametrize(
    "head, ok",
    [
        (b'<?xpacket begin="', True),
        (b"<x:xmpmeta xmlns:x", True),
        (b"\xef\xbb\xbf<?xml version=", True),
        (b"\n  <x:xmpmeta", True),
        (b"\xff\xd8\xff\xe0JFIF", False),
        (b"rating=5", False),
    ],
)
def test_an_xmp_sidecar_is_xml(head, ok):
    assert (content_mismatch("DSC01.xmp", head) is None) is ok


def test_upload_part_files_are_named_so_they_are_recognised():
    assert is_upload_temp(upload_temp("01HZX")) and upload_temp("01HZX").startswith(".")
    assert not is_upload_temp("DSC01.part") and not is_upload_temp(".upload-01HZX.jpg")
