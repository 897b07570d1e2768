"""Reading marks: blind (the candidate alone) and aligned (warped back onto the original).

Blind
    The candidate's frame (from its own aspect ratio, then the neighbouring frame shapes),
    the soft bits from the lattices, then two readings. Reed–Solomon decoding with the keyed
    checksum needs no side information (its p-value is the bound of
    :mod:`monitor.watermark.payload` times the frame shapes tried: under 1e-10 per image).
    When it fails, the soft bits are compared with the codeword of every copy this
    installation issued (:class:`Codebook`): a correlation over all 256 bits still stands out
    where a fifth of them are wrong, far past what the code corrects. Its threshold grows
    with the number of codewords so that the false-alarm rate stays under
    :data:`CODEBOOK_FALSE_ALARM` per image however many copies were issued.
Aligned
    The candidate warped into the work's frame with the inverse of the matcher's transform
    (crop, scale, rotation, mirror, pasting all undone; the uncovered part masked out), the
    alignment refined by ECC image alignment against the original, the original subtracted
    channel by channel (tone curves undone, clipping left out), and two readings:
    Reed–Solomon decoding of the soft bits, and for each copy published from this original a
    t statistic of its codeword against the soft bits (≈ N(0, 1) without that mark). A copy
    is found when decoding gives it or its t passes :data:`FOUND_T` (one-sided normal tail
    1e-7 per copy). When neither, the reading asks what an *intact* mark would have given
    here, by simulation (:func:`simulated_t`: the original marked again and put through the
    candidate's observed geometry, tone curves, clipping and 8-bit rounding, plus the
    candidate's own noise): under :data:`READABLE_T`, or when the candidate still shows a
    trace of the mark (t ≥ :data:`ABSENT_T`), it is too small or too degraded to tell
    (``found`` is None); otherwise the mark is missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from monitor.watermark.keys import WatermarkKey
from monitor.watermark.payload import CODED_BITS, decode_payload, encode_payload
from monitor.watermark.signal import (
    CHIP,
    Aligned,
    Residual,
    align_to_frame,
    blind_soft,
    chip_variants,
    copy_t,
    frame_chips,
    frame_luminance,
    layout,
    luminance,
    mark_delta,
    perceptual_mask,
    read_aligned,
    refine_alignment,
    residual,
    robust_sigma,
    to_frame,
    working_pixels,
)

#: t a known copy needs to count as found (one-sided normal tail ≈ 1e-7).
FOUND_T = 5.2
#: t an intact mark must be expected to reach (see :func:`simulated_t`) for its absence to
#: mean something.
READABLE_T = 15.0
#: A reading at or above this t is a trace of the mark, not its absence.
ABSENT_T = 3.0
#: Least share of the work's frame the candidate must show (after clipping is left out).
MIN_COVERED = 0.04
#: Candidate pixels a chip of the mark must span for a missing mark to mean something.
MIN_CHIP_PIXELS = 4.0


def _normal_tail(t: float) -> float:
    return 0.5 * math.erfc(t / math.sqrt(2))


#: False-alarm rate of the codebook test, per image: all frame shapes and codewords together.
CODEBOOK_FALSE_ALARM = 1e-7
_CHUNK = 16384  # codewords scored at a time (bounds the float copy)


@dataclass(frozen=True, eq=False)
class Codebook:
    """The codewords of the copies an installation issued, for blind reading.

    A candidate's soft bits ``s`` (in -1..1) are scored against each codeword ``c`` (±1) by
    ``z = c·s / |s|``. The copy ids are drawn at random, independently of any picture, so on
    an image that does not carry ``c`` the terms ``c_k·s_k`` are symmetric and bounded by
    ``|s_k|``; treating the codeword's bits as fair coins, Hoeffding's inequality gives
    ``P(z >= T) <= exp(-T²/2)`` for each codeword and frame shape. The threshold is the
    ``T`` at which that bound, times the codewords and frame shapes tried, is
    :data:`CODEBOOK_FALSE_ALARM` (6.9 for 1,000 copies and 3 frame shapes, 7.6 for 100,000),
    and never below the aligned reading's :data:`FOUND_T`. An intact mark scores up to
    √256 = 16. ``bench/watermark.py`` checks the bound empirically (≥ 10^8 codeword tests on
    unmarked images).
    """

    ids: tuple[str, ...]
    words: np.ndarray  # (len(ids), CODED_BITS) int8 ±1

    @classmethod
    def of(cls, key: WatermarkKey, copy_ids: Iterable[str]) -> Codebook:
        ids = tuple(dict.fromkeys(copy_ids))
        words = np.empty((len(ids), CODED_BITS), np.int8)
        for row, copy_id in enumerate(ids):
            words[row] = encode_payload(key, copy_id)
        words.setflags(write=False)
        return cls(ids, words)

    def __len__(self) -> int:
        return len(self.ids)

    def _tests(self, frames: int) -> int:
        """Codeword tests per image: every codeword on every frame shape."""
        return max(1, len(self)) * max(1, frames)

    def threshold(self, frames: int) -> float:
        return max(FOUND_T, math.sqrt(2.0 * math.log(self._tests(frames) / CODEBOOK_FALSE_ALARM)))

    def p_value(self, z: float, frames: int) -> float:
        return min(1.0, self._tests(frames) * math.exp(-0.5 * z * z))

    def best(self, soft: np.ndarray) -> tuple[str, float] | None:
        """The codeword that scores highest against ``soft``, and its ``z``."""
        norm = float(np.linalg.norm(soft))
        if not self.ids or norm == 0.0:
            return None
        unit = np.asarray(soft, np.float32) / np.float32(norm)
        best_row, best_z = 0, -math.inf
        for start in range(0, len(self), _CHUNK):
            scores = self.words[start : start + _CHUNK].astype(np.float32) @ unit
            row = int(np.argmax(scores))
            if float(scores[row]) > best_z:
                best_row, best_z = start + row, float(scores[row])
        return self.ids[best_row], best_z


@dataclass(frozen=True)
class BlindReading:
    found: bool
    copy_id: str | None = None
    p_value: float | None = None
    errors: int | None = None  # symbols the code corrected (None unless decoded)
    frames: int = 0  # frame shapes tried
    decoded: bool = False  # the payload itself was decoded (not recognised in the codebook)
    z: float | None = None  # best codebook score (None without a codebook)


def read_blind(pixels: np.ndarray, key: WatermarkKey, codebook: Codebook | None = None) -> BlindReading:
    """Look for a mark of ``key`` in ``pixels`` (full resolution, as displayed).

    Each frame shape is first decoded on its own; with a ``codebook`` (the installation's
    issued copies), a frame whose decoding fails is then scored against every codeword.
    """
    h, w = pixels.shape[:2]
    variants = chip_variants(w, h)
    limit = codebook.threshold(len(variants)) if codebook else math.inf
    best_z: float | None = None
    for tried, chips in enumerate(variants, start=1):
        soft = blind_soft(pixels, key, chips)
        decoded = decode_payload(key, soft)
        if decoded is not None:
            p = min(1.0, decoded.p_value * tried)
            return BlindReading(True, decoded.copy_id, p, decoded.errors, tried, decoded=True)
        if not codebook or (scored := codebook.best(soft)) is None:
            continue
        copy_id, z = scored
        best_z = z if best_z is None else max(best_z, z)
        if z >= limit:
            return BlindReading(True, copy_id, codebook.p_value(z, len(variants)), None, tried, z=z)
    return BlindReading(False, frames=len(variants), z=best_z)


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
    base_w = working_pixels(base)
    base_c, cand_c = base_w, working_pixels(candidate)
    if base_c.ndim != cand_c.ndim:
        base_c, cand_c = luminance(base), luminance(candidate)
    base_frames = to_frame(base_c, chips)
    base_frame = frame_luminance(base_frames)
    # the embedder's mask, from the original as it was marked (colour when it is colour)
    mask = perceptual_mask(base_frames if base_c is base_w else to_frame(base_w, chips))
    aligned = align_to_frame(cand_c, transform, (w, h), chips)
    aligned = refine_alignment(cand_c, aligned, base_frame, (w, h))
    res = residual(aligned, base_frames)
    valid = res.valid
    covered = float(valid.mean())
    if covered < MIN_COVERED or int(valid.sum()) < 16 * CHIP * CHIP:
        return AlignedReading(
            None, None, 0.0, f"the copy shows too little of the work ({covered:.0%} of it usable)",
            False, 0.0, 0.0, covered, 0.0,
        )  # fmt: skip
    bits = read_aligned(res.diff, valid, base_frame, lay, mask=mask, sigma=robust_sigma(res.diff[valid]))
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
    chip_pixels = aligned.scale * CHIP
    if chip_pixels < MIN_CHIP_PIXELS:
        reason = (
            f"the copy is too small to hold a readable mark (a chip of the mark spans "
            f"{chip_pixels:.1f} of its pixels, {MIN_CHIP_PIXELS:.0f} needed)"
        )
        return AlignedReading(None, None, 0.0, reason, False, best_t, 0.0, covered, bits.gain)
    exp_t = 0.0
    if copies:
        exp_t = simulated_t(best or copies[0], key, base, base_c, base_frames, mask, cand_c, aligned, res)
    if exp_t < READABLE_T:
        reason = (
            f"the copy is too small or too degraded to hold a readable mark "
            f"(an intact mark would score t={exp_t:.1f} here, {READABLE_T:.0f} needed)"
        )
        return AlignedReading(None, None, 0.0, reason, False, best_t, exp_t, covered, bits.gain)
    if best_t >= ABSENT_T:
        reason = f"a trace of the mark (t={best_t:.1f}), too weak to identify the copy"
        return AlignedReading(None, None, 0.0, reason, False, best_t, exp_t, covered, bits.gain)
    return AlignedReading(False, None, 0.0, "no mark found", False, best_t, exp_t, covered, bits.gain)


def simulated_t(
    copy: KnownCopy,
    key: WatermarkKey,
    base: np.ndarray,
    base_c: np.ndarray,
    base_frames: np.ndarray,
    mask: np.ndarray,
    candidate: np.ndarray,
    aligned: Aligned,
    res: Residual,
) -> float:
    """The t an intact mark of ``copy`` would reach in this candidate.

    The original is marked again with the copy's payload and strength, rendered through the
    candidate's observed degradation (its geometry, with the same interpolation loss; its
    tone curves per channel, with clipping and 8-bit rounding: a darkened flat drawing keeps
    nothing of a mark of a level or two), and the candidate's own noise is added: its actual
    residual, turned by 180° so that any mark it still holds no longer lines up with the
    chips (JPEG, resampling, text over the picture all keep their size). The sum is read
    exactly as the candidate was.
    """
    h, w = base.shape[:2]
    chips = (base_frames.shape[0] // CHIP, base_frames.shape[1] // CHIP)
    lay = layout(key, chips)
    coded = encode_payload(key, copy.copy_id)
    delta = mark_delta(base, key, coded, copy.strength)
    marked = np.clip(np.rint(base_c + (delta[..., None] if base_c.ndim == 3 else delta)), 0, 255)
    # render only the part of the candidate the work lands on
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) @ aligned.transform.T
    ch, cw = candidate.shape[:2]
    x0, y0 = max(0, math.floor(corners[:, 0].min()) - 2), max(0, math.floor(corners[:, 1].min()) - 2)
    x1, y1 = min(cw, math.ceil(corners[:, 0].max()) + 3), min(ch, math.ceil(corners[:, 1].max()) + 3)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return 0.0
    to_region = np.vstack([aligned.transform, [0, 0, 1]])[:2] - np.array([[0, 0, x0], [0, 0, y0]])
    rendered = cv2.warpAffine(
        marked.astype(np.float32), to_region, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    if rendered.ndim == 3:
        for c, curve in enumerate(res.curves):
            rendered[..., c] = curve(rendered[..., c])[0]
    else:
        rendered = res.curves[0](rendered)[0]
    rendered = np.clip(np.rint(rendered), 0, 255)
    sim = residual(align_to_frame(rendered, to_region, (w, h), chips), base_frames)
    noise, noise_valid = res.diff[::-1, ::-1], res.valid[::-1, ::-1]
    valid = res.valid & sim.valid & noise_valid
    if int(valid.sum()) < 16 * CHIP * CHIP:
        return 0.0
    field = (sim.diff + noise) * valid
    bits = read_aligned(
        field, valid, frame_luminance(base_frames), lay, mask=mask, sigma=robust_sigma(field[valid])
    )
    return copy_t(bits, coded)
