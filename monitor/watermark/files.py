"""Marked publication copies as files: same format and size as the base, metadata kept.

The mark is planned on the picture as everybody sees it (EXIF orientation applied,
transparency on white) and written back in the file's own orientation, so the EXIF
orientation tag stays right. JPEG bases give JPEG at quality ≥ 95 with 4:4:4 chroma; PNG,
WebP (lossless), TIFF and BMP keep their format; other formats (GIF, ICO, AVIF, HEIF)
become PNG. The base's metadata (EXIF, XMP, ICC profile, IPTC, comments, PNG text chunks)
is copied into the marked file byte for byte, so copyright notices survive.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from monitor.errors import ImageError, TruncatedImage, UnsupportedFormat
from monitor.images import decode_full_pixels, to_rgb_array
from monitor.watermark.keys import WatermarkKey
from monitor.watermark.payload import encode_payload
from monitor.watermark.signal import apply_delta, plan_mark, psnr, ssim

#: Output format and file extension per base format.
_OUTPUT = {
    "JPEG": ("JPEG", "jpg"),
    "MPO": ("JPEG", "jpg"),
    "PNG": ("PNG", "png"),
    "WEBP": ("WEBP", "webp"),
    "TIFF": ("TIFF", "tif"),
    "BMP": ("BMP", "bmp"),
}
_ORIENTATION_TAG = 0x0112
# JPEG segments copied from the base: APP1..APP13, APP15 (EXIF, XMP, ICC, IPTC, ...) and
# comments. APP0 (JFIF) is the encoder's own; APP14 (Adobe) describes the base's colour
# transform, which the new file does not share.
_JPEG_KEEP = {*range(0xE1, 0xEE), 0xEF, 0xFE}
# PNG chunks copied from the base (those that do not depend on the pixel format).
_PNG_KEEP = {b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"pHYs", b"eXIf", b"tIME"}


@dataclass(frozen=True)
class MarkedImage:
    data: bytes
    format: str  # Pillow's name of the written format
    extension: str  # without the dot
    psnr: float
    ssim: float
    strength: float


def mark_image(
    data: bytes,
    key: WatermarkKey,
    copy_id: str,
    *,
    jpeg_quality: int = 95,
    min_psnr: float = 40.5,
    min_ssim: float = 0.982,
    max_pixels: int | None = None,
) -> MarkedImage:
    """The marked copy of image ``data`` carrying ``copy_id``. Raises :class:`ImageError`.

    ``min_psnr`` and ``min_ssim`` (mean over R, G, B) hold for the written file against the
    base (encoding loss included): when the encoded copy falls short, the mark is planned
    again more gently.
    """
    seen = decode_full_pixels(data, max_pixels=max_pixels)
    coded = encode_payload(key, copy_id)
    plan_psnr, plan_ssim = min_psnr, min_ssim
    for _ in range(6):
        embedding = plan_mark(seen, key, coded, min_psnr=plan_psnr, min_ssim=plan_ssim)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out, fmt, ext = _write(data, embedding.delta, jpeg_quality)
            except ImageError:
                raise
            except Exception as exc:  # Pillow raises many kinds; the base was readable a moment ago
                raise TruncatedImage(f"cannot write the marked copy ({type(exc).__name__}: {exc})") from exc
        written = decode_full_pixels(out, max_pixels=max_pixels)
        q_psnr, q_ssim = psnr(seen, written), ssim(seen, written)
        if q_psnr >= min_psnr and q_ssim >= min_ssim:
            break
        plan_psnr += max(0.3, min_psnr - q_psnr + 0.1)
        plan_ssim = min(0.999, plan_ssim + max(0.001, min_ssim - q_ssim))
    return MarkedImage(out, fmt, ext, q_psnr, q_ssim, embedding.strength)


def _write(data: bytes, delta: np.ndarray, jpeg_quality: int) -> tuple[bytes, str, str]:
    with Image.open(io.BytesIO(data)) as img:
        base_format = (img.format or "").upper()
        fmt, ext = _OUTPUT.get(base_format, ("PNG", "png"))
        orientation = _orientation(img)
        base_mode = img.mode
        img.seek(0)
        img.load()
        pixels, mode, colour = _working_pixels(img)
        info = dict(img.info)
    raw_delta = _unorient(delta, orientation)
    if raw_delta.shape != pixels.shape[:2]:
        raise UnsupportedFormat("the image's stored size does not match its decoded size")
    marked = pixels.copy()
    if colour == 1:
        plane = marked if marked.ndim == 2 else marked[..., 0]
        plane[...] = apply_delta(plane, raw_delta)
    else:
        marked[..., :3] = apply_delta(marked[..., :3], raw_delta)
    out = Image.fromarray(marked, mode)
    buf = io.BytesIO()
    if fmt == "JPEG":
        if out.mode not in ("L", "RGB"):
            out = out.convert("RGB")
        out.save(buf, "JPEG", quality=max(95, jpeg_quality), subsampling=0)
        return _splice_jpeg(data, buf.getvalue(), keep_icc=base_mode != "CMYK"), fmt, ext
    if fmt == "PNG":
        out.save(buf, "PNG")
        return _splice_png(data, buf.getvalue()), fmt, ext
    extra = {k: info[k] for k in ("exif", "icc_profile", "xmp") if isinstance(info.get(k), bytes | str)}
    if fmt == "WEBP":
        out.save(buf, "WEBP", lossless=True, quality=100, **extra)
    elif fmt == "TIFF":
        out.save(buf, "TIFF", compression="tiff_lzw", **{k: v for k, v in extra.items() if k != "xmp"})
    else:
        if out.mode not in ("L", "RGB", "RGBA"):
            out = out.convert("RGB")
        out.save(buf, fmt)
    return buf.getvalue(), fmt, ext


def _working_pixels(img: Image.Image) -> tuple[np.ndarray, str, int]:
    """(pixels in the stored orientation, Pillow mode, colour channels) of the first frame."""
    mode = img.mode
    if mode in ("L", "RGB", "RGBA", "LA"):
        return np.array(img), mode, 1 if mode in ("L", "LA") else 3
    if mode in ("P", "PA"):
        conv = "RGBA" if "transparency" in img.info or mode == "PA" else "RGB"
        return np.array(img.convert(conv)), conv, 3
    if mode == "CMYK":
        return np.array(img.convert("RGB")), "RGB", 3
    if mode in ("1",):
        return np.array(img.convert("L")), "L", 1
    rgb = to_rgb_array(img)  # 16-bit and float gray, and anything else
    if mode.startswith("I") or mode == "F":
        return np.ascontiguousarray(rgb[..., 0]), "L", 1
    return rgb, "RGB", 3


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _unorient(field: np.ndarray, orientation: int) -> np.ndarray:
    """Undo ``monitor.images._orient`` on a 2-D field (displayed → stored orientation)."""
    if orientation == 2:
        field = field[:, ::-1]
    elif orientation == 3:
        field = field[::-1, ::-1]
    elif orientation == 4:
        field = field[::-1]
    elif orientation == 5:
        field = field.T
    elif orientation == 6:
        field = np.rot90(field, k=1)
    elif orientation == 7:
        field = field.T[::-1, ::-1]
    elif orientation == 8:
        field = np.rot90(field, k=-1)
    return np.ascontiguousarray(field)


# ---------------------------------------------------------------- metadata


def _jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, whole segment bytes) from SOI up to the first SOS/image data."""
    out: list[tuple[int, bytes]] = []
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xDA or marker == 0xD9:
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        out.append((marker, data[pos : pos + 2 + length]))
        pos += 2 + length
    return out


def _splice_jpeg(base: bytes, marked: bytes, *, keep_icc: bool = True) -> bytes:
    """``marked`` with the base's metadata segments, in their order, after its JFIF header."""
    keep = [seg for m, seg in _jpeg_segments(base) if m in _JPEG_KEEP and (keep_icc or not _is_icc(seg))]
    if not keep:
        return marked
    own = _jpeg_segments(marked)
    head = 2
    for m, seg in own:
        if m == 0xE0:
            head += len(seg)
        else:
            break
    drop = {seg for m, seg in own if m in _JPEG_KEEP}  # the encoder's own copies, if any
    rest = marked[head:]
    for seg in drop:
        rest = rest.replace(seg, b"", 1)
    return marked[:head] + b"".join(keep) + rest


def _is_icc(segment: bytes) -> bool:
    return segment[1] == 0xE2 and segment[4:16] == b"ICC_PROFILE\x00"


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    pos = 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        out.append((kind, data[pos : pos + 12 + length]))
        pos += 12 + length
        if kind == b"IEND":
            break
    return out


def _splice_png(base: bytes, marked: bytes) -> bytes:
    """``marked`` with the base's metadata chunks, inserted right after its IHDR."""
    if not base.startswith(b"\x89PNG\r\n\x1a\n"):
        return marked
    keep = [chunk for kind, chunk in _png_chunks(base) if kind in _PNG_KEEP]
    if not keep:
        return marked
    chunks = _png_chunks(marked)
    kinds = {kind for kind, _ in _png_chunks(base) if kind in _PNG_KEEP}
    out = [marked[:8]]
    for kind, chunk in chunks:
        if kind in kinds:
            continue  # the base's own version wins
        out.append(chunk)
        if kind == b"IHDR":
            out.extend(keep)
    return b"".join(out)
