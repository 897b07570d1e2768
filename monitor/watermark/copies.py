"""Published copies: one marked copy per work and channel, and the port that stores them."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

_CHANNEL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def is_channel(name: str) -> bool:
    """Channel names: 1-64 characters, lowercase letters, digits, ``.``, ``_`` and ``-``."""
    return bool(_CHANNEL.match(name))


def new_copy_id() -> str:
    """A fresh random 64-bit copy id (16 hex digits): the mark's payload."""
    return secrets.token_hex(8)


@dataclass(frozen=True, kw_only=True)
class NewCopy:
    """What is known about a marked copy when it is made."""

    id: str  # the payload carried by the mark
    work_id: str
    channel: str
    base_sha256: str  # the unmarked picture the mark was added to (kept in the blob store)
    marked_sha256: str  # the marked file's bytes (kept in the blob store)
    path: str | None  # where the marked file was written
    key_id: str  # which key marked it (public name)
    strength: float  # share of the full mark strength the quality limits allowed


@dataclass(frozen=True, kw_only=True)
class PublishedCopy(NewCopy):
    created_at: datetime


class CopyRegistry(Protocol):
    """Storage of published copies (SQL in ``monitor.registry.SqlCopyRegistry``)."""

    def add(self, copy: NewCopy) -> tuple[PublishedCopy, bool]:
        """Store a copy; when the work already has a copy for this channel, return that one
        with ``created=False`` (also under concurrent registration)."""
        ...

    def update(
        self, copy_id: str, *, base_sha256: str, marked_sha256: str, path: str | None, strength: float
    ) -> PublishedCopy:
        """Record a new rendering of an existing copy (same id, same channel)."""
        ...

    def get(self, copy_id: str) -> PublishedCopy:
        """The copy, or :class:`~monitor.errors.NotFound`."""
        ...

    def find(self, work_id: str, channel: str) -> PublishedCopy | None: ...

    def for_work(self, work_id: str) -> list[PublishedCopy]:
        """The work's copies, oldest first."""
        ...

    def ids(self, key_id: str) -> list[str]:
        """The ids of every copy marked with the key named ``key_id`` (blind reading's codebook)."""
        ...
