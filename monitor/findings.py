"""Candidates seen on the web and the findings made from them: the records discovery writes
and alerts, evidence export and the service read.

Plain dataclasses and a storage port, like :mod:`monitor.works`: ``monitor.registry``
implements :class:`FindingStore` in SQL; the core never imports SQLAlchemy.

* A :class:`Candidate` is one image seen on one page (or one image URL), captured as fetched:
  exact bytes (by SHA-256 in the blob store), HTTP headers, fetch time, page context and the
  WARC file holding the page and image responses. It is written before any analysis is queued.
* A :class:`Finding` is one registered work found in one candidate (unique per candidate ×
  work). The same bytes on two pages make two candidates and two findings, but one analysis.
* A :class:`Recheck` is a later visit to a finding's page and image (takedown tracking).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

#: Candidate states. ``pending`` until analysed; ``error`` carries a recorded reason.
PENDING = "pending"
ANALYSED = "analysed"
FAILED = "error"


@dataclass(frozen=True, kw_only=True)
class PageCapture:
    """Where a candidate image was seen, as captured at fetch time."""

    url: str
    title: str | None = None
    text: str | None = None  # the text around the image (the poem), bounded
    alt: str | None = None
    caption: str | None = None
    credit: str | None = None  # a credit line near the image, if any


@dataclass(frozen=True, kw_only=True)
class Candidate:
    id: str
    image_url: str
    sha256: str | None  # None when the fetch failed before any bytes arrived
    status: str  # PENDING | ANALYSED | FAILED
    error: str | None = None
    page: PageCapture | None = None
    headers: dict[str, str] = field(default_factory=dict)  # HTTP response headers of the image
    fetched_at: datetime | None = None
    warc_path: str | None = None  # relative to MONITOR_HOME
    crawl_id: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Finding:
    """A registered work found in a candidate: the match as the scan reported it."""

    id: str
    candidate_id: str
    work_id: str
    verdict: str
    similarity: float
    flags: list[str]
    region: tuple[int, int, int, int]
    details: dict[str, Any]
    reports: dict[str, Any]  # e.g. {"watermark": {...}}: the match's extra JSON keys
    image_url: str
    image_sha256: str
    page_url: str | None
    created_at: datetime
    transform: list[list[float]] | None = None  # 2x3, work pixels -> candidate pixels

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "finding_id": self.id,
            "candidate_id": self.candidate_id,
            "work_id": self.work_id,
            "verdict": self.verdict,
            "similarity": round(float(self.similarity), 4),
            "flags": list(self.flags),
            "region": [int(v) for v in self.region],
            "details": self.details,
            "image_url": self.image_url,
            "image_sha256": self.image_sha256,
            "page_url": self.page_url,
            "created_at": self.created_at.isoformat(),
        }
        for key, value in self.reports.items():
            body.setdefault(key, value)
        return body


@dataclass(frozen=True, kw_only=True)
class Recheck:
    """A later visit: is the infringing page/image still online?"""

    id: str
    finding_id: str
    checked_at: datetime
    page_status: int | None  # HTTP status, None when unreachable
    image_status: int | None
    online: bool
    image_sha256: str | None = None
    warc_path: str | None = None
    note: str | None = None


class FindingStore(Protocol):
    """Reads of candidates and findings (discovery implements the writes)."""

    def get_candidate(self, candidate_id: str) -> Candidate:
        """The candidate, or :class:`~monitor.errors.NotFound`."""
        ...

    def get_finding(self, finding_id: str) -> Finding:
        """The finding, or :class:`~monitor.errors.NotFound`."""
        ...

    def list_findings(
        self,
        *,
        since: datetime | None = None,
        work_ids: Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Finding]:
        """Newest first."""
        ...

    def rechecks(self, finding_id: str) -> list[Recheck]:
        """Oldest first."""
        ...
