"""Where a candidate may show a picture pasted onto a plain background.

A blog page with a poem above the work, a screenshot's window frame, a border: the work is a
rectangle on a background of one colour. Its global hashes are spoilt by what surrounds it,
and a smooth work (a gradient wallpaper, a soft painting) has too few corners for local
features to find it. Cropping the rectangle out and hashing it gives the global hashes back.

:func:`picture_regions` proposes such rectangles from the pixels alone: the background is the
colour most of the image's outer edge has; what differs from it, in large, dense connected
blobs, is a picture. A pale picture on a pale page (a snowfield, a light-grey dialog) is
mostly within that first tolerance of the page, so the image is looked at a second time with
one set by the page's own noise. Proposals are cheap (a 128-pixel sample) and only hints: the
matcher verifies every one by comparing pixels, as it does any global-hash hit.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Proposals are computed on every k-th pixel, k chosen so that this many remain along the longest side.
WORK_SIDE = 128
#: A pixel belongs to the background when no channel differs from its colour by more than this.
BACKGROUND_TOLERANCE = 14
#: A pale picture (a snowfield, a light-grey dialog) on a pale page stays within that tolerance
#: over much of its area, and is no dense blob. The page itself is flat to a level or two: the
#: image is looked at again with a tolerance of ``QUIET_NOISE_FACTOR`` times the noise of the
#: background's own edge pixels (their 90th percentile), at least ``QUIET_TOLERANCE``.
QUIET_TOLERANCE = 4
QUIET_NOISE_FACTOR = 3.0
#: A rectangle the second look finds is kept unless it overlaps one of the first look's this much
#: (intersection over union): the first look places the edges of a contrasted picture better.
SAME_PROPOSAL_IOU = 0.5
#: At that tolerance the background near text or a JPEG-compressed edge rings a level or two
#: past it: a line of the box with at most this share differing is a gap (see ``GAP_FILL``).
QUIET_GAP_FILL = 0.1
#: The outer edge must be at least this share background-coloured for there to be a background.
MIN_BACKGROUND_EDGE = 0.6
#: A proposal covers at least this share of the image, and at most ``MAX_AREA`` (beyond it the
#: region is the image itself, which is hashed anyway).
MIN_AREA = 0.01
MAX_AREA = 0.92
#: Rows and columns at a proposal's edges with less than this share of non-background pixels
#: are trimmed (a caption or a line of text touching the picture).
MIN_LINE_FILL = 0.5
#: Trimming keeps at least this share of the blob's bounding box: a pasted picture is a
#: rectangle, a drawing on the background thins out towards its box's edges.
MIN_KEPT = 0.7
#: The four outermost lines of a proposal differ from the background this much on average,
#: and each at least ``MIN_SOFT_EDGE_FILL``: a pasted picture ends in straight edges (a photo's
#: pale sky may meet a white page along part of its top); a glow or a disk has none.
MIN_EDGE_FILL = 0.85
MIN_SOFT_EDGE_FILL = 0.4
#: After trimming, at least this share of the rectangle differs from the background.
MIN_FILL = 0.6
#: A line of the full-resolution box with at most this share differing from the background is a
#: gap: the box is cut there and its largest block kept.
GAP_FILL = 0.02
#: Proposals kept per image, largest first.
MAX_REGIONS = 9
#: Smallest side of a proposal, in the copy's pixels.
MIN_SIDE = 8


def picture_regions(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Rectangles ``(x, y, w, h)`` in ``rgb``'s pixels that look like pictures on a plain
    background, largest first; empty when the image has no plain background."""
    h, w = rgb.shape[:2]
    if h < 2 * MIN_SIDE or w < 2 * MIN_SIDE:
        return []
    # Most images have no plain background: decide that on the outer edge before anything else
    edge = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.int16)
    background = np.median(edge, axis=0)
    deviation = np.abs(edge - background).max(axis=1)
    on_edge = deviation <= BACKGROUND_TOLERANCE
    if on_edge.mean() < MIN_BACKGROUND_EDGE:
        return []
    # every k-th pixel is enough to find large blobs; the edges are placed on full pixels after
    k = max(1, math.ceil(max(h, w) / WORK_SIDE))
    small = rgb if k == 1 else cv2.resize(rgb, (w // k, h // k), interpolation=cv2.INTER_NEAREST)
    found = _proposals(rgb, small, background, k, BACKGROUND_TOLERANCE, GAP_FILL)
    noise = float(np.percentile(deviation[on_edge], 90))
    quiet = int(min(BACKGROUND_TOLERANCE, max(QUIET_TOLERANCE, math.ceil(QUIET_NOISE_FACTOR * noise))))
    if quiet < BACKGROUND_TOLERANCE:
        for box in _proposals(rgb, small, background, k, quiet, QUIET_GAP_FILL):
            if all(_iou(box, other) < SAME_PROPOSAL_IOU for other in found):
                found.append(box)
    return found[:MAX_REGIONS]


def _proposals(
    rgb: np.ndarray, small: np.ndarray, background: np.ndarray, k: int, tolerance: int, gap_fill: float
) -> list[tuple[int, int, int, int]]:
    """The rectangles found on ``small`` (``rgb`` sampled every ``k``-th pixel) with pixels
    within ``tolerance`` of ``background`` counted as background, largest first, placed on
    ``rgb``'s pixels (cut at lines with at most ``gap_fill`` differing)."""
    sh, sw = small.shape[:2]
    differs = _differs(small, background, tolerance)
    count, _, stats, _ = cv2.connectedComponentsWithStats(differs, connectivity=8)
    boxes = []
    stats = stats[1:count]
    for x, y, bw, bh, _area in stats[stats[:, 2] * stats[:, 3] >= MIN_AREA * sw * sh]:
        box = _trimmed(differs, int(x), int(y), int(bw), int(bh))
        if box is None or box[2] * box[3] < MIN_KEPT * bw * bh:
            continue  # not a rectangle: a drawing on the background (clip art), not a picture on it
        x, y, bw, bh = box
        area = bw * bh
        if not (MIN_AREA * sw * sh <= area <= MAX_AREA * sw * sh) or min(bw, bh) < MIN_SIDE:
            continue
        inside = differs[y : y + bh, x : x + bw]
        edges = _edge_fills(inside)
        if inside.mean() < MIN_FILL or sum(edges) / 4 < MIN_EDGE_FILL or min(edges) < MIN_SOFT_EDGE_FILL:
            continue
        boxes.append((area, (x, y, bw, bh)))
    boxes.sort(reverse=True)
    out = []
    for _, (x, y, bw, bh) in boxes[:MAX_REGIONS]:
        box = (x * k, y * k, bw * k, bh * k)
        out.append(box if k == 1 else _refined(rgb, background, box, 2 * k, tolerance, gap_fill))
    return out


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0, iw) * max(0, ih)
    return inter / max(1, a[2] * a[3] + b[2] * b[3] - inter)


def _differs(rgb: np.ndarray, background: np.ndarray, tolerance: int) -> np.ndarray:
    """1 where some channel differs from the background colour by more than ``tolerance``."""
    low = np.clip(background - tolerance, 0, 255).astype(np.uint8)
    high = np.clip(background + tolerance, 0, 255).astype(np.uint8)
    return (cv2.inRange(np.ascontiguousarray(rgb), low, high) == 0).view(np.uint8)


def _refined(
    rgb: np.ndarray,
    background: np.ndarray,
    box: tuple[int, int, int, int],
    margin: int,
    tolerance: int,
    gap_fill: float,
) -> tuple[int, int, int, int]:
    """The box found on the reduced copy, its edges placed again on the full pixels (a pixel
    of the copy is several of the image's: the hashes and the alignment want the exact edge)."""
    h, w = rgb.shape[:2]
    x, y, bw, bh = box
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(w, x + bw + margin), min(h, y + bh + margin)
    differs = _differs(rgb[y0:y1, x0:x1], background, tolerance)
    found = _trimmed(differs, 0, 0, x1 - x0, y1 - y0)
    if found is None:
        return box
    fx, fy, fw, fh = _largest_block(differs, *found, gap_fill=gap_fill)
    return x0 + fx, y0 + fy, fw, fh


def _largest_block(
    mask: np.ndarray, x: int, y: int, w: int, h: int, *, gap_fill: float = GAP_FILL
) -> tuple[int, int, int, int]:
    """The box cut at lines of pure background, keeping its largest block: a line of text set
    just above a picture joins it on the reduced copy, but on the full pixels a gap of
    background rows lies between them."""
    sub = mask[y : y + h, x : x + w]
    for axis in (1, 0):  # rows (gaps across the box), then columns
        fill = sub.mean(axis=axis)
        runs = _runs(fill > gap_fill)
        if len(runs) > 1:
            start, stop = max(runs, key=lambda r: r[1] - r[0])
            if axis == 1:
                y, h, sub = y + start, stop - start, sub[start:stop]
            else:
                x, w, sub = x + start, stop - start, sub[:, start:stop]
    return x, y, w, h


def _runs(on: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True."""
    edges = np.flatnonzero(np.diff(np.r_[0, on.astype(np.int8), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _edge_fills(box: np.ndarray) -> tuple[float, float, float, float]:
    """Share of background-differing pixels on the top, bottom, left and right lines."""
    return float(box[0].mean()), float(box[-1].mean()), float(box[:, 0].mean()), float(box[:, -1].mean())


def _trimmed(mask: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[int, int, int, int] | None:
    """The box shrunk, side by side, past rows and columns that are mostly background."""
    sub = mask[y : y + h, x : x + w]
    rows = sub.mean(axis=1) >= MIN_LINE_FILL
    cols = sub.mean(axis=0) >= MIN_LINE_FILL
    if not rows.any() or not cols.any():
        return None
    r0, r1 = int(np.argmax(rows)), int(h - np.argmax(rows[::-1]))
    c0, c1 = int(np.argmax(cols)), int(w - np.argmax(cols[::-1]))
    return x + c0, y + r0, c1 - c0, r1 - r0
