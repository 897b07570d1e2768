"""The watermark in the use cases: a registration step, a match inspector, and mark-check.

* :class:`WatermarkStep` (registration, last step): with ``--watermark``, marks what the
  owner publishes (``registration.published``) once per channel, writes
  ``<stem>.<channel>.marked.<ext>``, keeps the unmarked base and the marked copy in the blob
  store and the copy in the :class:`~monitor.watermark.copies.CopyRegistry`. The same work
  and channel again give the same copy id (and the same file).
* :class:`WatermarkInspector` (scan): for a match whose work has marked copies, reads the
  mark after aligning the candidate on the base, and reports
  ``{"expected", "found", "copy_id", "confidence", "reason", "channel"}`` under
  ``"watermark"``; flags ``watermark_stripped`` when the match is strong, the candidate could
  hold a readable mark, and none is there.
* :func:`check_image` (``monitor mark-check``): blind reading, no original needed; the
  codebook of the copies this installation issued (:func:`blind_codebook`, built once per
  batch) finds marks too damaged to decode on their own.
"""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.blobs import BlobStore
from monitor.errors import MonitorError, NotFound, WatermarkError
from monitor.images import decode_full_pixels
from monitor.matching import in_work_tones
from monitor.watermark.copies import CopyRegistry, NewCopy, PublishedCopy, is_channel, new_copy_id
from monitor.watermark.files import MarkedImage, mark_image
from monitor.watermark.keys import WatermarkKey, load_or_create_key
from monitor.watermark.payload import FALSE_ALARM_PER_IMAGE
from monitor.watermark.reading import (
    CODEBOOK_FALSE_ALARM,
    AlignedReading,
    Codebook,
    KnownCopy,
    read_aligned_copy,
    read_blind,
)

if TYPE_CHECKING:
    from monitor.matching import Match
    from monitor.services import CandidateContext, Registration
    from monitor.settings import Settings
    from monitor.works import Work

STRIPPED = "watermark_stripped"


def key_from_settings(settings: Settings) -> WatermarkKey:
    """The key set in the settings, else the one under ``MONITOR_HOME`` (created on first use)."""
    if settings.watermark.key is not None:
        return WatermarkKey.from_hex(settings.watermark.key.get_secret_value())
    return load_or_create_key(settings.watermark_key_file)


class _LazyKey:
    """Loads (or creates) the key on first use only: registering without ``--watermark`` or
    scanning works without marked copies never touches it."""

    def __init__(self, load: Callable[[], WatermarkKey]) -> None:
        self._load = load
        self._key: WatermarkKey | None = None

    def __call__(self) -> WatermarkKey:
        if self._key is None:
            self._key = self._load()
        return self._key


# ------------------------------------------------------------------ registration


class WatermarkStep:
    """Registration step: marked publication copies, one per channel."""

    name = "watermark"

    def __init__(
        self,
        copies: CopyRegistry,
        blobs: BlobStore,
        settings: Settings,
        key: Callable[[], WatermarkKey] | None = None,
    ) -> None:
        self.copies = copies
        self.blobs = blobs
        self.settings = settings
        self._key = _LazyKey(key or (lambda: key_from_settings(settings)))

    def __call__(self, registration: Registration) -> None:
        options = registration.options
        if not options.watermark:
            return
        channels = list(dict.fromkeys(options.channels or (self.settings.watermark.default_channel,)))
        for channel in channels:
            if not is_channel(channel):
                raise WatermarkError(
                    f"bad channel name {channel!r}: use 1-64 lowercase letters, digits, '.', '_' or '-'"
                )
        key = self._key()
        base = registration.published
        base_sha = self.blobs.put(base)
        entries = []
        for channel in channels:
            copy = self._copy(registration, channel, key, base, base_sha)
            entries.append({"channel": channel, "copy_id": copy.id, "marked_path": copy.path})
        registration.extra["marked_path"] = entries[0]["marked_path"]
        registration.extra["copy_id"] = entries[0]["copy_id"]
        if len(entries) > 1:
            registration.extra["copies"] = entries

    def _copy(
        self, registration: Registration, channel: str, key: WatermarkKey, base: bytes, base_sha: str
    ) -> PublishedCopy:
        work = registration.work
        existing = self.copies.find(work.id, channel)
        copy_id = existing.id if existing is not None else new_copy_id()
        marked = self._mark(base, key, copy_id)
        path = self._path(registration, channel, marked.extension)
        if existing is None:
            stored, created = self.copies.add(
                NewCopy(
                    id=copy_id,
                    work_id=work.id,
                    channel=channel,
                    base_sha256=base_sha,
                    marked_sha256=_sha256(marked.data),
                    path=str(path),
                    key_id=key.key_id,
                    strength=marked.strength,
                )
            )
            if not created:  # another registration of this work and channel won the race
                existing = stored
                if stored.id != copy_id:
                    marked = self._mark(base, key, stored.id)
        self.blobs.put(marked.data)
        _write_atomic(path, marked.data)
        if existing is not None:
            stored = self.copies.update(
                existing.id,
                base_sha256=base_sha,
                marked_sha256=_sha256(marked.data),
                path=str(path),
                strength=marked.strength,
            )
        return stored

    def _mark(self, base: bytes, key: WatermarkKey, copy_id: str) -> MarkedImage:
        s = self.settings.watermark
        return mark_image(
            base,
            key,
            copy_id,
            jpeg_quality=s.jpeg_quality,
            min_psnr=s.min_psnr,
            min_ssim=s.min_ssim,
            max_pixels=self.settings.intake.max_pixels,
        )

    @staticmethod
    def _path(registration: Registration, channel: str, extension: str) -> Path:
        source = Path(registration.path)
        folder = registration.options.out_dir or source.parent
        return folder / f"{source.stem}.{channel}.marked.{extension}"


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".marked-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # an ordinary file to publish, not mkstemp's 0600
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise WatermarkError(f"cannot write the marked copy {path}: {exc.strerror or exc}") from exc


# ------------------------------------------------------------------ scanning


class WatermarkInspector:
    """Match inspector: is the mark of the work's published copies still in the candidate?"""

    name = "watermark"

    def __init__(
        self,
        copies: CopyRegistry,
        blobs: BlobStore,
        settings: Settings,
        key: Callable[[], WatermarkKey] | None = None,
    ) -> None:
        self.copies = copies
        self.blobs = blobs
        self.settings = settings
        self._key = _LazyKey(key or (lambda: key_from_settings(settings)))
        self._pixels: OrderedDict[str, np.ndarray] = OrderedDict()

    def __call__(self, candidate: CandidateContext, work: Work, match: Match) -> None:
        published = self.copies.for_work(work.id)
        if not published:
            match.reports["watermark"] = _report(
                False, None, reason="no marked copy of this work was published"
            )
            return
        key = self._key()
        mine = [c for c in published if c.key_id == key.key_id]
        if not mine:
            match.reports["watermark"] = _report(
                True, None, reason="the work's copies were marked with another key than this installation's"
            )
            return
        # a negative carries the mark negated: it is read as a positive
        cand = in_work_tones(self._decoded(candidate.image.sha256, lambda: candidate.data), match)
        readings: list[tuple[AlignedReading, list[PublishedCopy]]] = []
        for base_sha in dict.fromkeys(c.base_sha256 for c in mine):
            group = [c for c in mine if c.base_sha256 == base_sha]
            try:
                base = self._decoded(base_sha, partial(self.blobs.get, base_sha))
            except MonitorError as exc:
                match.details.setdefault("inspection_errors", {})["watermark"] = f"{exc.code}: {exc.message}"
                continue
            transform = _to_base(match.transform, work, base)
            known = [KnownCopy(c.id, c.strength) for c in group]
            readings.append((read_aligned_copy(cand, transform, base, key, known), group))
        if not readings:
            match.reports["watermark"] = _report(
                True, None, reason="the unmarked base is missing from the store"
            )
            return
        reading, group = max(readings, key=lambda r: (_rank(r[0]), r[0].t))
        channel = next((c.channel for c in group if c.id == reading.copy_id), None)
        if reading.found and channel is None and reading.copy_id is not None:
            channel = _channel_of(self.copies, reading.copy_id)
        match.reports["watermark"] = _report(True, reading.found, reading=reading, channel=channel)
        strong = match.similarity >= self.settings.watermark.strong_match
        if reading.found is False and strong and STRIPPED not in match.flags:
            match.flags.append(STRIPPED)

    def _decoded(self, sha: str, data: Callable[[], bytes]) -> np.ndarray:
        if sha in self._pixels:
            self._pixels.move_to_end(sha)
            return self._pixels[sha]
        pixels = decode_full_pixels(data(), max_pixels=self.settings.intake.max_pixels)
        self._pixels[sha] = pixels
        while len(self._pixels) > 4:
            self._pixels.popitem(last=False)
        return pixels


def _rank(reading: AlignedReading) -> int:
    return {True: 2, False: 1, None: 0}[reading.found]


def _channel_of(copies: CopyRegistry, copy_id: str) -> str | None:
    try:
        return copies.get(copy_id).channel
    except NotFound:
        return None


def _to_base(transform: np.ndarray, work: Work, base: np.ndarray) -> np.ndarray:
    """The match's transform (work pixels → candidate) for the base's pixels (the base is
    the published picture, which a visible-mark step may have made at another size)."""
    h, w = base.shape[:2]
    if (w, h) == (work.width, work.height):
        return np.asarray(transform, np.float64)
    sx, sy = work.width / w, work.height / h
    scale = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    return (np.vstack([transform, [0, 0, 1]]) @ scale)[:2]


def _report(
    expected: bool,
    found: bool | None,
    *,
    reading: AlignedReading | None = None,
    reason: str | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "expected": expected,
        "found": found,
        "copy_id": reading.copy_id if reading is not None else None,
        "confidence": round(reading.confidence, 9) if reading is not None else 0.0,
        "reason": reading.reason if reading is not None else reason,
        "channel": channel,
    }
    if reading is not None:
        body.update(
            {
                "decoded": reading.decoded,
                "t": round(reading.t, 2),
                "expected_t": round(reading.expected_t, 2),
                "covered": round(reading.covered, 4),
            }
        )
    return body


# ------------------------------------------------------------------ mark-check


@dataclass(frozen=True)
class MarkCheck:
    found: bool
    copy_id: str | None
    work_id: str | None
    channel: str | None
    p_value: float | None
    errors: int | None
    method: str | None = None  # "decoded" (the payload read on its own) or "codebook"
    z: float | None = None  # best codebook score
    codebook_size: int = 0

    def to_json(self) -> dict[str, Any]:
        bound = FALSE_ALARM_PER_IMAGE * 3 + (CODEBOOK_FALSE_ALARM if self.codebook_size else 0.0)
        return {
            "found": self.found,
            "copy_id": self.copy_id,
            "work_id": self.work_id,
            "channel": self.channel,
            "p_value": self.p_value,
            "method": self.method,
            "corrected_symbols": self.errors,
            "z": None if self.z is None else round(self.z, 2),
            "codebook_size": self.codebook_size,
            "false_alarm_bound": bound,
        }


def blind_codebook(key: WatermarkKey, copies: CopyRegistry | None) -> Codebook:
    """The codewords of every copy marked with ``key`` (empty without a copy registry)."""
    return Codebook.of(key, copies.ids(key.key_id) if copies is not None else ())


def check_image(
    data: bytes,
    key: WatermarkKey,
    copies: CopyRegistry | None,
    *,
    max_pixels: int | None = None,
    codebook: Codebook | None = None,
) -> MarkCheck:
    """Blind reading of one image: is a mark of this installation's key in it?

    Pass the ``codebook`` of :func:`blind_codebook` when checking several images; without
    it, it is built from ``copies`` for this image.
    """
    pixels = decode_full_pixels(data, max_pixels=max_pixels)
    if codebook is None:
        codebook = blind_codebook(key, copies)
    reading = read_blind(pixels, key, codebook)
    size = len(codebook)
    if not reading.found or reading.copy_id is None:
        return MarkCheck(False, None, None, None, None, None, None, reading.z, size)
    work_id = channel = None
    if copies is not None:
        try:
            copy = copies.get(reading.copy_id)
            work_id, channel = copy.work_id, copy.channel
        except NotFound:
            pass
    method = "decoded" if reading.decoded else "codebook"
    return MarkCheck(
        True, reading.copy_id, work_id, channel, reading.p_value, reading.errors, method, reading.z, size
    )
