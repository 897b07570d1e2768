"""Safe image intake: bytes in, a normalised working copy out, or a clear :class:`ImageError`.

Everything the monitor looks at goes through :func:`decode_image`. It

* refuses what is not a raster image (0 bytes, HTML/text, SVG, PDF, unknown bytes) with a
  specific error, before Pillow is asked to guess;
* checks the byte limit, then the pixel count from the header before any pixel is decoded
  (decompression bombs are refused, never decoded);
* uses JPEG draft mode so a large JPEG is decoded straight at about the working size;
* applies the EXIF orientation, takes the first frame of animations (and counts frames),
  maps CMYK, 16-bit, float, palette and alpha images to 8-bit RGB, compositing
  transparency on white;
* never lets anything but an :class:`ImageError` out, whatever the bytes: Pillow, numpy and
  OpenCV failures (``struct.error``, ``MemoryError``, ...) are translated here, and their
  warnings are swallowed. The warning filters are process-wide, so while any thread decodes,
  warnings are ignored in every thread; decoding on several threads at once is safe (the
  filters are put back when the last decode ends).
"""

from __future__ import annotations

import codecs
import hashlib
import io
import math
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from monitor.errors import (
    EmptyImage,
    ImageError,
    ImageTooLarge,
    NotAnImage,
    TruncatedImage,
    UnsupportedFormat,
)

#: Raster formats the monitor accepts (Pillow's names).
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF", "HEIF", "ICO"})
#: Formats whose encoders are lossy (a differing copy in these was re-encoded).
LOSSY_FORMATS = frozenset({"JPEG", "MPO", "WEBP", "AVIF", "HEIF"})

_JPEG_FORMATS = frozenset({"JPEG", "MPO"})
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_ORIENTATION_TAG = 0x0112

_T = TypeVar("_T")

# Magic numbers of the formats we read: bytes Pillow cannot identify but which start like
# one of these are a broken or cut-short file of that format, not "something else".
_SUPPORTED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"\x00\x00\x01\x00", "ICO"),
)
# ISO-BMFF brands (bytes 8..12 after "ftyp").
_AVIF_BRANDS = (b"avif", b"avis")
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
# Image-ish things Pillow cannot read at all.
_UNSUPPORTED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\x0a", "JPEG XL images are not supported"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL images are not supported"),
    (b"\x1f\x8b", "gzip-compressed data (e.g. SVGZ) is not a raster image"),
    (b"PK\x03\x04", "a ZIP archive is not an image"),
)


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A decoded image: facts about the file plus an RGB working copy.

    ``width`` and ``height`` are the full-resolution size after the EXIF orientation;
    ``pixels`` is ``(h, w, 3)`` uint8 RGB, at most ``work_side`` on its longest side;
    ``scale`` is its width divided by the full ``width`` (1.0 when not reduced).
    """

    sha256: str
    size_bytes: int
    format: str
    mode: str
    width: int
    height: int
    frames: int
    pixels: np.ndarray = field(repr=False)
    scale: float
    is_grayscale: bool
    jpeg_quality: int | None = None
    has_alpha: bool = False

    @property
    def is_lossy(self) -> bool:
        return self.format in LOSSY_FORMATS

    def gray(self) -> np.ndarray:
        """The working copy as 8-bit luminance (ITU-R 601, as OpenCV and Pillow use)."""
        return cv2.cvtColor(np.ascontiguousarray(self.pixels), cv2.COLOR_RGB2GRAY)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sniff(data: bytes) -> None:
    """Raise the specific error for bytes that are plainly not a raster image."""
    if not data:
        raise EmptyImage("the file is empty (0 bytes)")
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n\f").lower()
    if head.startswith(b"<"):
        if head.startswith(b"<!doctype html") or any(
            tag in head for tag in (b"<html", b"<head", b"<body", b"<meta", b"<title", b"<script")
        ):
            raise NotAnImage("this is an HTML page, not an image")
        if b"<svg" in head:
            raise UnsupportedFormat("SVG is a vector format; only raster images are analysed")
    if head.startswith(b"%pdf"):
        raise UnsupportedFormat("PDF documents are not analysed; export the image from it")
    if head.startswith(b"%!ps"):
        raise UnsupportedFormat("PostScript documents are not analysed; export the image from it")
    if _looks_like_text(data[:1024]):
        raise NotAnImage("this is text, not an image")


def _looks_like_text(sample: bytes) -> bool:
    """True for UTF-8 (or BOM-marked UTF-16) text: the bytes decode and are printable."""
    codec = "utf-16" if sample.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8"
    try:
        text = codecs.getincrementaldecoder(codec)().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    if not text or "\x00" in text:
        return False
    printable = sum(ch.isprintable() or ch in "\t\n\r\f\v" for ch in text)
    return printable / len(text) > 0.97


def decode_image(
    data: bytes,
    *,
    max_bytes: int = 50 * 1024 * 1024,
    max_pixels: int = 80_000_000,
    work_side: int = 1024,
) -> DecodedImage:
    """Decode ``data`` into a :class:`DecodedImage`, or raise an :class:`ImageError`."""
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the file is {len(data):,} bytes; the limit is {max_bytes:,}")
    sniff(data)
    return _guarded(lambda: _decode(data, max_pixels=max_pixels, work_side=work_side))


def decode_full_pixels(data: bytes, *, max_pixels: int | None = None) -> np.ndarray:
    """Full-resolution RGB pixels of already validated bytes (for the same-pixels test).

    First frame, EXIF orientation applied, transparency on white; errors are
    :class:`ImageError` as in :func:`decode_image`.
    """
    sniff(data)
    return _guarded(lambda: _decode_full(data, max_pixels=max_pixels))


def pixel_digest(rgb: np.ndarray) -> str:
    """SHA-256 over the shape and the RGB bytes: equal iff the pixels are equal."""
    h = hashlib.sha256(f"{rgb.shape[0]}x{rgb.shape[1]}:".encode())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


class _QuietWarnings:
    """Warnings ignored while any thread is inside; the filters restored when the last leaves.

    ``warnings.catch_warnings`` saves and restores the process-wide filters, so two threads
    nesting it out of order can leave "ignore" installed for good; this counts instead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: warnings.catch_warnings[None] | None = None

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                saved = warnings.catch_warnings()
                saved.__enter__()
                warnings.simplefilter("ignore")
                self._saved = saved
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._saved is not None:
                self._saved.__exit__(None, None, None)
                self._saved = None


_quiet = _QuietWarnings()


def _guarded(work: Callable[[], _T]) -> _T:
    """Run a Pillow/numpy/OpenCV job, translating every failure into an :class:`ImageError`."""
    # Pillow warns about odd but readable files (corrupt EXIF, malformed MPO, bombs under its
    # own limit, which we check ourselves); none of that should stop or leak.
    with _quiet:
        try:
            return work()
        except ImageError:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(f"the image declares more pixels than allowed ({exc})") from exc
        except MemoryError as exc:
            raise ImageTooLarge("the image needs more memory to decode than is available") from exc
        except Exception as exc:  # Pillow raises OSError, SyntaxError, struct.error, IndexError, ...
            raise TruncatedImage(f"the image data is broken or cut short ({_why(exc)})") from exc


def _why(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _open(data: bytes, max_pixels: int | None = None) -> Image.Image:
    if max_pixels is not None and data.startswith(b"\x00\x00\x01\x00"):
        _check_ico_entries(data, max_pixels)
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise _unidentified(data) from exc


def _unidentified(data: bytes) -> ImageError:
    """The error for bytes no Pillow plugin claimed."""
    Image.init()
    known = _magic_format(data)
    if known is not None:
        if known in Image.OPEN:
            return TruncatedImage(f"the {known} file is cut short or its header is corrupt")
        return UnsupportedFormat(f"{known} images need a Pillow plugin that is not installed")
    for magic, message in _UNSUPPORTED_MAGIC:
        if data.startswith(magic):
            return UnsupportedFormat(message)
    return NotAnImage("the bytes are not in any image format this monitor knows")


def _magic_format(data: bytes) -> str | None:
    for magic, name in _SUPPORTED_MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        if data[8:12] in _AVIF_BRANDS:
            return "AVIF"
        if data[8:12] in _HEIF_BRANDS:
            return "HEIF"
    return None


def _decode(data: bytes, *, max_pixels: int, work_side: int) -> DecodedImage:
    img = _open(data, max_pixels)
    try:
        fmt = (img.format or "").upper()
        if fmt not in SUPPORTED_FORMATS:
            raise UnsupportedFormat(f"{fmt or 'this'} images are not supported")
        width, height = img.size
        _check_pixels(width, height, max_pixels)
        img, frames = _first_frame(img, data)
        mode = img.mode
        quality = _safe_quality(img) if fmt in _JPEG_FORMATS else None
        orientation = _orientation(img)
        drafted = False
        if fmt in _JPEG_FORMATS and max(width, height) > work_side:
            # Decode at 1/2, 1/4 or 1/8 scale, never below the working size.
            ratio = work_side / max(width, height)
            drafted = img.draft("RGB", (math.ceil(width * ratio), math.ceil(height * ratio))) is not None
        img.load()
        if not drafted:
            # Some containers (ICO, GIF) only know the real size once loaded.
            width, height = img.size
            _check_pixels(width, height, max_pixels)
        has_alpha = _has_alpha(img)
        rgb = _convert(img)
    finally:
        img.close()
    rgb = _orient(_fit(rgb, work_side), orientation)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return DecodedImage(
        sha256=sha256_hex(data),
        size_bytes=len(data),
        format=fmt,
        mode=mode,
        width=width,
        height=height,
        frames=frames,
        pixels=rgb,
        scale=rgb.shape[1] / width,
        is_grayscale=_looks_grayscale(mode, rgb),
        jpeg_quality=quality,
        has_alpha=has_alpha,
    )


def _decode_full(data: bytes, *, max_pixels: int | None) -> np.ndarray:
    img = _open(data, max_pixels)
    try:
        if max_pixels is not None:
            _check_pixels(*img.size, max_pixels)
        img, _ = _first_frame(img, data)
        orientation = _orientation(img)
        img.load()
        if max_pixels is not None:
            _check_pixels(*img.size, max_pixels)
        rgb = _convert(img)
    finally:
        img.close()
    return _orient(rgb, orientation)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise TruncatedImage(f"the image header declares no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}"
        )


def _check_ico_entries(data: bytes, max_pixels: int) -> None:
    """Refuse an ICO whose embedded images declare more pixels than allowed.

    The ICO directory stores sizes in one byte each, but each embedded PNG or DIB declares
    its own size, and Pillow decodes the largest entry while *opening* the file, so this
    runs on the raw bytes before Pillow sees them.
    """
    count = int.from_bytes(data[4:6], "little")
    for i in range(count):
        entry = data[6 + 16 * i : 22 + 16 * i]
        if len(entry) < 16:
            break
        offset = int.from_bytes(entry[12:16], "little")
        head = data[offset : offset + 24]
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            width = int.from_bytes(head[16:20], "big")
            height = int.from_bytes(head[20:24], "big")
        elif len(head) >= 12 and int.from_bytes(head[:4], "little") == 12:  # BITMAPCOREHEADER
            width = int.from_bytes(head[4:6], "little")
            height = int.from_bytes(head[6:8], "little") // 2
        elif len(head) >= 12:  # BITMAPINFOHEADER and later; the height counts the AND mask too
            width = abs(int.from_bytes(head[4:8], "little", signed=True))
            height = abs(int.from_bytes(head[8:12], "little", signed=True)) // 2
        else:
            continue
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"the icon holds a {width}x{height} = {width * height:,} pixel image; "
                f"the limit is {max_pixels:,}"
            )


def _first_frame(img: Image.Image, data: bytes) -> tuple[Image.Image, int]:
    """``img`` positioned on its first frame, and the number of frames.

    Counting walks the frame headers without decoding them. A file whose later frames are
    broken is still read from its first frame (reported as one frame).
    """
    try:
        frames = max(1, int(getattr(img, "n_frames", 1) or 1))
        if frames > 1 and img.tell() != 0:
            img.seek(0)
        return img, frames
    except Exception:
        img.close()
        return _open(data), 1


def _safe_quality(img: Image.Image) -> int | None:
    try:
        return estimate_jpeg_quality(img)
    except Exception:
        return None


def _orientation(img: Image.Image) -> int:
    """The EXIF (or XMP) orientation 1..8; 1 when absent or unreadable."""
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _orient(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an ``(h, w, c)`` array, as ``ImageOps.exif_transpose`` does."""
    if orientation == 2:
        rgb = rgb[:, ::-1]
    elif orientation == 3:
        rgb = rgb[::-1, ::-1]
    elif orientation == 4:
        rgb = rgb[::-1]
    elif orientation == 5:
        rgb = rgb.transpose(1, 0, 2)
    elif orientation == 6:
        rgb = np.rot90(rgb, k=-1)
    elif orientation == 7:
        rgb = rgb.transpose(1, 0, 2)[::-1, ::-1]
    elif orientation == 8:
        rgb = np.rot90(rgb, k=1)
    return np.ascontiguousarray(rgb)


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in _ALPHA_MODES or (img.mode in ("P", "L", "RGB") and "transparency" in img.info)


def _convert(img: Image.Image) -> np.ndarray:
    try:
        return to_rgb_array(img)
    except ValueError as exc:  # Pillow: "conversion from X to RGB not supported"
        raise UnsupportedFormat(f"{img.mode} pixels cannot be converted to RGB ({exc})") from exc


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """8-bit RGB from any Pillow mode; transparency is composited on white."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return np.repeat(_gray_to_8bit(img)[..., None], 3, axis=2)
    if _has_alpha(img):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint16)
        alpha = rgba[..., 3:4]
        # out = c * a + 255 * (1 - a), in integers, rounded.
        out = (rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
        return out.astype(np.uint8)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def _gray_to_8bit(img: Image.Image) -> np.ndarray:
    """16-bit, 32-bit integer and float gray to 8 bits, without clipping the top end."""
    mode = img.mode
    if mode.startswith("I;16"):
        arr16 = np.asarray(img).astype(np.uint32)
        return ((arr16 * 255 + 32767) // 65535).astype(np.uint8)
    arr = np.asarray(img).astype(np.float32)
    if mode == "F":
        finite = arr[np.isfinite(arr)]
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 0.0
        if hi <= lo:
            return np.zeros(arr.shape, np.uint8)
        arr = (np.nan_to_num(arr, nan=lo, posinf=hi, neginf=lo) - lo) * np.float32(255.0 / (hi - lo))
    else:  # "I": 32-bit integers; most often 16-bit data that Pillow widened
        top = 65535.0 if arr.size and float(arr.max()) > 255 else 255.0
        arr = arr * np.float32(255.0 / top)
    return np.clip(arr + 0.5, 0, 255).astype(np.uint8)


def _fit(rgb: np.ndarray, side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    longest = max(h, w)
    if longest <= side:
        return np.ascontiguousarray(rgb)
    import cv2

    scale = side / longest
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)


def _looks_grayscale(mode: str, rgb: np.ndarray) -> bool:
    """Gray modes, or RGB whose channels agree up to JPEG chroma noise."""
    if mode in _GRAY_MODES:
        return True
    step = max(1, math.ceil(math.sqrt(rgb.shape[0] * rgb.shape[1] / 32768)))
    sample = np.ascontiguousarray(rgb[::step, ::step])
    planes = cv2.split(sample)
    chroma = cv2.subtract(
        cv2.max(cv2.max(planes[0], planes[1]), planes[2]), cv2.min(cv2.min(planes[0], planes[1]), planes[2])
    )
    # Noise is small and rare; any real colour (even a small logo) is strong somewhere.
    return bool(chroma.mean() <= 2.0 and np.count_nonzero(chroma > 24) <= 0.001 * chroma.size)


# IJG's standard quantization tables (quality 50), in natural (row-major) order, which is
# the order Pillow's ``quantization`` uses (it de-zigzags the DQT segment).
_STD_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
     14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.int64,
)  # fmt: skip
_STD_CHROMA = np.array(
    [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
     47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32,
    dtype=np.int64,
)  # fmt: skip


def _ijg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """The table libjpeg's ``jpeg_set_quality(quality, force_baseline=TRUE)`` writes."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


_IJG_TABLES = {q: (_ijg_table(_STD_LUMA, q), _ijg_table(_STD_CHROMA, q)) for q in range(1, 101)}


def estimate_jpeg_quality(img: Image.Image) -> int | None:
    """The IJG quality (1-100) whose tables best fit the file's, or None when it has none."""
    tables = getattr(img, "quantization", None)
    if not isinstance(tables, dict) or 0 not in tables:
        return None
    luma = np.asarray(tables[0], dtype=np.int64).ravel()
    if luma.size != 64:
        return None
    chroma = np.asarray(tables[1], dtype=np.int64).ravel() if 1 in tables else None
    if chroma is not None and chroma.size != 64:
        chroma = None
    best, best_err = None, math.inf
    for q, (std_luma, std_chroma) in _IJG_TABLES.items():
        err = float(np.abs(std_luma - luma).sum())
        if chroma is not None:
            err += float(np.abs(std_chroma - chroma).sum())
        if err < best_err:
            best, best_err = q, err
    return best
