"""The side-by-side picture of a finding (``comparison.png``).

Left: the registered work (its published copy when there is one), right: the candidate as
fetched, both scaled to the same height. Drawn on them:

* green, on the candidate: the region that shows the work (``finding.region``);
* yellow: the work's outline mapped into the candidate by the match transform, and on the
  work the part of it that the candidate shows;
* red: the box of the owner's visible mark, on the work and where it falls in the candidate;
* thin coloured lines: matched keypoints (ORB, recomputed here, kept when they agree with the
  transform), joining the same detail in both pictures.

Deterministic: the same inputs give the same PNG bytes (no time stamps or text chunks, ORB
and the drawing are deterministic), so an evidence bundle can be rebuilt bit for bit.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from monitor.images import decode_full_pixels

__all__ = ["matched_keypoints", "render_comparison"]

BOX_W, BOX_H = 480, 360
GAP, MARGIN, HEADER, FOOTER = 24, 12, 22, 22
FEATURE_SIDE = 800  # keypoints are found on copies no larger than this
GREEN, YELLOW, RED, GREY = (0, 170, 60), (240, 190, 0), (220, 30, 30), (90, 90, 90)
_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (23, 190, 207)]

Box = tuple[int, int, int, int]


def _pixels(data: bytes, max_pixels: int) -> np.ndarray:
    rgb = decode_full_pixels(data, max_pixels=max_pixels)  # ImageError when unusable
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    return np.ascontiguousarray(rgb[..., :3])


def _to_gray_small(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    h, w = rgb.shape[:2]
    s = min(1.0, FEATURE_SIDE / max(h, w))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if s < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return gray, s


def _apply(t: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ t[:, :2].T + t[:, 2]


def matched_keypoints(
    work: np.ndarray, candidate: np.ndarray, transform: np.ndarray | None, *, limit: int = 40
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of matching points ``(work_xy, candidate_xy)`` in full-resolution pixels, at most
    ``limit``, spread over the matches: ORB with Lowe's ratio test, kept when they agree with
    ``transform`` (or with a RANSAC similarity fitted here when there is none)."""
    g1, s1 = _to_gray_small(work)
    g2, s2 = _to_gray_small(candidate)
    orb = cv2.ORB.create(nfeatures=1500)
    k1, d1 = orb.detectAndCompute(g1, None)
    k2, d2 = orb.detectAndCompute(g2, None)
    empty = np.zeros((0, 2)), np.zeros((0, 2))
    if d1 is None or d2 is None or len(k1) < 2 or len(k2) < 2:
        return empty
    pairs = []
    for m in cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(d1, d2, k=2):
        if len(m) == 2 and m[0].distance < 0.8 * m[1].distance:
            pairs.append((m[0].distance, m[0].queryIdx, m[0].trainIdx))
    if len(pairs) < 3:
        return empty
    pairs.sort()
    p1 = np.array([k1[q].pt for _, q, _ in pairs], np.float64) / s1
    p2 = np.array([k2[t].pt for _, _, t in pairs], np.float64) / s2
    side = max(candidate.shape[:2])
    tolerance = max(4.0, 0.02 * side)
    if transform is None:
        model, mask = cv2.estimateAffinePartial2D(
            p1, p2, method=cv2.RANSAC, ransacReprojThreshold=tolerance, maxIters=2000, confidence=0.99
        )
        if model is None or mask is None:
            return empty
        keep = mask.ravel().astype(bool)
    else:
        keep = np.linalg.norm(_apply(np.asarray(transform, np.float64), p1) - p2, axis=1) <= tolerance
    p1, p2 = p1[keep], p2[keep]
    if len(p1) > limit:
        pick = np.linspace(0, len(p1) - 1, limit).round().astype(int)
        p1, p2 = p1[pick], p2[pick]
    return p1, p2


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=13)
    except TypeError:  # pragma: no cover - Pillow without FreeType sizes
        return ImageFont.load_default()


def _fit(rgb: np.ndarray) -> tuple[Image.Image, float]:
    h, w = rgb.shape[:2]
    s = min(BOX_H / h, BOX_W / w, 4.0)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    img = Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS)
    return img, s


def _corners(x: float, y: float, w: float, h: float) -> np.ndarray:
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)


def render_comparison(
    work: bytes,
    candidate: bytes,
    *,
    transform: Sequence[Sequence[float]] | np.ndarray | None = None,
    region: Box | None = None,
    mark_box: Box | None = None,
    keypoints: int = 40,
    max_pixels: int = 80_000_000,
) -> bytes:
    """The comparison picture as PNG bytes (see the module docstring)."""
    w_rgb = _pixels(work, max_pixels)
    c_rgb = _pixels(candidate, max_pixels)
    t = None if transform is None else np.asarray(transform, np.float64).reshape(2, 3)
    p1, p2 = matched_keypoints(w_rgb, c_rgb, t, limit=keypoints)

    left, sl = _fit(w_rgb)
    right, sr = _fit(c_rgb)
    wh, ww = w_rgb.shape[:2]
    ch, cw = c_rgb.shape[:2]
    # Boxes are drawn on each picture before it is placed, so nothing spills out of its panel.
    draw_l, draw_r = ImageDraw.Draw(left), ImageDraw.Draw(right)

    def scaled(pts: np.ndarray, s: float) -> list[tuple[float, float]]:
        return [(float(x * s), float(y * s)) for x, y in pts]

    if t is not None:
        draw_r.polygon(scaled(_apply(t, _corners(0, 0, ww, wh)), sr), outline=YELLOW, width=2)
        try:
            shown = _apply(cv2.invertAffineTransform(t), _corners(0, 0, cw, ch))
            shown[:, 0] = shown[:, 0].clip(0, ww - 1)
            shown[:, 1] = shown[:, 1].clip(0, wh - 1)
            draw_l.polygon(scaled(shown, sl), outline=YELLOW, width=2)
        except cv2.error:
            pass
    if region is not None:
        x, y, rw, rh = region
        draw_r.polygon(scaled(_corners(x, y, rw - 1, rh - 1), sr), outline=GREEN, width=3)
    if mark_box is not None:
        x, y, mw, mh = mark_box
        draw_l.polygon(scaled(_corners(x, y, mw, mh), sl), outline=RED, width=3)
        if t is not None:
            draw_r.polygon(scaled(_apply(t, _corners(x, y, mw, mh)), sr), outline=RED, width=3)

    width = MARGIN * 2 + left.width + GAP + right.width
    height = HEADER + max(left.height, right.height) + FOOTER + MARGIN
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    ox_l, ox_r, oy = MARGIN, MARGIN + left.width + GAP, HEADER
    canvas.paste(left, (ox_l, oy))
    canvas.paste(right, (ox_r, oy))
    draw = ImageDraw.Draw(canvas)
    font = _font()

    def on_left(pts: np.ndarray) -> list[tuple[float, float]]:
        return [(float(x * sl + ox_l), float(y * sl + oy)) for x, y in pts]

    def on_right(pts: np.ndarray) -> list[tuple[float, float]]:
        return [(float(x * sr + ox_r), float(y * sr + oy)) for x, y in pts]

    for i, (a, b) in enumerate(zip(on_left(p1), on_right(p2), strict=True)):
        colour = _PALETTE[i % len(_PALETTE)]
        draw.line([a, b], fill=colour, width=1)
        for px, py in (a, b):
            draw.ellipse([px - 2.5, py - 2.5, px + 2.5, py + 2.5], outline=colour, width=1)

    draw.text((ox_l, 4), f"registered work  {ww}x{wh}", fill=GREY, font=font)
    draw.text((ox_r, 4), f"found copy  {cw}x{ch}", fill=GREY, font=font)
    legend = f"green: region  yellow: work outline  red: mark  lines: {len(p1)} matched keypoints"
    draw.text((MARGIN, height - FOOTER - 2), legend, fill=GREY, font=font)
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()
