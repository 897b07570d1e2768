"""The check set's picture rules (``bench/heldout.py``): the development corpus's own."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from bench.heldout import convert
from tests.monitor.helpers import CHINA, fixture_image


def _converted(img: Image.Image, tmp_path: Path) -> Image.Image | None:
    source, target = tmp_path / "in.png", tmp_path / "out.jpg"
    img.save(source)
    _, phash = convert((str(source), str(target), 256))
    if phash is None:
        assert not target.exists()
        return None
    return Image.open(target)


def test_a_picture_is_kept_as_a_jpeg_of_its_size(tmp_path: Path) -> None:
    img = fixture_image(CHINA).convert("RGB")
    out = _converted(img, tmp_path)
    assert out is not None and out.format == "JPEG" and out.size == img.size


def test_transparent_margins_are_cut_and_the_rest_flattened_on_white(tmp_path: Path) -> None:
    picture = fixture_image(CHINA).convert("RGBA").resize((300, 280))
    canvas = Image.new("RGBA", (700, 600), (0, 0, 0, 0))
    canvas.paste(picture, (200, 150))
    out = _converted(canvas, tmp_path)
    assert out is not None
    assert 300 <= out.width <= 300 * 1.05 and 280 <= out.height <= 280 * 1.05  # a 2 % margin at most
    assert min(out.convert("L").getpixel((1, 1)), 255) >= 250  # the margin kept is white, not black


def test_small_near_blank_or_long_pictures_are_left_out(tmp_path: Path) -> None:
    china = fixture_image(CHINA).convert("RGB")
    assert _converted(china.resize((200, 150)), tmp_path) is None  # under 256 px
    assert _converted(china.resize((1200, 280)), tmp_path) is None  # longer than 4:1
    assert _converted(Image.new("RGB", (600, 400), (120, 130, 140)), tmp_path) is None  # blank
    transparent = Image.new("RGBA", (600, 400), (0, 0, 0, 0))
    assert _converted(transparent, tmp_path) is None
