"""Invisible, keyed watermark of published copies (issue 3).

Modules: :mod:`~monitor.watermark.keys` (the secret key), :mod:`~monitor.watermark.payload`
(copy id + keyed checksum, Reed–Solomon, false-alarm analysis),
:mod:`~monitor.watermark.signal` (the mark: frame, chips, lattices, alignment),
:mod:`~monitor.watermark.files` (marked files with the base's metadata),
:mod:`~monitor.watermark.reading` (blind and aligned reading),
:mod:`~monitor.watermark.copies` (published copies and their registry port) and
:mod:`~monitor.watermark.service` (registration step, match inspector, mark-check).
"""

from __future__ import annotations

from monitor.watermark.copies import CopyRegistry, NewCopy, PublishedCopy, is_channel, new_copy_id
from monitor.watermark.files import MarkedImage, mark_image
from monitor.watermark.keys import WatermarkKey, load_or_create_key
from monitor.watermark.payload import FALSE_ALARM_PER_IMAGE, decode_payload, encode_payload
from monitor.watermark.reading import (
    AlignedReading,
    BlindReading,
    Codebook,
    KnownCopy,
    read_aligned_copy,
    read_blind,
)
from monitor.watermark.service import (
    STRIPPED,
    MarkCheck,
    WatermarkInspector,
    WatermarkStep,
    blind_codebook,
    check_image,
    key_from_settings,
)

__all__ = [
    "FALSE_ALARM_PER_IMAGE",
    "STRIPPED",
    "AlignedReading",
    "BlindReading",
    "Codebook",
    "CopyRegistry",
    "KnownCopy",
    "MarkCheck",
    "MarkedImage",
    "NewCopy",
    "PublishedCopy",
    "WatermarkInspector",
    "WatermarkKey",
    "WatermarkStep",
    "blind_codebook",
    "check_image",
    "decode_payload",
    "encode_payload",
    "is_channel",
    "key_from_settings",
    "load_or_create_key",
    "mark_image",
    "new_copy_id",
    "read_aligned_copy",
    "read_blind",
]
