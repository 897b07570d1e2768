"""Pictures the API and the dashboard show: always re-encoded, never the stored bytes as is.

Candidate images come from other people's web pages; serving their bytes from this origin
could let a file that is really HTML or SVG run in the dashboard. Every picture is decoded with
the intake limits (orientation applied) and written again as JPEG (or PNG when it has alpha).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from monitor.images import decode_image
from monitor.settings import Settings


@dataclass(frozen=True)
class Picture:
    data: bytes
    media_type: str
    width: int  # full-resolution size, orientation applied (the coordinates of regions)
    height: int


def oriented_size(data: bytes, settings: Settings) -> tuple[int, int]:
    image = decode_image(
        data, max_bytes=settings.intake.max_bytes, max_pixels=settings.intake.max_pixels, work_side=128
    )
    return image.width, image.height


def thumbnail(data: bytes, settings: Settings, *, side: int = 512) -> Picture:
    """A re-encoded copy at most ``side`` pixels on its longest side."""
    side = max(32, min(int(side), 2048))
    image = decode_image(
        data,
        max_bytes=settings.intake.max_bytes,
        max_pixels=settings.intake.max_pixels,
        work_side=max(side, 128),
    )
    pic = Image.fromarray(image.pixels)
    pic.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    pic.save(buf, "JPEG", quality=85)
    return Picture(buf.getvalue(), "image/jpeg", image.width, image.height)
