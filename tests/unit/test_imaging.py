"""make_derivatives on made files, in an image process as the worker runs it: tones of high bit depths,
the embedded sRGB profile, the megapixel limit, RAW embedded previews."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageCms
from PIL.ExifTags import IFD, Base

from darkroom.kernel.photos import derivative_source
from darkroom.worker.imaging import (
    ImageTooLarge,
    Metadata,
    Spec,
    _fitted,
    fitted_size,
    init_worker,
    make_derivatives,
    read_metadata,
)
from darkroom.worker.rawpreview import NoPreview
from tests.conftest import PHOTOS
from tests.imagefiles import dng, solid_png

SPEC = Spec(thumb_dim=800, thumb_quality=70, preview_dim=2048, preview_quality=80, max_megapixels=250)
QUARTER = 0x4000  # a quarter of the 16-bit range: 64 in 8 bits


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=init_worker) as pool:
        yield pool


def derive(pool: ProcessPoolExecutor, source: Path, spec: Spec = SPEC) -> tuple[Metadata, Image.Image, Image.Image]:
    thumb, preview = source.with_suffix(".thumb.webp"), source.with_suffix(".preview.jpg")
    meta = pool.submit(make_derivatives, str(source), str(thumb), str(preview), spec).result(timeout=120)
    return meta, Image.open(thumb), Image.open(preview)


def test_a_photo_s_derivatives_come_from_its_jpg_else_other_else_raw() -> None:
    assert derivative_source(["A.NEF", "A.png", "A.JPG"]) == "A.JPG"
    assert derivative_source(["A.NEF", "A.tif"]) == "A.tif"
    assert derivative_source(["A.NEF"]) == "A.NEF"
    assert derivative_source(["A.xmp"]) is None and derivative_source([]) is None


def _heif_grey16(path: Path) -> Path:
    import pillow_heif

    size = (120, 80)
    pillow_heif.from_bytes(mode="L;16", size=size, data=QUARTER.to_bytes(2, "little") * (size[0] * size[1])).save(
        path, quality=-1
    )
    return path


@pytest.mark.parametrize(
    "make",
    [
        lambda p: _saved(Image.new("I;16", (120, 80), QUARTER), p / "grey16.png"),
        lambda p: _saved(Image.new("I;16", (120, 80), QUARTER), p / "grey16.tif"),
        lambda p: _saved(Image.new("F", (120, 80), 0.25), p / "float.tif"),
        lambda p: solid_png(p / "rgb16.png", 120, 80, QUARTER.to_bytes(2, "big") * 3, bit_depth=16, colour_type=2),
        lambda p: _heif_grey16(p / "grey10.heic"),
    ],
    ids=["png-grey16", "tiff-grey16", "tiff-float", "png-rgb16", "heif-grey10"],
)
def test_high_bit_depth_sources_keep_their_tones(pool, tmp_path: Path, make) -> None:
    meta, thumb, preview = derive(pool, make(tmp_path))
    assert (meta.width, meta.height) == thumb.size == preview.size == (120, 80)
    for image in (thumb, preview):
        low, high = image.convert("L").getextrema()
        assert 61 <= low <= high <= 67, (low, high)  # a quarter grey, not clipped to white


def _saved(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


def test_derivatives_carry_an_srgb_profile(pool, tmp_path: Path) -> None:
    tagged = tmp_path / "tagged.jpg"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (64, 48), (200, 100, 50)).save(tagged, icc_profile=srgb)
    untagged = tmp_path / "untagged.png"
    Image.new("RGB", (64, 48), (200, 100, 50)).save(untagged)
    for source in (tagged, untagged):
        _, thumb, preview = derive(pool, source)
        for image in (thumb, preview):
            profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
            assert "sRGB" in ImageCms.getProfileDescription(profile)
            assert image.convert("RGB").getpixel((10, 10)) == pytest.approx((200, 100, 50), abs=4)


def test_the_megapixel_limit_is_darkrooms_own_and_names_its_setting(pool, tmp_path: Path) -> None:
    passes = solid_png(tmp_path / "180mp.png", 15000, 12000, b"\x80", colour_type=0)  # over Pillow's 179 MP
    meta, thumb, _ = derive(pool, passes)
    assert (meta.width, meta.height) == (15000, 12000) and thumb.size == (800, 640)
    fails = solid_png(tmp_path / "260mp.png", 16250, 16000, b"\x80", colour_type=0)
    with pytest.raises(ImageTooLarge) as caught:
        derive(pool, fails)
    assert str(caught.value) == (
        "the image is 16250x16000 (260.0 megapixels), over the limit of processing.max_megapixels = 250"
    )


def test_a_raw_alone_gives_its_embedded_preview_oriented_with_its_camera_and_time(pool, tmp_path: Path) -> None:
    source = tmp_path / "DSC01.DNG"
    framed = Image.new("RGB", (320, 240), (200, 40, 40))
    framed.paste((20, 20, 220), (0, 0, 160, 240))  # left half blue: after turning 90° clockwise, the top
    source.write_bytes(
        dng(
            framed,
            orientation=6,
            make="Nikon",
            model="D850",
            taken="2024:06:01 12:30:45",
            lens="NIKKOR Z 24-70mm f/4 S",
        )
    )
    meta, thumb, preview = derive(pool, source)
    assert meta == Metadata(
        taken_at="2024-06-01T12:30:45",
        make="Nikon",
        model="D850",
        orientation=6,
        width=48,
        height=64,
        lens="NIKKOR Z 24-70mm f/4 S",
    )  # the RAW's own 64x48, turned
    assert thumb.size == preview.size == (240, 320)
    top, bottom = thumb.convert("RGB").getpixel((120, 40)), thumb.convert("RGB").getpixel((120, 280))
    assert top[2] > 150 and bottom[0] > 150, (top, bottom)


def test_the_lens_is_the_lens_model_after_its_make_when_the_model_does_not_name_it(tmp_path: Path) -> None:
    assert read_metadata(str(PHOTOS / "lens" / "Nikon_D70s.jpg")).lens == "18.0-70.0 mm f/3.5-4.5"
    assert read_metadata(str(PHOTOS / "cameras" / "Canon_40D.jpg")).lens is None  # a camera that records none
    for make, model, lens in [
        ("Apple", "iPhone 6 back camera 4.15mm f/2.2", "Apple iPhone 6 back camera 4.15mm f/2.2"),
        ("Canon", "Canon EF 50mm f/1.8 STM", "Canon EF 50mm f/1.8 STM"),
        ("Sony", None, None),
    ]:
        exif = Image.Exif()
        exif.get_ifd(IFD.Exif).update({Base.LensMake: make, **({Base.LensModel: model} if model else {})})
        source = tmp_path / f"{make}.jpg"
        Image.new("RGB", (32, 24)).save(source, exif=exif)
        assert read_metadata(str(source)).lens == lens


def test_a_raw_with_no_usable_preview_says_why(pool, tmp_path: Path) -> None:
    bare = tmp_path / "BARE.DNG"
    bare.write_bytes(dng())
    with pytest.raises(NoPreview, match="the RAW file has no embedded preview"):
        derive(pool, bare)
    junk = tmp_path / "JUNK.NEF"
    junk.write_bytes(b"NEF" * 1000)
    with pytest.raises(NoPreview, match="not a RAW file LibRaw can read"):
        derive(pool, junk)


def test_the_embedded_profile_carries_no_time_of_making_so_a_photo_made_again_gives_the_same_files(
    tmp_path: Path,
) -> None:
    source, thumb, preview = tmp_path / "S.png", tmp_path / "S.webp", tmp_path / "S.jpg"
    Image.new("RGB", (320, 200), (200, 120, 40)).save(source)
    make_derivatives(str(source), str(thumb), str(preview), SPEC)
    for made in (thumb, preview):
        with Image.open(made) as image:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"])).profile
        assert profile.creation_date == datetime(2000, 1, 1)  # whatever the clock of the image process


@pytest.mark.parametrize("most", [7, 64, 2048])
def test_the_preview_s_size_is_the_one_pillow_s_thumbnail_gives(most: int) -> None:
    sizes = [(w, h) for w in (1, 5, 63, 64, 65, 199, 4000, 6000, 6001) for h in (1, 3, 64, 333, 3999, 4000, 6000)]
    for size in sizes:
        img = Image.new("1", size)
        img.thumbnail((most, most))
        assert fitted_size(size, most) == (img.size if img.size != size else None), size


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_a_preview_resampled_by_bands_is_the_whole_image_resampled(mode: str) -> None:
    source = Image.effect_mandelbrot((1500, 1000), (-2.0, -1.0, 1.0, 1.0), 60).convert(mode)
    expected = source.copy()
    expected.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
    got = _fitted(source, 1024)
    assert got.size == expected.size and got.mode == expected.mode
    # A band's edge may round a sample the other way.
    assert all(high <= 1 for _, high in _extrema(ImageChops.difference(got, expected)))


def _extrema(img: Image.Image) -> list[tuple[int, int]]:
    found = img.getextrema()
    return [found] if img.mode == "L" else list(found)  # type: ignore[list-item]


def test_a_24_mp_jpeg_s_preview_is_made_without_the_whole_intermediate_image(tmp_path: Path) -> None:
    """An image process's peak: the decoded source and the preview, not also an image as wide as the
    preview and as high as the source."""
    source = tmp_path / "big.jpg"
    Image.effect_noise((6000, 4000), 60).convert("RGB").save(source, quality=85)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=init_worker) as fresh:
        grown_mb = fresh.submit(_peak_growth_mb, str(source), str(tmp_path)).result(timeout=120)
    decoded_mb, preview_mb, intermediate_mb = 3000 * 2000 * 4 / 2**20, 2048 * 1365 * 4 / 2**20, 2048 * 2000 * 4 / 2**20
    assert grown_mb < decoded_mb + preview_mb + intermediate_mb / 2, f"{grown_mb:.0f} MB"


def _peak_growth_mb(source: str, folder: str) -> float:
    """How much the peak RSS of this (fresh) process grows while it makes one photo's derivatives."""

    def peak() -> float:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024

    before = peak()
    make_derivatives(source, f"{folder}/t.webp", f"{folder}/p.jpg", SPEC)
    return peak() - before
