"""The attack suite: ways real reuse changes an image, with seeded random parameters.

Each attack takes a Pillow RGB image and a ``random.Random`` and returns ``(image, params)``;
:func:`encode` saves the result as a JPEG (4:2:0, as the web does) or PNG. Used by the
accuracy and watermark benchmarks and by tests.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Attack = Callable[[Image.Image, random.Random], tuple[Image.Image, dict[str, object]]]

POEM = [
    "Whose woods these are I think I know.",
    "His house is in the village though;",
    "He will not see me stopping here",
    "To watch his woods fill up with snow.",
]


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(8, size))


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality, subsampling="4:2:0")
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out.convert("RGB")


def encode(img: Image.Image, fmt: str = "JPEG", quality: int = 90) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB").save(buf, "JPEG", quality=quality, subsampling="4:2:0")
    else:
        img.save(buf, fmt)
    return buf.getvalue()


def a_jpeg(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    q = r.randint(30, 90)
    return jpeg(img, q), {"quality": q}


def scaled(img: Image.Image, f: float, resample: Image.Resampling = Image.Resampling.LANCZOS) -> Image.Image:
    """``img`` scaled by ``f`` on both axes, at least 8 pixels each."""
    return img.resize((max(8, round(img.width * f)), max(8, round(img.height * f))), resample)


def shrunk(img: Image.Image, side: int) -> Image.Image:
    """A thumbnail of ``img`` at most ``side`` pixels on its longer side."""
    out = img.copy()
    out.thumbnail((side, side), Image.Resampling.LANCZOS)
    return out


def a_resize(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    f = r.uniform(0.3, 0.8)
    return scaled(img, f), {"factor": round(f, 3)}


def _crop_keep(img: Image.Image, r: random.Random, keep: float) -> Image.Image:
    w, h = img.size
    aspect = r.uniform(0.7, 1.4)
    cw = min(w, round(math.sqrt(keep * w * h * aspect)))
    ch = min(h, round(keep * w * h / max(1, cw)))
    x = r.randint(0, w - cw)
    y = r.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch))


def a_crop(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """Cut away 5-50% of the area (keep 50-95%)."""
    removed = r.uniform(0.05, 0.5)
    return _crop_keep(img, r, 1 - removed), {"removed": round(removed, 3)}


def a_crop_part(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """Keep only a piece: 5-50% of the area."""
    keep = r.uniform(0.05, 0.5)
    return _crop_keep(img, r, keep), {"kept": round(keep, 3)}


def a_crop_corner(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """One corner only (25-50% of each side)."""
    w, h = img.size
    fx, fy = r.uniform(0.25, 0.5), r.uniform(0.25, 0.5)
    cw, ch = round(w * fx), round(h * fy)
    corner = r.choice(["tl", "tr", "bl", "br"])
    x = 0 if corner[1] == "l" else w - cw
    y = 0 if corner[0] == "t" else h - ch
    return img.crop((x, y, x + cw, y + ch)), {"corner": corner, "fx": round(fx, 2), "fy": round(fy, 2)}


def a_border(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    w, h = img.size
    b = round(max(w, h) * r.uniform(0.03, 0.2))
    color = r.choice([(255, 255, 255), (0, 0, 0), (200, 180, 160)])
    return ImageOps.expand(img, border=b, fill=color), {"border": b}


def a_page(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """The work, scaled, on a blog page with a poem above it."""
    w, h = img.size
    scale = r.uniform(0.5, 1.0)
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    pw = max(sw + 80, round(sw * r.uniform(1.15, 1.6)))
    size = max(12, pw // 30)
    text_h = (size + 6) * (len(POEM) + 2)
    ph = text_h + sh + r.randint(40, 200)
    page = Image.new("RGB", (pw, ph), (252, 252, 250))
    d = ImageDraw.Draw(page)
    d.text((30, 10), "Stopping by Woods", fill=(20, 20, 20), font=font(size + 4))
    for i, line in enumerate(POEM):
        d.text((30, 20 + (i + 1) * (size + 6)), line, fill=(40, 40, 40), font=font(size))
    x = r.randint(0, pw - sw)
    page.paste(img.resize((sw, sh), Image.Resampling.LANCZOS), (x, text_h))
    return page, {"scale": round(scale, 3), "at": [x, text_h]}


def a_small_on_page(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """The work small in a screenshot of a page: 15-30% of a 1000-pixel page's width, the poem
    above it and a line of comments below."""
    pw = 1000
    share = r.uniform(0.15, 0.3)
    sw = round(pw * share)
    sh = max(8, round(img.height * sw / img.width))
    size = 18
    text_h = (size + 6) * (len(POEM) + 2)
    page = Image.new("RGB", (pw, text_h + sh + 80), (252, 252, 250))
    d = ImageDraw.Draw(page)
    for i, line in enumerate(POEM):
        d.text((30, 20 + (i + 1) * (size + 6)), line, fill=(40, 40, 40), font=font(size))
    x = r.randint(30, pw - sw - 30)
    page.paste(img.resize((sw, sh), Image.Resampling.LANCZOS), (x, text_h))
    comments = "3 comments  ·  Reply  ·  Share this poem"
    d.text((30, text_h + sh + 30), comments, fill=(90, 90, 90), font=font(16))
    return page, {"share": round(share, 3), "at": [x, text_h]}


def a_mirror(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    return ImageOps.mirror(img), {}


def a_rotate(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    angle = r.uniform(3, 15) * r.choice([-1, 1])
    expand = r.random() < 0.5
    fill = r.choice([(0, 0, 0), (255, 255, 255)])
    return img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=expand, fillcolor=fill), {
        "angle": round(angle, 2),
        "expand": expand,
    }


def a_stretch(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """Another aspect ratio: one axis scaled by 0.7-0.8 or 1.25-1.4 (a picture forced into a
    banner or a square slot)."""
    f = r.choice([r.uniform(0.7, 0.8), r.uniform(1.25, 1.4)])
    w, h = img.size
    size = (max(1, round(w * f)), h) if r.random() < 0.5 else (w, max(1, round(h * f)))
    axis = "x" if size[1] == h else "y"
    return img.resize(size, Image.Resampling.BICUBIC), {"axis": axis, "factor": round(f, 3)}


def a_perspective(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """A photo of a screen or a print, roughly: each corner pulled in by up to 6% of the side."""
    w, h = img.size
    pulled = [(r.uniform(0, 0.06) * w, r.uniform(0, 0.06) * h) for _ in range(4)]
    dst = [
        (pulled[0][0], pulled[0][1]),
        (w - pulled[1][0], pulled[1][1]),
        (w - pulled[2][0], h - pulled[2][1]),
        (pulled[3][0], h - pulled[3][1]),
    ]
    # Pillow wants the map from output to input: solve the 8 coefficients for dst -> src
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    coeffs = np.linalg.solve(np.array(rows, np.float64), np.array(rhs, np.float64)).tolist()
    fill = r.choice([(0, 0, 0), (255, 255, 255)])
    out = img.transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC, fillcolor=fill)
    return out, {"pulled_max": round(max(max(x / w, y / h) for x, y in pulled), 3)}


def a_brightness(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    b, c = r.uniform(0.6, 1.5), r.uniform(0.6, 1.5)
    return ImageEnhance.Contrast(ImageEnhance.Brightness(img).enhance(b)).enhance(c), {
        "brightness": round(b, 2),
        "contrast": round(c, 2),
    }


def a_text(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    out = img.copy()
    d = ImageDraw.Draw(out)
    w, h = out.size
    size = max(12, h // 10)
    words = r.choice(["SO TRUE", "when the poem hits", "Monday mood", "repost if you agree"])
    y = r.choice([size // 3, h - size - size // 2])
    d.text(
        (w // 20, y),
        words,
        fill=(255, 255, 255),
        font=font(size),
        stroke_width=max(1, size // 12),
        stroke_fill=(0, 0, 0),
    )
    return out, {"text": words}


def a_emoji(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """Sticker-like overlays: filled faces and hearts, 1-3 of them."""
    out = img.copy()
    d = ImageDraw.Draw(out)
    w, h = out.size
    n = r.randint(1, 3)
    for _ in range(n):
        s = round(min(w, h) * r.uniform(0.08, 0.2))
        x, y = r.randint(0, max(0, w - s)), r.randint(0, max(0, h - s))
        d.ellipse((x, y, x + s, y + s), fill=(255, 204, 0), outline=(120, 80, 0), width=max(1, s // 20))
        d.ellipse((x + s * 0.28, y + s * 0.3, x + s * 0.4, y + s * 0.45), fill=(60, 40, 0))
        d.ellipse((x + s * 0.6, y + s * 0.3, x + s * 0.72, y + s * 0.45), fill=(60, 40, 0))
        d.arc(
            (x + s * 0.25, y + s * 0.4, x + s * 0.75, y + s * 0.8),
            20,
            160,
            fill=(60, 40, 0),
            width=max(1, s // 15),
        )
    return out, {"stickers": n}


def a_grayscale(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    return ImageOps.grayscale(img).convert("RGB"), {}


def a_screenshot(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """A window around the work: title bar, side bars, a status bar, scaled."""
    w, h = img.size
    bar = max(16, h // 14)
    side = max(4, w // 40)
    frame = Image.new("RGB", (w + 2 * side, h + bar + 2 * side + bar // 2), (232, 232, 236))
    d = ImageDraw.Draw(frame)
    d.rectangle((0, 0, frame.width, bar), fill=(50, 54, 62))
    for i, c in enumerate([(255, 95, 86), (255, 189, 46), (39, 201, 63)]):
        d.ellipse((8 + i * (bar + 2), bar // 4, 8 + i * (bar + 2) + bar // 2, bar // 4 + bar // 2), fill=c)
    d.text((bar * 5, bar // 5), "image.jpg - Viewer", fill=(220, 220, 220), font=font(bar // 2))
    frame.paste(img, (side, bar + side))
    f = r.uniform(0.6, 1.0)
    return frame.resize((round(frame.width * f), round(frame.height * f)), Image.Resampling.BILINEAR), {
        "scale": round(f, 2)
    }


def combo(*attacks: Attack) -> Attack:
    def run(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
        params: dict[str, object] = {}
        for a in attacks:
            img, p = a(img, r)
            params[a.__name__.removeprefix("a_")] = p
        return img, params

    run.__name__ = "+".join(a.__name__.removeprefix("a_") for a in attacks)
    return run


SUITE: dict[str, Attack] = {
    "jpeg": a_jpeg,
    "resize": a_resize,
    "crop": a_crop,
    "crop_part": a_crop_part,
    "crop_corner": a_crop_corner,
    "border": a_border,
    "page": a_page,
    "mirror": a_mirror,
    "rotate": a_rotate,
    "brightness": a_brightness,
    "text": a_text,
    "emoji": a_emoji,
    "grayscale": a_grayscale,
    "screenshot": a_screenshot,
    "crop+resize+jpeg": combo(a_crop, a_resize, a_jpeg),
    "mirror+jpeg": combo(a_mirror, a_jpeg),
    "rotate+crop": combo(a_rotate, a_crop),
    "grayscale+jpeg": combo(a_grayscale, a_jpeg),
    "page+jpeg": combo(a_page, a_jpeg),
    "text+brightness+jpeg": combo(a_text, a_brightness, a_jpeg),
}

#: Reuse the issue's suite leaves out, measured beside it: a crop forced into another aspect
#: ratio, a perspective view (a photographed screen or print), and the work small in a page.
EXTRA: dict[str, Attack] = {
    "crop+stretch": combo(a_crop, a_stretch),
    "perspective": a_perspective,
    "small_on_page": a_small_on_page,
}


# ---------------------------------------------------------------- other reuse
# Kinds of reuse neither the suite nor EXTRA holds, run with ``bench/accuracy.py
# --other``: photo-app filters, blur, noise, WebP, thumbnails, a social network's square,
# upscaling, meme captions, a GIF palette, someone else's tiled watermark, a negative, quarter
# turns, sepia, a round profile picture, a story's blurred fill, turns of 20-45 degrees, a phone
# photo of a print, a social post's screenshot, side by side with another picture, a mirrored,
# cropped and turned copy, an enlarged detail, a "deep-fried" re-share, a tiny thumbnail.


def _side_scale(img: Image.Image) -> float:
    return max(img.size) / 512


def a_filter(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """A photo-app filter: saturation, a colour cast and a vignette."""
    sat = r.uniform(0.3, 1.7)
    out = ImageEnhance.Color(img).enhance(sat)
    gains = [r.uniform(0.85, 1.15) for _ in range(3)]
    a = np.asarray(out, np.float32) * np.array(gains, np.float32)
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)) / math.sqrt(2)
    v = r.uniform(0.3, 0.6)
    a *= (1 - v * d**2)[..., None]
    out = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    return out, {"saturation": round(sat, 2), "vignette": round(v, 2)}


def a_blur(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    rad = r.uniform(1.0, 2.5) * _side_scale(img)
    return img.filter(ImageFilter.GaussianBlur(rad)), {"radius": round(rad, 2)}


def a_noise(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    sigma = r.uniform(6, 16)
    rng = np.random.default_rng(r.randrange(2**32))
    a = np.asarray(img, np.float32) + rng.normal(0, sigma, (img.height, img.width, 1)).astype(np.float32)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)), {"sigma": round(sigma, 1)}


def a_webp(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    q = r.randint(30, 60)
    buf = io.BytesIO()
    img.save(buf, "WEBP", quality=q)
    buf.seek(0)
    return Image.open(buf).convert("RGB"), {"quality": q}


def a_thumbnail(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    side = r.randint(100, 160)
    return shrunk(img, side), {"side": side}


def a_square(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """A social network's square: the centred square of the shorter side, resized."""
    w, h = img.size
    s = min(w, h)
    x, y = (w - s) // 2, (h - s) // 2
    side = r.choice([320, 640, 1080])
    return img.crop((x, y, x + s, y + s)).resize((side, side), Image.Resampling.LANCZOS), {"side": side}


def a_upscale(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    f = r.uniform(1.5, 2.5)
    size = (round(img.width * f), round(img.height * f))
    return img.resize(size, Image.Resampling.BICUBIC), {"factor": round(f, 2)}


def a_meme(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """Caption bands above and below, as a meme generator makes."""
    w, h = img.size
    band = round(h * r.uniform(0.12, 0.25))
    out = Image.new("RGB", (w, h + 2 * band), (255, 255, 255))
    out.paste(img, (0, band))
    d = ImageDraw.Draw(out)
    d.text((10, band // 4), "WHEN THE POEM NEEDS A PICTURE", fill=(0, 0, 0), font=font(band // 2))
    d.text((10, h + band + band // 4), "JUST TAKE ONE", fill=(0, 0, 0), font=font(band // 2))
    return out, {"band": band}


def a_posterize(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """A GIF's palette: 16-64 colours, dithered."""
    n = r.choice([16, 32, 64])
    return img.quantize(n, dither=Image.Dither.FLOYDSTEINBERG).convert("RGB"), {"colours": n}


def a_stock(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """Someone else's visible watermark over the whole picture, semi-transparent."""
    w, h = img.size
    layer = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(layer)
    size = max(12, w // 12)
    for y in range(0, h, size * 3):
        for x in range(-w, w, size * 8):
            d.text((x + (y // 2) % (size * 8), y), "© stockpix", fill=255, font=font(size))
    alpha = r.uniform(0.25, 0.5)
    white = Image.new("RGB", (w, h), (255, 255, 255))
    return Image.composite(white, img, layer.point(lambda v: round(v * alpha))), {"alpha": round(alpha, 2)}


def a_invert(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    return ImageOps.invert(img), {}


def a_rot90(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    k = r.choice([90, 180, 270])
    return img.rotate(k, expand=True), {"angle": k}


def a_sepia(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    g = ImageOps.grayscale(img)
    return ImageOps.colorize(g, (40, 26, 13), (255, 240, 192)), {}


def a_avatar(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """A profile picture: the centred square, 96-240 px, in a disk on white or black."""
    side = r.randint(96, 240)
    square = ImageOps.fit(img, (side, side), Image.Resampling.LANCZOS)
    disk = Image.new("L", (side * 4, side * 4), 0)
    ImageDraw.Draw(disk).ellipse((0, 0, side * 4 - 1, side * 4 - 1), fill=255)
    fill = r.choice([(255, 255, 255), (0, 0, 0)])
    out = Image.new("RGB", (side, side), fill)
    out.paste(square, (0, 0), disk.resize((side, side), Image.Resampling.LANCZOS))
    return out, {"side": side, "fill": fill[0]}


def a_blurfill(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """A story or a reel: the work fitted into 9:16 (or a square, or 4:5), over a blurred,
    enlarged copy of itself that fills the frame."""
    w, h = img.size
    aspect = r.choice([16 / 9, 1.0, 5 / 4])
    width = r.choice([540, 720, 1080])
    height = round(width * aspect)
    cover = max(width / w, height / h)
    big = img.resize((math.ceil(w * cover), math.ceil(h * cover)), Image.Resampling.BILINEAR)
    x, y = (big.width - width) // 2, (big.height - height) // 2
    radius = r.uniform(0.02, 0.05) * width
    out = big.crop((x, y, x + width, y + height)).filter(ImageFilter.GaussianBlur(radius))
    fit = min(width / w, height / h)
    fg = img.resize((max(1, round(w * fit)), max(1, round(h * fit))), Image.Resampling.LANCZOS)
    out.paste(fg, ((width - fg.width) // 2, (height - fg.height) // 2))
    return out, {"size": [width, height], "blur": round(radius, 1)}


def a_rotate_far(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """Turned further than the suite's 15 degrees: 20-45, as a picture pinned askew in a collage."""
    angle = r.uniform(20, 45) * r.choice([-1, 1])
    out = img.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=(255, 255, 255))
    return out, {"angle": round(angle, 1)}


def a_print_photo(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """A phone photo of a print or a screen: the picture askew on a desk, lit unevenly, a little
    out of focus, with sensor noise and the camera's tone curve."""
    w, h = img.size
    tilted, params = a_perspective(img, r)
    margin = round(max(w, h) * r.uniform(0.05, 0.15))
    desk = tuple(r.randint(60, 200) for _ in range(3))
    out = Image.new("RGB", (w + 2 * margin, h + 2 * margin), desk)
    out.paste(tilted, (margin, margin))
    a = np.asarray(out, np.float32) / 255
    hh, ww = a.shape[:2]
    yy, xx = np.mgrid[0:hh, 0:ww]
    angle = r.uniform(0, 2 * math.pi)
    ramp = (np.cos(angle) * xx / ww + np.sin(angle) * yy / hh) * r.uniform(0.15, 0.35)
    gamma = r.uniform(0.8, 1.25)
    a = np.clip(a * (1 - ramp[..., None] + ramp.mean()), 0, 1) ** gamma * 255
    rng = np.random.default_rng(r.randrange(2**32))
    a += rng.normal(0, r.uniform(2, 6), a.shape[:2])[..., None]
    out = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    out = out.filter(ImageFilter.GaussianBlur(r.uniform(0.5, 1.2) * _side_scale(img)))
    return out, {**params, "margin": margin, "gamma": round(gamma, 2)}


def a_social_post(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """A screenshot of a social-network post: avatar, name, the picture at the post's width,
    buttons and a caption below, light or dark theme."""
    pw = r.choice([540, 720, 1080])
    pic = img.resize((pw, max(8, round(img.height * pw / img.width))), Image.Resampling.BILINEAR)
    head, foot = pw // 7, pw // 4
    dark = r.random() < 0.5
    bg, ink = ((18, 18, 18), (240, 240, 240)) if dark else ((255, 255, 255), (20, 20, 20))
    out = Image.new("RGB", (pw, head + pic.height + foot), bg)
    d = ImageDraw.Draw(out)
    a = head * 2 // 3
    d.ellipse((head // 6, head // 6, head // 6 + a, head // 6 + a), fill=(200, 120, 160))
    d.text((head, head // 3), "poetry.daily  ·  Follow", fill=ink, font=font(max(10, head // 4)))
    out.paste(pic, (0, head))
    y = head + pic.height + foot // 10
    for i in range(3):
        x = foot // 10 + i * foot // 4
        d.ellipse((x, y, x + foot // 6, y + foot // 6), outline=ink, width=max(1, pw // 300))
    d.text((foot // 10, y + foot // 4), "1,204 likes", fill=ink, font=font(max(10, pw // 36)))
    d.text((foot // 10, y + foot // 2), POEM[0], fill=ink, font=font(max(10, pw // 40)))
    return out, {"width": pw, "dark": dark}


def _scenery(w: int, h: int, r: random.Random) -> Image.Image:
    """Another picture: a sky-to-ground gradient with random shapes."""
    top, bottom = [r.randint(0, 255) for _ in range(3)], [r.randint(0, 255) for _ in range(3)]
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    a = np.broadcast_to(np.array(top) * (1 - t) + np.array(bottom) * t, (h, w, 3))
    out = Image.fromarray(a.astype(np.uint8))
    d = ImageDraw.Draw(out)
    for _ in range(r.randint(6, 14)):
        x, y = r.randint(0, w), r.randint(0, h)
        s = r.randint(max(2, min(w, h) // 12), max(3, min(w, h) // 3))
        fill = tuple(r.randint(0, 255) for _ in range(3))
        if r.random() < 0.5:
            d.ellipse((x, y, x + s, y + s), fill=fill)
        else:
            d.rectangle((x, y, x + s, y + s // 2), fill=fill)
    return out


def a_side_by_side(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """The work beside another picture of the same height ("before / after", a comparison
    post), left or right, with a thin gutter."""
    w, h = img.size
    other = _scenery(round(w * r.uniform(0.6, 1.2)), h, r)
    gutter = r.randint(0, max(1, w // 50))
    out = Image.new("RGB", (w + other.width + gutter, h), (255, 255, 255))
    left = r.random() < 0.5
    out.paste(img, (0, 0) if left else (other.width + gutter, 0))
    out.paste(other, (w + gutter, 0) if left else (0, 0))
    f = r.uniform(0.5, 1.0)
    return scaled(out, f), {"work_left": left, "scale": round(f, 2)}


def a_crop_zoom(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """A detail enlarged: 5-20% of the area, shown 2-3 times its size."""
    part = _crop_keep(img, r, r.uniform(0.05, 0.2))
    f = r.uniform(2.0, 3.0)
    size = (round(part.width * f), round(part.height * f))
    return part.resize(size, Image.Resampling.BICUBIC), {"crop": list(part.size), "zoom": round(f, 2)}


def a_deep_fried(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """A meme re-shared until it is "deep-fried": three to six rounds of shrinking, sharpening,
    more saturation and contrast, and JPEG at quality 15-35."""
    out = img
    rounds = r.randint(3, 6)
    for _ in range(rounds):
        out = scaled(out, r.uniform(0.75, 0.95), Image.Resampling.BILINEAR)
        out = out.filter(ImageFilter.UnsharpMask(radius=2, percent=r.randint(60, 150)))
        out = ImageEnhance.Color(out).enhance(r.uniform(1.1, 1.5))
        out = ImageEnhance.Contrast(out).enhance(r.uniform(1.05, 1.2))
        out = jpeg(out, r.randint(15, 35))
    return out, {"rounds": rounds, "size": list(out.size)}


def a_tiny(img: Image.Image, r: random.Random) -> tuple[Image.Image, dict[str, object]]:
    """A tiny thumbnail: 48-80 px on the longer side (a list view, a favicon-sized preview)."""
    side = r.randint(48, 80)
    return shrunk(img, side), {"side": side}


OTHER: dict[str, Attack] = {
    "filter": a_filter,
    "blur": a_blur,
    "noise": a_noise,
    "webp": a_webp,
    "thumbnail": a_thumbnail,
    "square": a_square,
    "upscale": a_upscale,
    "meme": a_meme,
    "posterize": a_posterize,
    "stock": a_stock,
    "invert": a_invert,
    "rot90": a_rot90,
    "sepia": a_sepia,
    "square+filter+jpeg": combo(a_square, a_filter, a_jpeg),
    "thumbnail+jpeg": combo(a_thumbnail, a_jpeg),
    "avatar": a_avatar,
    "blurfill": a_blurfill,
    "rotate_far": a_rotate_far,
    "print_photo": a_print_photo,
    "social_post": a_social_post,
    "side_by_side": a_side_by_side,
    "mirror+crop+rotate": combo(a_mirror, a_crop, a_rotate),
    "crop_zoom": a_crop_zoom,
    "deep_fried": a_deep_fried,
    "tiny": a_tiny,
}
