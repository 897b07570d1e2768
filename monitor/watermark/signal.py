"""The mark itself: keyed chips of luminance in a work-normalised frame, quantised by bit.

Frame
    Every image is looked at through a *frame*: its luminance resampled to at most
    ``FRAME_SIDE`` pixels on the longest side (the other side in proportion), cut into
    ``CHIP``×``CHIP`` chips (64 across the longest side). The frame depends only on the
    aspect ratio, so a resized copy has the same frame as its original.
Statistic
    Each chip's bump-weighted sum (a smooth ``sin²`` bump), minus the mean of its 8
    neighbours (which removes the picture's smooth part), times a keyed random sign; chips
    are dealt to the 256 coded bits by a keyed permutation (about 16 chips per bit), and a
    bit's statistic ``p`` is the sum over its chips.
Mark (spread-transform dither modulation)
    Bit ``b`` is written by moving ``p`` onto the nearest point of the lattice
    ``Δ·(k + d + b/2)`` (``d`` a keyed dither per bit): the change is spread over the bit's
    chips as bumps weighted by a perceptual mask (more where the picture is busy, almost
    nothing in flat or clipped areas), computed on the frame, upsampled to full size and
    added to R, G and B alike (luminance only: 4:2:0 chroma subsampling does not touch it).
    A few passes correct the cross-talk between neighbouring chips and the resampling.
    Unlike additive spread spectrum, the picture itself does not interfere with reading
    the bit (quantisation is *informed* by the host), which is what makes blind detection
    after JPEG q50 or resizing possible.
Blind reading
    ``p`` of the candidate's frame, and its distance to the two lattices.
Aligned (informed) reading
    The candidate warped back into the work's frame (the matcher's transform refined by ECC
    image alignment), minus the original channel by channel (a robust tone curve per
    channel undoes brightness and contrast, newly clipped pixels and plateaus are left out,
    the original is blurred the way the candidate's resolution blurs), regressed
    on each bit's chip pattern over the covered area only, and compared with the two changes
    the embedder could have made (both known, since we hold the original).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from monitor.watermark.keys import WatermarkKey
from monitor.watermark.payload import CODED_BITS

FRAME_SIDE = 512
CHIP = 8
CHIPS_LONG = FRAME_SIDE // CHIP
MIN_CHIPS = 8
#: Lattice step per chip of a bit (statistic units): sets the strength of the mark.
STEP_PER_CHIP = 160.0
#: Embedding passes (each corrects what the previous left).
PASSES = 3
#: A one-tone residual (see _tone_curve) keeps the pixels within this many levels of the tone.
ONE_TONE_LEVELS = 6.0
#: plan_mark stops once the strength it keeps is within this factor of one that failed.
REFINE = 1.06
#: Luminance weights (ITU-R 601).
LUMA = np.array([0.299, 0.587, 0.114], np.float32)

_H = np.sin(np.pi * (np.arange(CHIP) + 0.5) / CHIP).astype(np.float32) ** 2
BUMP = np.outer(_H, _H)
_NEIGHBOURS = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], np.float32) / 8


def frame_chips(width: int, height: int) -> tuple[int, int]:
    """``(rows, cols)`` of chips of the frame of a ``width``×``height`` image."""
    if width <= 0 or height <= 0:
        raise ValueError("an image has a positive size")
    if width >= height:
        rows = min(CHIPS_LONG, max(MIN_CHIPS, round(CHIPS_LONG * height / width)))
        return rows, CHIPS_LONG
    cols = min(CHIPS_LONG, max(MIN_CHIPS, round(CHIPS_LONG * width / height)))
    return CHIPS_LONG, cols


def chip_variants(width: int, height: int) -> list[tuple[int, int]]:
    """The frame of this size first, then its neighbours (the short side ±1 chip): a resized
    copy whose aspect ratio moved by rounding may fall on either."""
    rows, cols = frame_chips(width, height)
    out = [(rows, cols)]
    for d in (-1, 1):
        alt = (rows + d, cols) if cols == CHIPS_LONG else (rows, cols + d)
        if min(alt) >= MIN_CHIPS and max(alt) <= CHIPS_LONG and alt not in out:
            out.append(alt)
    return out


def luminance(pixels: np.ndarray) -> np.ndarray:
    """float32 luminance of ``(h, w, 3)`` RGB or ``(h, w)`` gray."""
    if pixels.ndim == 2:
        return pixels.astype(np.float32)
    return np.asarray(pixels[..., :3], np.float32) @ LUMA


def to_frame(luma: np.ndarray, chips: tuple[int, int]) -> np.ndarray:
    """Resample a luminance image onto the frame (area averaging when shrinking)."""
    size = (chips[1] * CHIP, chips[0] * CHIP)
    h, w = luma.shape[:2]
    shrink = w >= size[0] and h >= size[1]
    return cv2.resize(luma, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def frame_to_image(field: np.ndarray, width: int, height: int) -> np.ndarray:
    """A frame-sized field resampled to a ``width``×``height`` image."""
    fh, fw = field.shape[:2]
    grow = width >= fw and height >= fh
    return cv2.resize(field, (width, height), interpolation=cv2.INTER_CUBIC if grow else cv2.INTER_AREA)


@dataclass(frozen=True, eq=False)
class Layout:
    """Keyed layout of one frame shape: each chip's sign and coded bit, each bit's dither."""

    rows: int
    cols: int
    signs: np.ndarray  # (rows, cols) float32 ±1
    bits: np.ndarray  # (rows, cols) int64 in [0, CODED_BITS)
    dither: np.ndarray  # (CODED_BITS,) in [0, 1)

    @property
    def step(self) -> float:
        """The lattice step Δ: proportional to the chips per bit, so the strength per pixel
        does not depend on the aspect ratio."""
        return STEP_PER_CHIP * self.rows * self.cols / CODED_BITS

    def per_bit(self, chip_values: np.ndarray) -> np.ndarray:
        """Sum ``chip_values`` (rows, cols) into the coded bits."""
        return np.bincount(self.bits.ravel(), weights=chip_values.ravel(), minlength=CODED_BITS)

    def statistic(self, frame: np.ndarray) -> np.ndarray:
        """``p`` per coded bit of a frame (or of a field on the frame)."""
        return self.per_bit(self.signs * whiten(project(frame)))

    def lattice(self, p: np.ndarray, bit: np.ndarray | int) -> np.ndarray:
        """The nearest point to ``p`` of the lattice of ``bit`` (0/1), per coded bit."""
        offset = self.dither + 0.5 * np.asarray(bit, np.float64)
        return self.step * (np.round(p / self.step - offset) + offset)

    def soft(self, p: np.ndarray) -> np.ndarray:
        """Soft bits in -1..1 from ``p``: +1 on the lattice of 1, -1 on that of 0."""
        return -np.cos(2 * np.pi * (p / self.step - self.dither))


@lru_cache(maxsize=64)
def _layout(secret: bytes, rows: int, cols: int) -> Layout:
    rng = WatermarkKey(secret).rng(f"chip-layout/v2/{rows}x{cols}")
    n = rows * cols
    bits = (rng.permutation(n) % CODED_BITS).reshape(rows, cols)
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=(rows, cols))
    dither = rng.random(CODED_BITS)
    for a in (bits, signs, dither):
        a.setflags(write=False)
    return Layout(rows, cols, signs, bits, dither)


def layout(key: WatermarkKey, chips: tuple[int, int]) -> Layout:
    return _layout(key.secret, *chips)


def tile(chip_values: np.ndarray) -> np.ndarray:
    """A (rows·CHIP, cols·CHIP) field: each chip's value times the bump."""
    return np.kron(chip_values.astype(np.float32), BUMP)


def chip_sum(field: np.ndarray) -> np.ndarray:
    rows, cols = field.shape[0] // CHIP, field.shape[1] // CHIP
    return field.reshape(rows, CHIP, cols, CHIP).sum(axis=(1, 3))


def project(field: np.ndarray) -> np.ndarray:
    """Bump-weighted sum of ``field`` over each chip: (rows, cols)."""
    rows, cols = field.shape[0] // CHIP, field.shape[1] // CHIP
    return chip_sum(field * np.tile(BUMP, (rows, cols)))


def whiten(chip_values: np.ndarray) -> np.ndarray:
    """Each chip value minus the mean of its 8 neighbours (the host's smooth part)."""
    around = cv2.filter2D(chip_values.astype(np.float32), -1, _NEIGHBOURS, borderType=cv2.BORDER_REFLECT)
    return chip_values - around


def perceptual_mask(frame: np.ndarray) -> np.ndarray:
    """Relative strength per frame pixel: more where the picture is busy (local contrast
    hides the mark), little in flat areas, almost none where the picture is clipped to
    black or white (a change there would be clipped too); mean square 1.

    ``frame`` is the original on the frame, luminance ``(fh, fw)`` or colour ``(fh, fw, 3)``.
    The mark is added to R, G and B alike, so in colour each channel is asked and the least
    willing one decides: a saturated red is clipped in R and flat at 0 in G and B, and an
    edge between two colours may be busy in one channel only.
    """
    planes = [frame[..., c] for c in range(frame.shape[2])] if frame.ndim == 3 else [frame]
    m = cv2.GaussianBlur(np.minimum.reduce([_plane_mask(p) for p in planes]), (0, 0), 2.0)
    return m / max(math.sqrt(float(np.mean(m * m))), 1e-6)


def _plane_mask(plane: np.ndarray) -> np.ndarray:
    """One channel's willingness: its local contrast, cut where it has no headroom."""
    plane = plane.astype(np.float32)
    mu = cv2.GaussianBlur(plane, (0, 0), 2.0)
    var = cv2.GaussianBlur(plane * plane, (0, 0), 2.0) - mu * mu
    m = np.clip(0.3 + np.sqrt(np.maximum(var, 0.0)) / 10.0, 0.3, 2.0)
    return m * np.clip(np.minimum(mu, 255.0 - mu) / 12.0, 0.05, 1.0)


# ---------------------------------------------------------------- quality measures


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    d = np.subtract(a, b, dtype=np.float32).ravel()
    mse = float(np.dot(d, d)) / max(d.size, 1)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window σ=1.5, K1=0.01, K2=0.03) of two gray
    images, or the mean over channels of colour ones."""
    return SsimReference(a)(b)


class SsimReference:
    """SSIM against one reference image, whose local means and powers are computed once
    (:func:`plan_mark` compares several strengths with the same original).

    ``stride`` > 1 averages the SSIM map on every ``stride``-th row and column only: the map
    is smooth at that scale (an 11-pixel window), so the mean moves by ~1e-4 while the
    arithmetic, the bulk of the cost, shrinks by ``stride``²."""

    _C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def __init__(self, reference: np.ndarray, stride: int = 1) -> None:
        self.x = reference.astype(np.float32)
        self.stride = max(1, stride)
        self.trim = 5 if min(self.x.shape[:2]) > 20 else 0
        self.mx = self._sample(self._blur(self.x))
        self.xx = self._sample(self._blur(self.x * self.x))

    @staticmethod
    def _blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    def _sample(self, z: np.ndarray) -> np.ndarray:
        t, k = self.trim, self.stride
        h, w = z.shape[:2]
        return z[t : h - t : k, t : w - t : k]

    def __call__(self, other: np.ndarray) -> float:
        y = other.astype(np.float32)
        if y.shape != self.x.shape:
            raise ValueError(f"SSIM of {self.x.shape} against {y.shape}")
        my = self._sample(self._blur(y))
        yy = self._sample(self._blur(y * y))
        xy = self._sample(self._blur(self.x * y))
        mx, c1, c2 = self.mx, self._C1, self._C2
        mxy = mx * my
        num = (2 * mxy + c1) * (2 * (xy - mxy) + c2)
        den = (mx * mx + my * my + c1) * (self.xx - mx * mx + yy - my * my + c2)
        return float(np.mean(num / den))


# ---------------------------------------------------------------- embedding


@dataclass(frozen=True, eq=False)
class Embedding:
    """A planned mark: the luminance change per pixel and what it costs."""

    delta: np.ndarray  # (h, w) float32, added to R, G and B alike
    strength: float  # share of the way to the lattice (1 = all the way)
    psnr: float
    ssim: float


def apply_delta(pixels: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``pixels`` (uint8, gray or RGB[A]) with ``delta`` added to the colour channels."""
    out = pixels.astype(np.float32)
    if out.ndim == 2:
        out += delta
    else:
        out[..., :3] += delta[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def bit_gain(mask: np.ndarray, lay: Layout) -> np.ndarray:
    """How much ``p`` of each bit moves per unit of its chip amplitude (whitening's
    cross-talk aside, which the passes correct)."""
    return np.maximum(lay.per_bit(project(mask * tile(np.ones((lay.rows, lay.cols))))), 1e-6)


def chip_field(mask: np.ndarray, lay: Layout, amplitude: np.ndarray) -> np.ndarray:
    return mask * tile(lay.signs * amplitude[lay.bits])


def plan_mark(
    pixels: np.ndarray,
    key: WatermarkKey,
    coded: np.ndarray,
    *,
    min_psnr: float = 40.5,
    min_ssim: float = 0.982,
) -> Embedding:
    """The mark carrying ``coded`` (±1 bits) for ``pixels`` (h, w[, 3]) uint8.

    The statistic of each bit is moved onto its lattice (all the way, or less when the
    marked pixels would fall under ``min_psnr`` or ``min_ssim``: SSIM as the copy is judged,
    the mean over R, G and B of colour pictures, where a flat or clipped channel under a
    busy luminance shows the mark more than the luminance does).
    """
    mark = _Marker(pixels, key, coded)
    colour = _judged(pixels)
    judge = SsimReference(colour, stride=2 if colour.shape[0] * colour.shape[1] > 1_000_000 else 1)
    strength, best, failed = 1.0, None, math.inf
    embedding = None
    for _ in range(10):
        delta = mark.delta(strength)
        marked = apply_delta(pixels, delta)
        q_psnr = psnr(pixels, marked)
        # the change grows with the strength: PSNR's loss as its log, SSIM's as its square;
        # SSIM (the costly one) only once PSNR passes
        room = 10 ** ((q_psnr - min_psnr) / 20)
        q_ssim = math.nan
        if q_psnr >= min_psnr:
            q_ssim = judge(_judged(marked))
            room = min(room, math.sqrt((1 - min_ssim) / max(1 - q_ssim, 1e-9)))
        embedding = Embedding(delta, strength, q_psnr, q_ssim)
        if q_psnr >= min_psnr and q_ssim >= min_ssim:
            best = embedding
            if strength >= 1.0 or room < REFINE or failed <= strength * REFINE:
                break
            guess = min(1.0, strength * room * 0.99)
            if guess >= failed:
                guess = math.sqrt(strength * failed)
        else:
            failed = strength
            guess = strength * min(room, 0.99) * 0.99
            if best is not None and guess <= best.strength:
                guess = math.sqrt(best.strength * failed)
        strength = guess
    assert embedding is not None
    if best is not None:
        return best
    if math.isnan(embedding.ssim):  # nothing passed: say what the last try costs
        marked = apply_delta(pixels, embedding.delta)
        last = judge(_judged(marked))
        embedding = Embedding(embedding.delta, embedding.strength, embedding.psnr, last)
    return embedding


def _judged(pixels: np.ndarray) -> np.ndarray:
    """What SSIM is judged on: R, G and B of a colour picture (no alpha), a gray one as it is."""
    return pixels[..., :3] if pixels.ndim == 3 else pixels


def mark_delta(pixels: np.ndarray, key: WatermarkKey, coded: np.ndarray, strength: float) -> np.ndarray:
    """The luminance change (h, w) that moves each bit's statistic of ``pixels`` (RGB or
    gray, as :func:`plan_mark` takes them) the share ``strength`` of the way to its lattice."""
    return _Marker(pixels, key, coded).delta(strength)


def working_pixels(pixels: np.ndarray) -> np.ndarray:
    """float32 RGB (h, w, 3) of colour pixels, luminance (h, w) of gray ones: what the mark
    is planned and read on (and what :func:`perceptual_mask` asks, channel by channel)."""
    if pixels.ndim == 3 and pixels.shape[2] >= 3:
        return np.asarray(pixels[..., :3], np.float32)
    return luminance(pixels if pixels.ndim == 2 else pixels[..., 0])


class _Marker:
    """What the mark of one picture depends on, computed once for every strength tried."""

    def __init__(self, pixels: np.ndarray, key: WatermarkKey, coded: np.ndarray) -> None:
        work = working_pixels(pixels)
        luma = luminance(work)
        h, w = luma.shape
        self.luma, self.size = luma, (w, h)
        self.chips = frame_chips(w, h)
        self.lay = layout(key, self.chips)
        frame = to_frame(luma, self.chips)
        self.mask = perceptual_mask(frame if work.ndim == 2 else to_frame(work, self.chips))
        self.gain = bit_gain(self.mask, self.lay)
        self.p0 = self.lay.statistic(frame)
        self.move = self.lay.lattice(self.p0, (coded > 0).astype(np.int64)) - self.p0

    def delta(self, strength: float) -> np.ndarray:
        lay, luma = self.lay, self.luma
        target = self.p0 + strength * self.move
        amplitude = np.zeros(CODED_BITS)
        delta = np.zeros_like(luma)
        for _ in range(PASSES):
            amplitude += (
                target - lay.statistic(to_frame(np.clip(luma + delta, 0, 255), self.chips))
            ) / self.gain
            delta = frame_to_image(chip_field(self.mask, lay, amplitude), *self.size)
        return delta


def blind_soft(pixels: np.ndarray, key: WatermarkKey, chips: tuple[int, int]) -> np.ndarray:
    """Soft coded bits (-1..1) of a candidate read without the original, in one frame shape."""
    lay = layout(key, chips)
    return lay.soft(lay.statistic(to_frame(luminance(pixels), chips)))


# ---------------------------------------------------------------- alignment and residuals


def _frame_to_work(work_size: tuple[int, int], chips: tuple[int, int]) -> np.ndarray:
    ww, wh = work_size
    sx, sy = ww / (chips[1] * CHIP), wh / (chips[0] * CHIP)
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]], np.float64)


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.vstack([a, [0, 0, 1]]) @ np.vstack([b, [0, 0, 1]]))[:2]


@dataclass(frozen=True, eq=False)
class Aligned:
    """A candidate seen in a work's frame."""

    frame: np.ndarray  # candidate on the frame: luminance (fh, fw) or colour (fh, fw, 3)
    covered: np.ndarray  # bool: frame pixels the candidate shows
    to_candidate: np.ndarray  # 2x3: frame pixel -> candidate pixel (of the shrunk candidate)
    size: tuple[int, int]  # (w, h) of the (shrunk) candidate
    scale: float  # candidate pixels per frame pixel (before shrinking)
    transform: np.ndarray  # 2x3: work pixel -> candidate pixel (full resolution) used


def align_to_frame(
    candidate: np.ndarray, transform: np.ndarray, work_size: tuple[int, int], chips: tuple[int, int]
) -> Aligned:
    """The candidate (luminance, or float RGB) warped back into the work's frame.

    ``transform`` (2×3) maps work pixels to candidate pixels (a mirrored copy has a negative
    determinant: nothing special is needed), as :class:`~monitor.matching.Match` gives it.
    """
    fh, fw = chips[0] * CHIP, chips[1] * CHIP
    transform = np.asarray(transform, np.float64)
    m = _compose(transform, _frame_to_work(work_size, chips))
    scale = math.sqrt(abs(float(np.linalg.det(m[:, :2]))))
    src = candidate.astype(np.float32)
    if scale > 1.25:  # shrink the candidate first, so the warp does not alias
        ch, cw = src.shape[:2]
        nw, nh = max(1, round(cw / scale)), max(1, round(ch / scale))
        src = np.asarray(cv2.resize(src, (nw, nh), interpolation=cv2.INTER_AREA), np.float32)
        shrink = np.array([[nw / cw, 0, 0.5 * nw / cw - 0.5], [0, nh / ch, 0.5 * nh / ch - 0.5]])
        m = _compose(shrink, m)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    frame = cv2.warpAffine(src, m, (fw, fh), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    ones = np.ones(src.shape[:2], np.float32)
    cover = cv2.warpAffine(ones, m, (fw, fh), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    covered = cv2.erode((cover > 0.999).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return Aligned(frame, covered, m, (src.shape[1], src.shape[0]), scale, transform)


def frame_luminance(frame: np.ndarray) -> np.ndarray:
    return frame @ LUMA if frame.ndim == 3 else frame


#: Largest correction the alignment refinement may make (frame pixels; share of the scale).
MAX_SHIFT = 6.0
MAX_LINEAR = 0.04


def refine_alignment(
    candidate: np.ndarray, aligned: Aligned, base_luma: np.ndarray, work_size: tuple[int, int]
) -> Aligned:
    """The alignment corrected by ECC image alignment (Evangelidis & Psarakis 2008) of the
    aligned candidate on the original's frame, starting from the matcher's transform.

    The matcher's transform is estimated from a few keypoints and can be off by a pixel or
    two, which is a large share of a chip; ECC maximises the correlation coefficient of the
    two pictures (so it ignores brightness and contrast) over an affine correction. The
    correction is kept only when it is small and improves the correlation.
    """
    chips = (base_luma.shape[0] // CHIP, base_luma.shape[1] // CHIP)
    mask = cv2.erode(aligned.covered.astype(np.uint8), np.ones((9, 9), np.uint8))
    if int(mask.sum()) < 16 * CHIP * CHIP:
        return aligned
    template = cv2.GaussianBlur(base_luma.astype(np.float32), (0, 0), 1.0)
    moving = cv2.GaussianBlur(frame_luminance(aligned.frame).astype(np.float32), (0, 0), 1.0)
    before = _correlation(template, moving, mask > 0)
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-4)
    try:
        _, found = cv2.findTransformECC(template, moving, warp, cv2.MOTION_AFFINE, criteria, mask, 1)
        warp = np.asarray(found, np.float32)
    except cv2.error:
        return aligned
    linear = warp[:, :2] - np.eye(2)
    if np.abs(warp[:, 2]).max() > MAX_SHIFT or np.abs(linear).max() > MAX_LINEAR:
        return aligned
    if np.abs(warp[:, 2]).max() < 0.05 and np.abs(linear).max() < 1e-3:
        return aligned
    # warp: template (frame) pixel -> pixel of the aligned frame; the aligned frame's pixel ->
    # candidate through the transform used, so the new frame -> candidate map is their composition
    frame_to_cand = _compose(aligned.transform, _frame_to_work(work_size, chips))
    new_frame_to_cand = _compose(frame_to_cand, warp.astype(np.float64))
    new = _compose(new_frame_to_cand, _work_to_frame(work_size, chips))
    refined = align_to_frame(candidate, new, work_size, chips)
    after = _correlation(template, cv2.GaussianBlur(frame_luminance(refined.frame), (0, 0), 1.0), mask > 0)
    return refined if after > before else aligned


def _work_to_frame(work_size: tuple[int, int], chips: tuple[int, int]) -> np.ndarray:
    m = np.vstack([_frame_to_work(work_size, chips), [0, 0, 1]])
    return np.linalg.inv(m)[:2]


def _correlation(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    x, y = a[where].astype(np.float64), b[where].astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum()) / den if den > 0 else 0.0


def round_trip(field: np.ndarray, aligned: Aligned) -> np.ndarray:
    """``field`` (on the frame) as it comes back after being rendered at the candidate's
    geometry and warped back: what the candidate's resolution leaves of it."""
    if aligned.scale >= 1.0:
        return field
    sigma = 0.45 / max(aligned.scale, 1e-3)  # the candidate's pixel, in frame pixels
    blurred = cv2.GaussianBlur(field, (0, 0), sigma)
    m = aligned.to_candidate
    rendered = cv2.warpAffine(blurred, m, aligned.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    fh, fw = field.shape[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(rendered, m, (fw, fh), flags=flags, borderMode=cv2.BORDER_REFLECT)


@dataclass(frozen=True, eq=False)
class Residual:
    """The aligned candidate minus the original, in the original's luminance units."""

    diff: np.ndarray  # (fh, fw) float32, 0 outside ``valid``
    valid: np.ndarray  # bool
    slope: float  # median slope of the tone curves (the copy's contrast against the original)
    curves: tuple[ToneCurve, ...]  # per channel (one for luminance)


@dataclass(frozen=True)
class ToneCurve:
    """``y = c0 + c1·x + c2·x²`` (x = original / 255) inside ``[lo, hi]``, straight outside."""

    coef: tuple[float, float, float]
    lo: float
    hi: float

    def __call__(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The curve and its slope at ``values`` (original units)."""
        c0, c1, c2 = self.coef
        xb = values.astype(np.float32) / 255.0
        xc = np.clip(xb, self.lo, self.hi)
        slope = (c1 + 2 * c2 * xc) / 255.0
        fit = c0 + c1 * xc + c2 * xc * xc + (xb - xc) * slope * 255.0
        return fit.astype(np.float32), slope.astype(np.float32)


_NO_CURVE = ToneCurve((0.0, 255.0, 0.0), 0.0, 1.0)


def residual(aligned: Aligned, base: np.ndarray) -> Residual:
    """The aligned candidate minus the original (both on the frame).

    Colour candidates are compared channel by channel (a brightened red clips in R while G
    and B still carry the mark, which is added to the three alike), then the channels still
    usable at each pixel are averaged with the luminance weights. In each channel the
    original is first blurred as the candidate's resolution blurs it; brightness, contrast
    and a mild gamma are undone by a robust tone-curve fit (the residual is divided by the
    curve's local slope, so the mark keeps its size; a channel left with a single unclipped
    tone, as line art whose black clipped, is levelled on that tone and read there only);
    what the copy clipped anew and what it does not cover are left out; the smooth remainder
    is removed.
    """
    candidate = aligned.frame
    if candidate.ndim == 3 and base.ndim == 3:
        pairs = [(candidate[..., c], base[..., c], float(LUMA[c])) for c in range(3)]
    else:
        pairs = [(frame_luminance(candidate), frame_luminance(base), 1.0)]
    num = np.zeros(candidate.shape[:2], np.float32)
    den = np.zeros(candidate.shape[:2], np.float32)
    slopes: list[tuple[float, float]] = []
    curves: list[ToneCurve] = []
    for cand_c, base_c, weight in pairs:
        part = _channel_residual(cand_c, round_trip(base_c, aligned), aligned.covered)
        curves.append(part[3] if part is not None else _NO_CURVE)
        if part is None:
            continue
        diff_c, valid_c, slope_c, _ = part
        num += weight * diff_c * valid_c
        den += weight * valid_c
        slopes.append((slope_c, weight))
    valid = den >= 0.25  # at least G, or R and B, still carry the mark
    if int(valid.sum()) < 4 * CHIP * CHIP or not slopes:
        return Residual(np.zeros(den.shape, np.float32), np.zeros(den.shape, bool), 0.0, tuple(curves))
    w = valid.astype(np.float32)
    diff = np.where(valid, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)
    trend = cv2.GaussianBlur(diff, (0, 0), 2 * CHIP) / np.maximum(cv2.GaussianBlur(w, (0, 0), 2 * CHIP), 1e-3)
    slope = sum(s * wt for s, wt in slopes) / sum(wt for _, wt in slopes)
    return Residual(((diff - trend) * w).astype(np.float32), valid, slope, tuple(curves))


def _channel_residual(
    candidate: np.ndarray, base: np.ndarray, covered: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, ToneCurve] | None:
    # leave out what the copy clipped anew (brightened highlights, deepened shadows) and its
    # rims, whose frame pixels were averaged with clipped ones; pixels clipped in the original
    # too (white backgrounds of drawings) stay: the residual there is the mark's own remainder
    clipped = (candidate <= 1.5) | (candidate >= 253.5) | _plateaus(candidate, covered)
    new_clip = (clipped & (base > 2.5) & (base < 252.5)).astype(np.uint8)
    valid = covered & ~(cv2.dilate(new_clip, np.ones((5, 5), np.uint8)) > 0)
    unclipped = valid & ~clipped
    if int(unclipped.sum()) < 4 * CHIP * CHIP:
        return None
    curve = _tone_curve(base, candidate, unclipped)  # the curve from unclipped pixels only
    if curve is None:
        return None
    if curve.lo == curve.hi:  # one tone: only that tone is modelled (its edges are not)
        valid &= np.abs(base - 255.0 * curve.lo) <= ONE_TONE_LEVELS
        if int(valid.sum()) < 4 * CHIP * CHIP:
            return None
    fit, slope = curve(base)
    fit = np.clip(fit, 0.0, 255.0)  # where it clips, the copy clips too
    mean_slope = float(np.median(slope[valid]))
    if mean_slope <= 0.05:  # not the same picture any more (inverted, flattened)
        return None
    slope = np.maximum(slope, 0.3 * mean_slope)
    return (candidate - fit) / slope, valid, mean_slope, curve


def _plateaus(candidate: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Pixels on the candidate's own darkest or lightest plateau: clipping before a contrast
    change (brightened, then flattened) leaves a plateau at 249, not at 255.

    A plateau is a spike at the end of the histogram: at least 1 % of the pixels within half
    a level of the extreme, and three times as dense as the two levels next to it. The tail
    of a flat area that still carries the mark (a white background darkened to 210, its mark
    spread over a few levels) is no spike, and stays."""
    values = candidate[covered]
    out = np.zeros(candidate.shape, bool)
    if values.size == 0:
        return out
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    for end, sign in ((hi, 1.0), (lo, -1.0)):
        offset = sign * (values - end)  # ≤ 0 inside the range
        spike = float(np.mean(np.abs(offset) <= 0.5))
        shoulder = float(np.mean((offset < -0.5) & (offset >= -2.5))) / 2
        if spike >= 0.01 and spike >= 3 * shoulder:
            out |= sign * (candidate - end) >= -1.5
    return out


def _tone_curve(base: np.ndarray, candidate: np.ndarray, valid: np.ndarray) -> ToneCurve | None:
    """The candidate's tone curve against the original (brightness, contrast, a mild gamma).

    A robust fit (iteratively reweighted least squares, Tukey's biweight), so the pixels that
    do not follow the curve (edges of a drawing averaged with clipped neighbours, text pasted
    over the picture) do not bend it: first affine, then quadratic, kept only when it stays
    increasing over the range of the data and fits clearly better. Outside that range the
    curve goes on straight.
    """
    x = base[valid].astype(np.float64) / 255.0
    y = candidate[valid].astype(np.float64)
    if x.size > 60_000:  # a regular subsample is plenty for three coefficients
        x, y = x[:: x.size // 50_000], y[:: y.size // 50_000]
    lo, hi = (float(v) for v in np.percentile(x, [1, 99]))
    if hi - lo < 8 / 255:
        # one tone left (a flat drawing whose other tones clipped): its slope cannot be told,
        # its level can; slope 1 (the reading estimates the mark's gain anyway)
        mid = float(np.median(x))
        return ToneCurve((float(np.median(y)) - 255.0 * mid, 255.0, 0.0), mid, mid)
    affine, s_affine = _robust_fit(np.stack([np.ones_like(x), x], axis=1), y)
    coef = (float(affine[0]), float(affine[1]), 0.0)
    if hi - lo > 0.1 and affine[1] > 0:
        quad, s_quad = _robust_fit(np.stack([np.ones_like(x), x, x * x], axis=1), y)
        ends = quad[1] + 2 * quad[2] * np.array([lo, hi])
        if ends.min() > 0.25 * affine[1] and s_quad < 0.9 * s_affine:
            coef = (float(quad[0]), float(quad[1]), float(quad[2]))
    return ToneCurve(coef, lo, hi)


def _robust_fit(design: np.ndarray, y: np.ndarray, rounds: int = 6) -> tuple[np.ndarray, float]:
    """Least squares reweighted by Tukey's biweight; returns the coefficients and the robust
    scale of the residuals."""
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    scale = 1.0
    for _ in range(rounds):
        r = y - design @ coef
        scale = max(1.4826 * float(np.median(np.abs(r - np.median(r)))), 0.5)
        u = r / (4.685 * scale)
        w = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
        if w.sum() < design.shape[1] * 4:
            break
        sw = np.sqrt(w)
        coef, *_ = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)
    return coef, scale


def robust_sigma(values: np.ndarray) -> float:
    if values.size == 0:
        return 0.0
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


@dataclass(frozen=True, eq=False)
class AlignedBits:
    """What an aligned residual says about each coded bit."""

    llr: np.ndarray  # log-likelihood ratio per coded bit (positive → 1; 0 = no covered chip)
    separation: np.ndarray  # |g·(a1 - a0)| / noise per bit: how far apart the two readings are
    gain: float  # the mark's gain relative to a full-strength mark (strength × resampling loss)

    @property
    def usable(self) -> np.ndarray:
        return self.separation > 0


def read_aligned(
    diff: np.ndarray,
    valid: np.ndarray,
    base: np.ndarray,
    lay: Layout,
    *,
    mask: np.ndarray | None = None,
    sigma: float | None = None,
) -> AlignedBits:
    """Soft coded bits from an aligned residual.

    Each bit's chip amplitude is estimated by least squares over the covered pixels and
    compared with the two amplitudes the embedder could have used on this original (it moved
    ``p`` to the nearest point of the lattice of 0, or of 1); a common gain (the strength
    used, the blur of resampling) is estimated along. ``base`` is the original's luminance
    on the frame; ``mask`` the embedder's :func:`perceptual_mask` (from ``base`` unless
    given: pass the one of the colour original). ``sigma`` (the residual's noise) is
    measured on ``diff`` unless given.
    """
    if mask is None:
        mask = perceptual_mask(base)
    gain = bit_gain(mask, lay)
    p0 = lay.statistic(base)
    a0 = (lay.lattice(p0, 0) - p0) / gain
    a1 = (lay.lattice(p0, 1) - p0) / gain
    w = valid.astype(np.float32)
    pattern = mask * tile(lay.signs)
    num = lay.per_bit(chip_sum(diff * pattern * w))
    den = lay.per_bit(chip_sum(pattern * pattern * w))
    if sigma is None:
        sigma = robust_sigma(diff[valid])
    sigma = max(sigma, 0.3)
    ok = den > 1e-3 * max(float(den.max()), 1e-9)
    llr = np.zeros(CODED_BITS)
    sep = np.zeros(CODED_BITS)
    if not ok.any():
        return AlignedBits(llr, sep, 0.0)
    est = np.where(ok, num / np.where(ok, den, 1.0), 0.0)
    var = np.where(ok, sigma * sigma / np.where(ok, den, 1.0), 1.0)
    weight = ok / var
    g = 1.0
    for _ in range(4):
        d0, d1 = (est - g * a0) ** 2, (est - g * a1) ** 2
        pick = np.where(d1 < d0, a1, a0)
        g = float(np.clip((weight * est * pick).sum() / max((weight * pick * pick).sum(), 1e-12), 0.05, 2.0))
    d0, d1 = (est - g * a0) ** 2, (est - g * a1) ** 2
    llr[ok] = ((d0 - d1) / (2 * var))[ok]
    sep[ok] = (g * np.abs(a1 - a0) / np.sqrt(var))[ok]
    return AlignedBits(llr, sep, g)


def copy_t(bits: AlignedBits, coded: np.ndarray) -> float:
    """One-sample t statistic of ``coded·llr`` over the usable bits: about N(0, 1) when the
    residual does not carry this copy's mark (the codeword's bits are independent of the
    picture, and the common bias of the readings is removed), large when it does."""
    ok = bits.usable
    n = int(ok.sum())
    if n < 8:
        return 0.0
    llr = bits.llr[ok] - float(np.mean(bits.llr[ok]))
    x = coded[ok] * llr
    sd = float(np.std(x))
    return float(np.mean(x)) / sd * math.sqrt(n) if sd > 0 else 0.0
