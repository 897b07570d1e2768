"""Registered works and the registry port the services talk to.

The core only knows the :class:`WorkRegistry` protocol; ``monitor.registry`` implements it
with SQLAlchemy (``SqlWorkRegistry``), and tests may pass any object of the same shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from monitor.fingerprints import WorkFingerprint


@dataclass(frozen=True, kw_only=True)
class NewWork:
    """What registration knows about a work before it has an id."""

    sha256: str
    pixel_sha256: str
    format: str
    width: int
    height: int
    frames: int
    size_bytes: int
    title: str | None = None
    owner: str | None = None
    source_path: str | None = None


@dataclass(frozen=True, kw_only=True)
class Work(NewWork):
    """A registered work. ``seq`` grows with each registration (index checkpoints use it)."""

    id: str
    seq: int
    created_at: datetime


class WorkRegistry(Protocol):
    """Storage of works and their fingerprints (the only state the matcher is built from)."""

    def add(self, work: NewWork, fingerprint: WorkFingerprint) -> tuple[Work, bool]:
        """Store a work; returns ``(work, created)``. The same ``sha256`` twice returns the
        existing work with ``created=False``, also under concurrent registration."""
        ...

    def get(self, work_id: str) -> Work:
        """The work, or :class:`~monitor.errors.WorkNotFound`."""
        ...

    def find_by_sha256(self, sha256: str) -> Work | None: ...

    def find_by_pixel_sha256(self, pixel_sha256: str) -> list[Work]: ...

    def list(self, *, limit: int | None = None, offset: int = 0) -> list[Work]:
        """Works in registration order."""
        ...

    def count(self) -> int: ...

    def max_seq(self) -> int:
        """The highest ``seq`` registered, 0 when empty."""
        ...

    def fingerprints(self, work_ids: Sequence[str]) -> dict[str, WorkFingerprint]: ...

    def iter_fingerprints(
        self, *, after_seq: int = 0, batch: int = 500
    ) -> Iterator[tuple[Work, WorkFingerprint]]:
        """Every work with ``seq > after_seq`` and its fingerprint, in ``seq`` order."""
        ...
