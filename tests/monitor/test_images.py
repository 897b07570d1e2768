"""Behaviour of the safe image intake, :mod:`monitor.images`.

Every image is generated here with Pillow/numpy, except one small CC0 photograph copied into
``tests/fixtures/images`` (see its ``manifest.csv``) for photo-like texture, so the tests run
offline.
"""

from __future__ import annotations

import csv
import hashlib
import io
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import IcoImagePlugin, Image, ImageFile, ImageOps, JpegImagePlugin

from monitor import images
from monitor.errors import (
    EmptyImage,
    ImageError,
    ImageTooLarge,
    NotAnImage,
    TruncatedImage,
    UnsupportedFormat,
)
from monitor.images import (
    LOSSY_FORMATS,
    SUPPORTED_FORMATS,
    DecodedImage,
    decode_full_pixels,
    decode_image,
    estimate_jpeg_quality,
    pixel_digest,
    sha256_hex,
    sniff,
    to_rgb_array,
)
from monitor.settings import IntakeSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "images"
PHOTO = FIXTURES / "pypi-scikit-image__retina.jpg"

RED = (255, 0, 0)
BLUE = (0, 0, 255)


# --------------------------------------------------------------------------- helpers


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


@cache
def _photo_rgb() -> np.ndarray:
    with Image.open(PHOTO) as img:
        return np.asarray(img.convert("RGB"))


def photo(size: tuple[int, int] | None = None) -> Image.Image:
    """The fixture photograph (colour), optionally resized to ``(width, height)``."""
    img = Image.fromarray(_photo_rgb())
    return img if size is None else img.resize(size, Image.Resampling.BICUBIC)


def gray_photo(size: tuple[int, int] | None = None) -> Image.Image:
    return photo(size).convert("L")


def limits(**overrides: int) -> dict[str, int]:
    """``decode_image`` keyword arguments taken from the intake settings."""
    return IntakeSettings(**overrides).model_dump(include={"max_bytes", "max_pixels", "work_side"})


def corner(pixels: np.ndarray, where: str, size: int = 6) -> np.ndarray:
    """Mean colour of a ``size`` square in a corner: ``tl``, ``tr``, ``bl`` or ``br``."""
    rows = slice(0, size) if where[0] == "t" else slice(-size, None)
    cols = slice(0, size) if where[1] == "l" else slice(-size, None)
    return pixels[rows, cols].reshape(-1, 3).mean(axis=0)


def close_to(colour: np.ndarray, expected: tuple[int, int, int], tol: float = 12) -> bool:
    return bool(np.all(np.abs(colour - np.asarray(expected, dtype=np.float64)) <= tol))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR is rewritten to declare ``width`` x ``height`` (CRC fixed)."""
    data = bytearray(encode(Image.new("L", (8, 8), 0), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def animation(fmt: str, **params: Any) -> bytes:
    frames = [Image.new("RGB", (24, 16), colour) for colour in (RED, (0, 255, 0), BLUE)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=80, loop=0, **params)


@pytest.fixture
def pixel_loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Records every Pillow pixel decode (``load`` of a file-backed image)."""
    calls: list[str] = []

    def spy(original: Callable[..., Any]) -> Callable[..., Any]:
        def load(self: ImageFile.ImageFile) -> Any:
            calls.append(f"{self.format} {self.size}")
            return original(self)

        return load

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy(ImageFile.ImageFile.load))
    monkeypatch.setattr(IcoImagePlugin.IcoImageFile, "load", spy(IcoImagePlugin.IcoImageFile.load))
    yield calls


# --------------------------------------------------------------------------- fixture and API


def test_fixture_photo_is_the_one_in_the_manifest_with_a_licence() -> None:
    with (FIXTURES / "manifest.csv").open(newline="") as fh:
        rows = {row["file"]: row for row in csv.DictReader(fh)}
    row = rows[PHOTO.name]
    data = PHOTO.read_bytes()
    assert len(data) <= 64 * 1024
    assert row["license"].strip()
    assert hashlib.sha256(data).hexdigest() == row["sha256"]
    decoded = decode_image(data)
    assert (decoded.width, decoded.height) == (int(row["width"]), int(row["height"]))


def test_public_api_is_kept() -> None:
    for name in (
        "decode_image",
        "DecodedImage",
        "decode_full_pixels",
        "pixel_digest",
        "sha256_hex",
        "sniff",
        "to_rgb_array",
        "estimate_jpeg_quality",
        "SUPPORTED_FORMATS",
        "LOSSY_FORMATS",
    ):
        assert hasattr(images, name), name
    assert {"JPEG", "PNG", "GIF", "WEBP"} <= SUPPORTED_FORMATS
    assert LOSSY_FORMATS <= SUPPORTED_FORMATS


def test_decoded_image_facts() -> None:
    data = encode(photo(), "JPEG", quality=80)
    decoded = decode_image(data)
    assert isinstance(decoded, DecodedImage)
    assert decoded.sha256 == sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert decoded.size_bytes == len(data)
    assert (decoded.format, decoded.mode, decoded.frames) == ("JPEG", "RGB", 1)
    assert (decoded.width, decoded.height, decoded.scale) == (512, 512, 1.0)
    assert decoded.pixels.dtype == np.uint8
    assert decoded.pixels.shape == (512, 512, 3)
    assert decoded.is_lossy and not decoded.has_alpha
    assert decoded.gray().shape == (512, 512)


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize(("orientation", "red_corner"), [(6, "tr"), (8, "bl"), (3, "br"), (1, "tl")])
def test_exif_orientation_rotates_pixels_and_swaps_size(orientation: int, red_corner: str) -> None:
    # Stored 60x40, blue, with a red square in the stored top-left corner.
    img = Image.new("RGB", (60, 40), BLUE)
    img.paste(RED, (0, 0, 12, 12))
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_image(encode(img, "JPEG", quality=95, exif=exif))

    swapped = orientation in (6, 8)
    assert (decoded.width, decoded.height) == ((40, 60) if swapped else (60, 40))
    assert decoded.pixels.shape == (decoded.height, decoded.width, 3)
    for where in ("tl", "tr", "bl", "br"):
        expected = RED if where == red_corner else BLUE
        assert close_to(corner(decoded.pixels, where), expected), (where, corner(decoded.pixels, where))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow_exif_transpose(orientation: int) -> None:
    rgb = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(rgb), "PNG", exif=exif)
    with Image.open(io.BytesIO(data)) as img:
        expected = np.asarray(ImageOps.exif_transpose(img))

    decoded = decode_image(data)
    assert np.array_equal(decoded.pixels, expected)
    assert (decoded.height, decoded.width) == expected.shape[:2]
    assert np.array_equal(decode_full_pixels(data), expected)


def test_orientation_of_a_large_drafted_jpeg() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(photo((3000, 2000)), "JPEG", quality=85, exif=exif)
    decoded = decode_image(data, **limits())
    assert (decoded.width, decoded.height) == (2000, 3000)
    assert decoded.pixels.shape == (1024, 683, 3)
    assert decoded.scale == pytest.approx(683 / 2000)
    assert decode_full_pixels(data).shape == (3000, 2000, 3)


def test_corrupt_exif_is_ignored_not_fatal() -> None:
    jpeg = encode(photo((64, 48)), "JPEG", quality=90)
    garbage = b"Exif\x00\x00" + b"MM\x00*\x00\x00\x00\x08\xff\xff" + bytes(range(200))
    app1 = b"\xff\xe1" + struct.pack(">H", len(garbage) + 2) + garbage
    data = jpeg[:2] + app1 + jpeg[2:]
    decoded = decode_image(data)
    assert (decoded.width, decoded.height) == (64, 48)


# --------------------------------------------------------------------------- modes


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = encode(Image.new("CMYK", (32, 24), (0, 255, 255, 0)), "JPEG", quality=95)
    decoded = decode_image(data)
    assert decoded.mode == "CMYK"
    assert decoded.pixels.shape == (24, 32, 3)
    assert close_to(decoded.pixels.reshape(-1, 3).mean(axis=0), RED, tol=8)
    assert not decoded.is_grayscale


def test_16_bit_grayscale_png_is_scaled_not_clipped() -> None:
    values = np.array([[0, 1000, 4096, 32768, 50000, 65535]], dtype=np.uint16).repeat(4, axis=0)
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    decoded = decode_image(encode(img, "PNG"))
    assert decoded.mode.startswith("I")
    row = decoded.pixels[0, :, 0].astype(int)
    expected = np.round(values[0] / 65535 * 255).astype(int)
    assert np.abs(row - expected).max() <= 1, row
    assert row[1] < 10 and row[3] == 128  # 1000 and 32768 are dark and mid gray, not white
    assert decoded.is_grayscale


def test_dark_16_bit_png_stays_dark() -> None:
    # Every value is <= 255 of 65535: nearly black, not a full-range 8-bit image.
    values = (np.arange(32 * 32).reshape(32, 32) % 256).astype(np.uint16)
    decoded = decode_image(encode(Image.fromarray(values), "PNG"))
    assert decoded.pixels.max() <= 1


def test_float_tiff_with_nan_and_inf_is_normalised() -> None:
    values = np.array([[0.0, 0.5, 1.0], [np.nan, np.inf, -np.inf]], dtype=np.float32)
    decoded = decode_image(encode(Image.fromarray(values), "TIFF"))
    assert decoded.pixels[0, :, 0].tolist() == [0, 128, 255]
    assert decoded.is_grayscale


def test_rgba_png_transparency_is_composited_on_white() -> None:
    rgba = np.zeros((20, 30, 4), np.uint8)  # transparent black
    rgba[:, :10] = (255, 0, 0, 255)  # opaque red
    rgba[:, 10:20] = (255, 0, 0, 128)  # half-transparent red
    decoded = decode_image(encode(Image.fromarray(rgba), "PNG"))
    assert decoded.has_alpha
    assert (decoded.pixels[:, :10] == RED).all()
    assert np.abs(decoded.pixels[:, 10:20].astype(int) - (255, 127, 127)).max() <= 1
    assert (decoded.pixels[:, 20:] == 255).all()


def test_palette_png_with_transparent_index_is_white_there() -> None:
    img = Image.new("P", (20, 20), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    img.paste(1, (0, 0, 10, 20))
    decoded = decode_image(encode(img, "PNG", transparency=0))
    assert decoded.mode == "P"
    assert decoded.has_alpha
    assert (decoded.pixels[:, :10] == RED).all()
    assert (decoded.pixels[:, 10:] == 255).all()


def test_la_png_is_gray_on_white() -> None:
    gray = Image.new("L", (20, 20), 50)
    alpha = Image.new("L", (20, 20), 255)
    alpha.paste(0, (10, 0, 20, 20))
    decoded = decode_image(encode(Image.merge("LA", (gray, alpha)), "PNG"))
    assert decoded.mode == "LA"
    assert decoded.is_grayscale and decoded.has_alpha
    assert (decoded.pixels[:, :10] == 50).all()
    assert (decoded.pixels[:, 10:] == 255).all()


def test_one_bit_image() -> None:
    bits = (np.indices((16, 16)).sum(axis=0) % 2).astype(bool)
    decoded = decode_image(encode(Image.fromarray(bits), "PNG"))
    assert decoded.mode == "1"
    assert decoded.is_grayscale
    assert set(np.unique(decoded.pixels).tolist()) == {0, 255}
    assert (decoded.pixels[..., 0] == np.where(bits, 255, 0)).all()


@pytest.mark.parametrize(("fmt", "params"), [("GIF", {}), ("WEBP", {"lossless": True})])
def test_animation_uses_first_frame_and_counts_frames(fmt: str, params: dict[str, Any]) -> None:
    decoded = decode_image(animation(fmt, **params))
    assert decoded.format == fmt
    assert decoded.frames == 3
    assert (decoded.width, decoded.height) == (24, 16)
    assert (decoded.pixels == RED).all()


def test_single_frame_gif_has_one_frame() -> None:
    assert decode_image(encode(Image.new("RGB", (8, 8), RED), "GIF")).frames == 1


def test_animated_gif_cut_in_a_later_frame_still_gives_the_first() -> None:
    data = animation("GIF")
    first_frame_end = data.index(b"\x00\x21\xf9", data.index(b"\x2c")) + 1  # after frame 1's data
    decoded = decode_image(data[: first_frame_end + 20])
    assert decoded.frames >= 1
    assert (decoded.pixels == RED).all()


def test_thin_image_is_fitted() -> None:
    decoded = decode_image(encode(Image.new("L", (1, 5000), 7), "PNG"))
    assert (decoded.width, decoded.height) == (1, 5000)
    assert decoded.pixels.shape == (1024, 1, 3)


# --------------------------------------------------------------------------- bad input


def test_empty_bytes() -> None:
    with pytest.raises(EmptyImage) as err:
        decode_image(b"")
    assert err.value.code == "empty"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_file_cut_at_half_is_truncated(fmt: str) -> None:
    data = encode(photo((256, 256)), fmt)
    with pytest.raises(TruncatedImage) as err:
        decode_image(data[: len(data) // 2])
    assert err.value.code == "truncated"


@pytest.mark.parametrize(("fmt", "keep"), [("JPEG", 40), ("PNG", 20), ("GIF", 12), ("WEBP", 20)])
def test_file_cut_in_its_header_is_truncated(fmt: str, keep: int) -> None:
    data = encode(photo((64, 64)), fmt)
    with pytest.raises(TruncatedImage):
        decode_image(data[:keep])


@pytest.mark.parametrize(
    "page",
    [
        b"<!DOCTYPE html>\n<html><head><title>404</title></head><body>Not found</body></html>",
        b"<html><body><img src='x.jpg'></body></html>",
        b"\xef\xbb\xbf  \r\n<!doctype HTML><html lang='en'><meta charset='utf-8'>",
        b"<!DOCTYPE html><html><body><svg width='16' height='16'><path d='M0 0'/></svg></body></html>",
        b"<head><script>location='/login'</script></head>",
    ],
)
def test_html_is_not_an_image(page: bytes) -> None:
    with pytest.raises(NotAnImage, match="HTML"):
        decode_image(page)


@pytest.mark.parametrize(
    "text",
    [
        b"Access denied.\n",
        b'{"error": "not found", "status": 404}',
        "Ошибка 404 — страница не найдена. 画像が見つかりません。".encode(),
        b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>",
        "plain text in UTF-16".encode("utf-16"),
        b"x",
    ],
)
def test_text_is_not_an_image(text: bytes) -> None:
    with pytest.raises(NotAnImage, match="text"):
        decode_image(text)


@pytest.mark.parametrize(
    "svg",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10"/></svg>',
        b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>',
        b'<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x.dtd">\n<svg></svg>',
        b"\xef\xbb\xbf<!-- Generator: Inkscape -->\n<svg viewBox='0 0 1 1'></svg>",
    ],
)
def test_svg_is_unsupported(svg: bytes) -> None:
    with pytest.raises(UnsupportedFormat, match="SVG"):
        decode_image(svg)


def test_pdf_is_unsupported() -> None:
    with pytest.raises(UnsupportedFormat, match="PDF"):
        decode_image(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")


def test_random_bytes_are_not_an_image() -> None:
    data = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(NotAnImage):
        decode_image(data)


@pytest.mark.parametrize("fmt", ["PPM", "TGA", "PCX"])
def test_raster_format_pillow_reads_but_we_do_not(fmt: str) -> None:
    with pytest.raises(UnsupportedFormat, match=fmt):
        decode_image(encode(Image.new("RGB", (8, 8), RED), fmt))


def test_jpeg_xl_is_unsupported() -> None:
    with pytest.raises(UnsupportedFormat, match="JPEG XL"):
        decode_image(b"\x00\x00\x00\x0cJXL \r\n\x87\n" + bytes(64))


def test_sniff_lets_raster_images_through() -> None:
    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"):
        sniff(encode(Image.new("RGB", (1, 1), (60, 60, 60)), fmt))


# --------------------------------------------------------------------------- limits


def test_png_declaring_a_huge_size_is_refused_without_decoding(pixel_loads: list[str]) -> None:
    with pytest.raises(ImageTooLarge) as err:
        decode_image(png_declaring(100_000, 100_000), **limits())
    assert err.value.code == "too_large"
    assert pixel_loads == []


def test_png_just_over_the_pixel_limit_is_refused_without_decoding(pixel_loads: list[str]) -> None:
    # 81 M pixels: under Pillow's own bomb guard, over the monitor's default limit.
    with pytest.raises(ImageTooLarge, match="9000x9000"):
        decode_image(png_declaring(9000, 9000), **limits())
    assert pixel_loads == []


def test_compressed_bomb_is_refused_without_decoding(pixel_loads: list[str]) -> None:
    data = encode(Image.new("1", (10_000, 10_000), 0), "PNG")  # 100 M pixels in ~12 KB
    assert len(data) < 64 * 1024
    with pytest.raises(ImageTooLarge):
        decode_image(data, **limits())
    assert pixel_loads == []


def test_pixel_limit_comes_from_settings(pixel_loads: list[str]) -> None:
    data = encode(Image.new("RGB", (2000, 1000), RED), "PNG")
    with pytest.raises(ImageTooLarge, match="limit is 1,999,999"):
        decode_image(data, **limits(max_pixels=1_999_999))
    assert pixel_loads == []
    assert decode_image(data, **limits(max_pixels=2_000_000)).width == 2000


def test_gif_with_a_huge_screen_is_refused() -> None:
    data = bytearray(encode(Image.new("P", (4, 4)), "GIF"))
    data[6:10] = struct.pack("<HH", 65535, 65535)
    with pytest.raises(ImageTooLarge):
        decode_image(bytes(data))


def _ico_with_inner_png(inner: Image.Image) -> bytes:
    """A 16x16-entry ICO whose embedded PNG is really ``inner`` (the directory lies)."""
    png = encode(inner, "PNG")
    directory = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(png), 22)
    return directory + png


def test_ico_whose_embedded_png_is_too_large_is_refused_without_decoding(pixel_loads: list[str]) -> None:
    data = _ico_with_inner_png(Image.new("RGB", (300, 300), RED))
    assert decode_image(data).format == "ICO"  # fine within the default limit
    pixel_loads.clear()
    with pytest.raises(ImageTooLarge, match="300x300"):
        decode_image(data, max_pixels=10_000)
    assert pixel_loads == []

    huge = bytearray(data)
    at = huge.index(b"IHDR")
    huge[at + 4 : at + 12] = struct.pack(">II", 100_000, 100_000)
    huge[at + 17 : at + 21] = struct.pack(">I", zlib.crc32(bytes(huge[at : at + 17])))
    with pytest.raises(ImageTooLarge):
        decode_image(bytes(huge))


def test_ico_whose_embedded_bitmap_declares_a_huge_size_is_refused(pixel_loads: list[str]) -> None:
    data = bytearray(encode(Image.new("RGB", (16, 16), RED), "ICO", sizes=[(16, 16)], bitmap_format="bmp"))
    offset = int.from_bytes(data[18:22], "little")
    assert int.from_bytes(data[offset : offset + 4], "little") == 40  # BITMAPINFOHEADER
    data[offset + 4 : offset + 12] = struct.pack("<ii", 30_000, 2 * 30_000)
    with pytest.raises(ImageTooLarge, match="30000x30000"):
        decode_image(bytes(data))
    assert pixel_loads == []


def test_byte_limit_comes_from_settings() -> None:
    data = encode(photo((64, 64)), "PNG")
    with pytest.raises(ImageTooLarge, match="bytes"):
        decode_image(data, **limits(max_bytes=len(data) - 1))
    assert decode_image(data, **limits(max_bytes=len(data))).size_bytes == len(data)


def test_byte_limit_is_checked_before_anything_else() -> None:
    with pytest.raises(ImageTooLarge):
        decode_image(b"<html>" + b" " * 100, max_bytes=50)


# --------------------------------------------------------------------------- JPEG draft mode


def test_large_jpeg_is_decoded_in_draft_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    drafted: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def draft(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None) -> Any:
        result = original(self, mode, size)
        drafted.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", draft)
    data = encode(photo((3000, 2000)), "JPEG", quality=90)
    decoded = decode_image(data, **limits())

    assert (decoded.width, decoded.height) == (3000, 2000)
    assert max(decoded.pixels.shape[:2]) <= 1024
    assert decoded.pixels.shape == (683, 1024, 3)
    assert decoded.scale == pytest.approx(1024 / 3000)
    assert drafted == [(1500, 1000)]  # the decoder produced half size, not 3000x2000

    # The drafted working copy looks like the full decode, reduced.
    full = cv2.resize(decode_full_pixels(data), (1024, 683), interpolation=cv2.INTER_AREA)
    assert np.abs(full.astype(int) - decoded.pixels.astype(int)).mean() < 3


def test_working_side_comes_from_settings() -> None:
    data = encode(photo((800, 600)), "JPEG")
    decoded = decode_image(data, **limits(work_side=256))
    assert decoded.pixels.shape == (192, 256, 3)
    assert (decoded.width, decoded.height) == (800, 600)
    assert decoded.scale == pytest.approx(256 / 800)


def test_small_jpeg_is_not_reduced() -> None:
    decoded = decode_image(encode(photo((500, 300)), "JPEG"))
    assert decoded.pixels.shape == (300, 500, 3)
    assert decoded.scale == 1.0


def test_large_png_is_reduced_to_the_working_side() -> None:
    decoded = decode_image(encode(photo((2048, 1024)), "PNG"))
    assert decoded.pixels.shape == (512, 1024, 3)
    assert decoded.scale == 0.5


# --------------------------------------------------------------------------- grayscale


def _gray_rgb(noise: int = 0, seed: int = 0) -> np.ndarray:
    gray = np.asarray(gray_photo()).astype(int)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    if noise:
        rgb = rgb + np.random.default_rng(seed).integers(-noise, noise + 1, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def test_gray_modes_are_grayscale() -> None:
    assert decode_image(encode(gray_photo(), "PNG")).is_grayscale
    assert decode_image(encode(gray_photo(), "JPEG")).is_grayscale


@pytest.mark.parametrize("quality", [40, 75, 95])
def test_rgb_file_with_equal_channels_is_grayscale(quality: int) -> None:
    decoded = decode_image(encode(Image.fromarray(_gray_rgb()), "JPEG", quality=quality))
    assert decoded.mode == "RGB"
    assert decoded.is_grayscale


def test_gray_jpeg_with_chroma_noise_is_grayscale() -> None:
    data = encode(Image.fromarray(_gray_rgb(noise=3)), "JPEG", quality=95, subsampling=0)
    decoded = decode_image(data)
    assert decoded.pixels.max(axis=2).astype(int).max() > 0
    spread = decoded.pixels.max(axis=2).astype(int) - decoded.pixels.min(axis=2)
    assert spread.max() > 0  # there is chroma noise to ignore
    assert decoded.is_grayscale


def test_gray_palette_png_is_grayscale() -> None:
    img = gray_photo((64, 64)).convert("P")
    assert decode_image(encode(img, "PNG")).is_grayscale


def test_colour_photo_is_not_grayscale() -> None:
    assert not decode_image(PHOTO.read_bytes()).is_grayscale
    assert not decode_image(encode(photo(), "PNG")).is_grayscale


def test_gray_photo_with_a_small_colour_stamp_is_not_grayscale() -> None:
    rgb = _gray_rgb().copy()
    rgb[:36, :36] = (200, 30, 30)  # 0.5% of the image
    assert not decode_image(encode(Image.fromarray(rgb), "JPEG", quality=85)).is_grayscale


def test_tinted_photo_is_not_grayscale() -> None:
    gray = np.asarray(gray_photo()).astype(int)
    sepia = np.clip(np.stack([gray, gray * 0.9, gray * 0.7], axis=2), 0, 255).astype(np.uint8)
    blue = np.clip(np.stack([gray, gray, gray + 8], axis=2), 0, 255).astype(np.uint8)
    assert not decode_image(encode(Image.fromarray(sepia), "JPEG")).is_grayscale
    assert not decode_image(encode(Image.fromarray(blue), "JPEG")).is_grayscale


# --------------------------------------------------------------------------- JPEG quality


@pytest.mark.parametrize("quality", range(30, 96))
def test_jpeg_quality_estimate_is_within_3(quality: int) -> None:
    data = encode(photo(), "JPEG", quality=quality)
    estimate = decode_image(data).jpeg_quality
    assert estimate is not None
    assert abs(estimate - quality) <= 3, estimate


@pytest.mark.parametrize("quality", [30, 55, 77, 90])
def test_jpeg_quality_estimate_for_gray_and_444_jpegs(quality: int) -> None:
    gray = decode_image(encode(gray_photo(), "JPEG", quality=quality)).jpeg_quality
    full_chroma = decode_image(encode(photo(), "JPEG", quality=quality, subsampling=0)).jpeg_quality
    assert gray is not None and abs(gray - quality) <= 3
    assert full_chroma is not None and abs(full_chroma - quality) <= 3


def test_jpeg_quality_reads_pillow_tables_in_natural_order() -> None:
    with Image.open(io.BytesIO(encode(photo(), "JPEG", quality=50))) as img:
        assert isinstance(img, JpegImagePlugin.JpegImageFile)
        assert list(img.quantization[0][:8]) == [16, 11, 10, 16, 24, 40, 51, 61]
        assert estimate_jpeg_quality(img) == 50


def test_non_jpeg_has_no_quality() -> None:
    assert decode_image(encode(photo((32, 32)), "PNG")).jpeg_quality is None
    with Image.open(io.BytesIO(encode(photo((32, 32)), "PNG"))) as img:
        assert estimate_jpeg_quality(img) is None


# --------------------------------------------------------------------------- helpers of the module


def test_decode_full_pixels_and_digest() -> None:
    data = encode(photo((1200, 900)), "PNG")
    full = decode_full_pixels(data)
    assert full.shape == (900, 1200, 3)
    assert pixel_digest(full) == pixel_digest(full.copy())
    assert pixel_digest(full) != pixel_digest(np.ascontiguousarray(full[:, ::-1]))
    flat = np.zeros((4, 6, 3), np.uint8)
    assert pixel_digest(flat) != pixel_digest(flat.reshape(6, 4, 3))
    with pytest.raises(ImageError):
        decode_full_pixels(data[: len(data) // 2])
    with pytest.raises(ImageTooLarge):
        decode_full_pixels(data, max_pixels=1000)


def test_to_rgb_array_modes() -> None:
    for mode in ("1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "YCbCr", "I", "F", "I;16"):
        arr = to_rgb_array(Image.new(mode, (3, 2)))
        assert arr.shape == (2, 3, 3) and arr.dtype == np.uint8, mode


# --------------------------------------------------------------------------- robustness


def _seeds() -> list[bytes]:
    exif = Image.Exif()
    exif[0x0112] = 6
    small = photo((40, 32))
    rgba = small.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((40, 32)))
    return [
        encode(small, "JPEG", quality=80, exif=exif),
        encode(small, "JPEG", quality=60, progressive=True),
        encode(rgba, "PNG"),
        encode(small.convert("P"), "PNG", transparency=3),
        animation("GIF"),
        animation("WEBP", lossless=True),
    ]


SEEDS = _seeds()
FUZZ_LIMITS = {"max_bytes": 1 << 20, "max_pixels": 1 << 20, "work_side": 128}


def _decodes_or_refuses(data: bytes) -> None:
    try:
        decoded = decode_image(data, **FUZZ_LIMITS)
    except ImageError:
        return
    assert decoded.pixels.dtype == np.uint8
    assert decoded.pixels.ndim == 3 and decoded.pixels.shape[2] == 3
    assert 0 < max(decoded.pixels.shape[:2]) <= FUZZ_LIMITS["work_side"]
    assert decoded.width > 0 and decoded.height > 0 and decoded.frames >= 1


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "overwrite"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "truncate":
            del data[at:]
        elif op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at : at + len(chunk)] = chunk
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzzed_images_only_raise_image_errors(data: bytes) -> None:
    _decodes_or_refuses(data)


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_every_prefix_only_raises_image_errors(seed: int) -> None:
    data = SEEDS[seed]
    for cut in range(len(data)):
        _decodes_or_refuses(data[:cut])


def test_batch_of_mixed_inputs_decodes_the_good_ones() -> None:
    good = {
        "photo.jpg": PHOTO.read_bytes(),
        "rgba.png": encode(photo((64, 64)).convert("RGBA"), "PNG"),
        "anim.gif": animation("GIF"),
        "gray.png": encode(gray_photo((80, 60)), "PNG"),
    }
    png = encode(photo((128, 128)), "PNG")
    bad = {
        "empty": (b"", EmptyImage),
        "page.html": (b"<!DOCTYPE html><html></html>", NotAnImage),
        "bomb.png": (png_declaring(100_000, 100_000), ImageTooLarge),
        "cut.png": (png[: len(png) // 2], TruncatedImage),
        "logo.svg": (b"<svg xmlns='http://www.w3.org/2000/svg'/>", UnsupportedFormat),
        "noise.bin": (bytes(range(256)) * 4, NotAnImage),
    }
    batch = [
        ("empty", bad["empty"][0]),
        ("photo.jpg", good["photo.jpg"]),
        ("bomb.png", bad["bomb.png"][0]),
        ("rgba.png", good["rgba.png"]),
        ("page.html", bad["page.html"][0]),
        ("cut.png", bad["cut.png"][0]),
        ("anim.gif", good["anim.gif"]),
        ("logo.svg", bad["logo.svg"][0]),
        ("noise.bin", bad["noise.bin"][0]),
        ("gray.png", good["gray.png"]),
    ]
    filters_before = list(warnings.filters)
    results: dict[str, DecodedImage | ImageError] = {}
    for name, data in batch:
        try:
            results[name] = decode_image(data, **limits())
        except ImageError as exc:
            results[name] = exc
    assert list(warnings.filters) == filters_before

    for name, data in good.items():
        result = results[name]
        assert isinstance(result, DecodedImage), (name, result)
        alone = decode_image(data, **limits())
        assert pixel_digest(result.pixels) == pixel_digest(alone.pixels)
    for name, (_, error) in bad.items():
        assert type(results[name]) is error, (name, results[name])


def test_decoding_on_several_threads_keeps_warnings_quiet_and_restores_the_filters() -> None:
    """Each decode ignores warnings; threads leaving in the order they came in (which would make
    nested ``catch_warnings`` restore a stale "ignore") leave the filters as they were."""
    from concurrent.futures import ThreadPoolExecutor

    threads = 4
    inside = threading.Barrier(threads, timeout=10)
    lock = threading.Lock()
    entered: list[int] = []
    turn = threading.Condition(lock)
    left = 0

    def job(i: int) -> int:
        def work() -> int:
            nonlocal left
            with lock:
                entered.append(i)
            inside.wait()  # everyone inside before anyone leaves
            warnings.warn(f"odd file {i}", UserWarning, stacklevel=1)
            with turn:  # leave in the order of entry
                turn.wait_for(lambda: entered[left] == i, timeout=10)
                left += 1
                turn.notify_all()
            return i

        return images._guarded(work)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        before = list(warnings.filters)
        with ThreadPoolExecutor(threads) as pool:
            assert sorted(pool.map(job, range(threads))) == list(range(threads))
        assert list(warnings.filters) == before
        warnings.warn("after the decodes", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["after the decodes"]
