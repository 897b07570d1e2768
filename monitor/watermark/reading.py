"""Reading marks: blind (the candidate alone) and aligned (warped back onto the original).

Blind
    The candidate's frame (from its own aspect ratio, then the neighbouring frame shapes),
    the soft bits from the lattices, Reed–Solomon decoding and the keyed checksum. A
    detection's p-value is the bound of :mod:`monitor.watermark.payload`, times the frame
    shapes tried: under 1e-10 per image, so a false alarm needs ≫ 1e6 unmarked images.
Aligned
    The candidate warped into the work's frame with the inverse of the matcher's transform
    (crop, scale, rotation, mirror, pasting all undone; the uncovered part masked out), the
    original subtracted, and two readings: Reed–Solomon decoding of the soft bits, and for
    each copy published from this original a t statistic of its codeword against the soft
    bits (≈ N(0, 1) without that mark). A copy is found when decoding gives it or its t
    passes :data:`FOUND_T` (one-sided normal tail 1e-7 per copy). When neither, the reading
    asks what an *intact* mark would have given here (the mark resampled as the candidate's
    resolution resamples it, at the noise measured in the residual): under
    :data:`READABLE_T`, the candidate is too small or too degraded to tell (``found`` is
    None), otherwise the mark is missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monitor.watermark.keys import WatermarkKey
from monitor.watermark.payload import decode_payload, encode_payload
from monitor.watermark.signal import (
    CHIP,
    Aligned,
    AlignedBits,
    Layout,
    align_to_frame,
    bit_gain,
    blind_soft,
    chip_field,
    chip_variants,
    copy_t,
    expected_t,
    frame_chips,
    highpass,
    layout,
    luminance,
    perceptual_mask,
    read_aligned,
    residual,
    robust_sigma,
    round_trip,
    to_frame,
)

#: t a known copy needs to count as found (one-sided normal tail ≈ 1e-7).
FOUND_T = 5.2
#: t an intact mark must be expected to reach for its absence to mean something (with a wide
#: margin: the expectation models resampling, not every loss a copy can suffer).
READABLE_T = 25.0
#: Least share of the work's frame the candidate must show (after clipping is left out).
MIN_COVERED = 0.04
#: Candidate pixels a chip of the mark must span for a missing mark to mean something.
MIN_CHIP_PIXELS = 4.0


def _normal_tail(t: float) -> float:
    return 0.5 * math.erfc(t / math.sqrt(2))


@dataclass(frozen=True)
class BlindReading:
    found: bool
    copy_id: str | None = None
    p_value: float | None = None
    errors: int | None = None  # symbols the code corrected
    frames: int = 0  # frame shapes tried


def read_blind(pixels: np.ndarray, key: WatermarkKey) -> BlindReading:
    """Look for a mark of ``key`` in ``pixels`` (full resolution, as displayed)."""
    h, w = pixels.shape[:2]
    tried = 0
    for chips in chip_variants(w, h):
        tried += 1
        decoded = decode_payload(key, blind_soft(pixels, key, chips))
        if decoded is not None:
            return BlindReading(
                True, decoded.copy_id, min(1.0, decoded.p_value * tried), decoded.errors, tried
            )
    return BlindReading(False, frames=tried)


@dataclass(frozen=True)
class KnownCopy:
    """A copy published from the original being compared: its id and the strength used."""

    copy_id: str
    strength: float = 1.0


@dataclass(frozen=True)
class AlignedReading:
    found: bool | None  # None: the candidate cannot hold a readable mark
    copy_id: str | None
    confidence: float  # 1 - p-value of the finding (0 when nothing was found)
    reason: str | None
    decoded: bool  # the payload itself was decoded (not only recognised among known copies)
    t: float  # best copy's t statistic
    expected_t: float  # what an intact mark would have given
    covered: float  # share of the frame the candidate shows usefully
    gain: float


def read_aligned_copy(
    candidate: np.ndarray,
    transform: np.ndarray,
    base: np.ndarray,
    key: WatermarkKey,
    copies: Sequence[KnownCopy] = (),
) -> AlignedReading:
    """Read the mark of a candidate (full-resolution pixels) that shows the original ``base``
    through ``transform`` (work pixels → candidate pixels)."""
    h, w = base.shape[:2]
    chips = frame_chips(w, h)
    lay = layout(key, chips)
    base_frame = to_frame(luminance(base), chips)
    aligned = align_to_frame(luminance(candidate), transform, (w, h), chips)
    diff, valid, _ = residual(aligned, base_frame)
    covered = float(valid.mean())
    if covered < MIN_COVERED or int(valid.sum()) < 16 * CHIP * CHIP:
        return AlignedReading(
            None, None, 0.0, f"the copy shows too little of the work ({covered:.0%} of it usable)",
            False, 0.0, 0.0, covered, 0.0,
        )  # fmt: skip
    sigma = robust_sigma(diff[valid])
    bits = read_aligned(diff, valid, base_frame, lay, sigma=sigma)
    decoded = decode_payload(key, bits.llr)
    scored = [(copy_t(bits, encode_payload(key, c.copy_id)), c) for c in copies]
    best_t, best = max(scored, key=lambda s: s[0]) if scored else (0.0, None)
    if decoded is not None:
        confidence = 1.0 - decoded.p_value
        if best is not None and decoded.copy_id == best.copy_id:
            confidence = max(confidence, 1.0 - _normal_tail(best_t) * len(copies))
        exp_t = best_t if best is not None else 0.0
        return AlignedReading(
            True, decoded.copy_id, confidence, None, True, best_t, exp_t, covered, bits.gain
        )
    if best is not None and best_t >= FOUND_T:
        p = min(1.0, _normal_tail(best_t) * len(copies))
        return AlignedReading(True, best.copy_id, 1.0 - p, None, False, best_t, best_t, covered, bits.gain)
    exp_t = 0.0
    if copies:
        reference = best or copies[0]
        exp_t = _expected(reference, key, lay, base_frame, aligned, valid, sigma, bits)
    chip_pixels = aligned.scale * CHIP
    if chip_pixels < MIN_CHIP_PIXELS:
        reason = (
            f"the copy is too small to hold a readable mark (a chip of the mark spans "
            f"{chip_pixels:.1f} of its pixels, {MIN_CHIP_PIXELS:.0f} needed)"
        )
        return AlignedReading(None, None, 0.0, reason, False, best_t, exp_t, covered, bits.gain)
    if exp_t < READABLE_T:
        reason = (
            f"the copy is too small or too degraded to hold a readable mark "
            f"(an intact mark would score t={exp_t:.1f} here, {READABLE_T:.0f} needed)"
        )
        return AlignedReading(None, None, 0.0, reason, False, best_t, exp_t, covered, bits.gain)
    return AlignedReading(False, None, 0.0, "no mark found", False, best_t, exp_t, covered, bits.gain)


def _expected(
    copy: KnownCopy,
    key: WatermarkKey,
    lay: Layout,
    base_frame: np.ndarray,
    aligned: Aligned,
    valid: np.ndarray,
    sigma: float,
    bits: AlignedBits,
) -> float:
    """The t an intact mark of ``copy`` would reach in this candidate (see module doc)."""
    coded = encode_payload(key, copy.copy_id)
    mask = perceptual_mask(base_frame)
    p0 = lay.statistic(base_frame)
    amplitude = copy.strength * (lay.lattice(p0, (coded > 0).astype(np.int64)) - p0) / bit_gain(mask, lay)
    intact_field = highpass(round_trip(chip_field(mask, lay, amplitude), aligned)) * valid
    intact = read_aligned(intact_field, valid, base_frame, lay, sigma=sigma)
    return expected_t(intact, bits, coded)
