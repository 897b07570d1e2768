"""The payload: a 64-bit copy id plus a keyed 16-bit checksum, Reed–Solomon protected.

``10`` data bytes (8 of copy id, 2 of ``HMAC(key, copy id)``) are encoded with a shortened
Reed–Solomon code over GF(256) with ``PARITY = 22`` parity bytes: 32 symbols, 256 coded
bits, up to 11 symbol errors (or ``2·errors + erasures <= 22``) corrected.

False alarms (why a decoded payload is trustworthy)
---------------------------------------------------
On an unmarked image, or one marked with another key, each soft bit is a sum of the keyed
random signs times host values: symmetric around zero and independent from bit to bit, so
the hard-decided word is uniform over the 256^32 words. A decode attempt with ``f`` erased
symbols succeeds only if the other ``n' = 32 - f`` symbols lie within ``e = (22 - f) // 2``
symbols of one of the 256^10 codewords, so

    P(attempt succeeds) <= 256^10 · V(n', e) / 256^n',   V(n', e) = Σ_{i<=e} C(n', i)·255^i,

and the keyed checksum must then match too (probability 2^-16). :func:`false_alarm_bound`
sums this over every attempt the decoder makes; with the attempts in :data:`ERASURE_STEPS`
(at most 14 erasures) the total is about 1e-11 per image (see :data:`FALSE_ALARM_PER_IMAGE`),
well under the 1e-6 required. The p-value reported for a detection is the same bound with
the number of errors actually corrected in place of ``e``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import reedsolo

from monitor.watermark.keys import WatermarkKey

ID_BYTES = 8
CHECK_BYTES = 2
DATA_BYTES = ID_BYTES + CHECK_BYTES
PARITY = 22
SYMBOLS = DATA_BYTES + PARITY
CODED_BITS = 8 * SYMBOLS
#: Erasure counts tried in turn (least reliable symbols erased first).
ERASURE_STEPS = (0, 2, 4, 6, 8, 10, 12, 14)

_COPY_ID = re.compile(r"^[0-9a-f]{16}$")
_CODEC = reedsolo.RSCodec(PARITY, nsize=255)


def is_copy_id(text: str) -> bool:
    return bool(_COPY_ID.match(text))


def _check(key: WatermarkKey, ident: bytes) -> bytes:
    return key.mac(b"payload-check/v1" + ident)[:CHECK_BYTES]


def encode_payload(key: WatermarkKey, copy_id: str) -> np.ndarray:
    """The 256 coded bits of a copy id (16 hex digits) as ``±1.0`` (bit 1 → +1)."""
    if not is_copy_id(copy_id):
        raise ValueError(f"a copy id is 16 lowercase hex digits, not {copy_id!r}")
    ident = bytes.fromhex(copy_id)
    word = bytes(_CODEC.encode(ident + _check(key, ident)))
    bits = np.unpackbits(np.frombuffer(word, np.uint8))
    return bits.astype(np.float32) * 2 - 1


@dataclass(frozen=True)
class Decoded:
    copy_id: str
    errors: int  # symbols corrected
    erasures: int
    attempts: int
    p_value: float


def _log_volume(n: int, radius: int) -> float:
    """log2 of the number of 256-ary words within ``radius`` of a word of length ``n``."""
    total = sum(math.comb(n, i) * 255**i for i in range(radius + 1))
    return math.log2(total)


def attempt_bound(erasures: int, radius: int) -> float:
    """P(a uniform random word decodes, with ``erasures`` erased and up to ``radius`` errors,
    to a codeword whose keyed checksum matches)."""
    n = SYMBOLS - erasures
    log_p = 8 * DATA_BYTES + _log_volume(n, radius) - 8 * n - 8 * CHECK_BYTES
    return min(1.0, 2.0**log_p)


def false_alarm_bound(steps: tuple[int, ...] = ERASURE_STEPS) -> float:
    """Upper bound on P(some decode attempt accepts an unmarked image), per frame tried."""
    return min(1.0, sum(attempt_bound(f, (PARITY - f) // 2) for f in steps))


FALSE_ALARM_PER_IMAGE = false_alarm_bound()


def decode_payload(
    key: WatermarkKey, soft: np.ndarray, steps: tuple[int, ...] = ERASURE_STEPS
) -> Decoded | None:
    """Decode soft bits (positive → 1; magnitude = reliability; 0 = unknown) into a copy id.

    Tries plain error correction, then erases more and more of the least reliable symbols.
    Returns None unless a codeword with a valid keyed checksum is found.
    """
    if soft.shape != (CODED_BITS,):
        raise ValueError(f"expected {CODED_BITS} soft bits, got {soft.shape}")
    hard = np.packbits((soft > 0).astype(np.uint8))
    reliability = np.abs(soft).reshape(SYMBOLS, 8).min(axis=1)
    order = np.argsort(reliability, kind="stable")
    tried = 0
    for f in steps:
        tried += 1
        erase = sorted(int(i) for i in order[:f])
        try:
            msg, _, errata = _CODEC.decode(bytearray(hard.tobytes()), erase_pos=erase or None)
        except reedsolo.ReedSolomonError:
            continue
        ident, check = bytes(msg[:ID_BYTES]), bytes(msg[ID_BYTES:DATA_BYTES])
        if check != _check(key, ident):
            continue
        errors = max(0, len(errata) - f)
        p = min(1.0, tried * attempt_bound(f, errors))
        return Decoded(ident.hex(), errors, f, tried, p)
    return None
