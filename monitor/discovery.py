"""Discovery use cases: store what the crawlers captured, analyse it once, sweep, watch sources.

The crawlers (``crawlers/``, Scrapy) and the workers (``workers/``, Celery) are thin shells
around these functions; the functions know storage only as a :class:`DiscoveryStore`
(implemented in SQL by :class:`monitor.registry.SqlDiscoveryStore`) and blobs as a
:class:`~monitor.blobs.BlobStore`.

Nothing is lost and nothing is done twice:

* :func:`store_candidate` writes the candidate (status ``pending``) and returns; the caller
  queues its analysis only after that commit. Seeing the same page, image URL and bytes again
  returns the stored candidate (``created=False``).
* :func:`analyse_candidate` is idempotent. The analysis is keyed on the image's SHA-256 and
  claimed with a lease: the same bytes on two pages are analysed once and give two findings;
  a worker killed mid-analysis leaves a claim that another worker takes over once the lease
  has run out. Findings are unique per candidate x work and the candidate leaves ``pending``
  by a conditional update, so a task delivered twice changes nothing the second time.
* :func:`sweep_pending` hands back the candidates left ``pending`` too long (a task lost with
  a broker restart, a crawl that could not queue) so they can be queued again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from monitor.blobs import BlobStore
from monitor.errors import AnalysisBusy, ConfigError, MonitorError, describe
from monitor.findings import PENDING, Candidate, Finding, FindingStore, PageCapture, Recheck
from monitor.matching import Match, Matcher
from monitor.services import MatchInspector, PageContext, analyse_bytes
from monitor.settings import Settings
from monitor.works import WorkRegistry

log = logging.getLogger(__name__)

#: Spiders a crawl or a watched source may name.
SPIDERS = ("site", "sitemap", "feed", "urls")
#: Analysis claim states.
CLAIMED, DONE, BUSY = "claimed", "done", "busy"

# ------------------------------------------------------------------ records


@dataclass(frozen=True, kw_only=True)
class CapturedImage:
    """What a crawler hands over for one image seen on one page (the bytes are already in
    the blob store under ``sha256``). ``error`` is set when the image could not be fetched."""

    image_url: str
    page: PageCapture | None = None
    sha256: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    fetched_at: datetime | None = None
    warc_path: str | None = None
    crawl_id: str | None = None
    error: str | None = None

    @property
    def key(self) -> str:
        """Same page, same image URL, same bytes: the same candidate."""
        page_url = self.page.url if self.page is not None else ""
        text = f"{page_url}\n{self.image_url}\n{self.sha256 or 'no-bytes'}"
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, kw_only=True)
class AnalysisClaim:
    """The outcome of asking to analyse some bytes: ``claimed`` (go ahead, with ``token``),
    ``done`` (here are the ``matches``), ``error`` (the bytes are bad: ``error``) or ``busy``."""

    state: str
    token: str | None = None
    matches: list[dict[str, Any]] | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class NewFinding:
    work_id: str
    verdict: str
    similarity: float
    flags: list[str]
    region: tuple[int, int, int, int]
    details: dict[str, Any]
    reports: dict[str, Any]
    transform: list[list[float]] | None = None


@dataclass(frozen=True, kw_only=True)
class Source:
    """A watched source: re-crawled with ``spider`` every ``every_seconds``."""

    id: str
    url: str
    spider: str
    every_seconds: int
    enabled: bool
    created_at: datetime
    next_crawl_at: datetime
    depth: int | None = None
    max_pages: int | None = None
    last_crawl_at: datetime | None = None
    last_crawl_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source_id": self.id,
            "url": self.url,
            "spider": self.spider,
            "every_seconds": self.every_seconds,
            "depth": self.depth,
            "max_pages": self.max_pages,
            "enabled": self.enabled,
            "next_crawl_at": self.next_crawl_at.isoformat(),
            "last_crawl_at": self.last_crawl_at.isoformat() if self.last_crawl_at else None,
            "last_crawl_id": self.last_crawl_id,
        }


@dataclass(frozen=True, kw_only=True)
class Crawl:
    id: str
    spider: str
    start_urls: list[str]
    status: str  # running | finished | failed
    started_at: datetime
    source_id: str | None = None
    finished_at: datetime | None = None
    stats: dict[str, Any] = field(default_factory=dict)


class DiscoveryStore(FindingStore, Protocol):
    """Storage of sources, crawls, candidates, analyses and findings."""

    def add_candidate(self, captured: CapturedImage) -> tuple[Candidate, bool]:
        """Insert a candidate (``pending``, or ``error`` when ``captured.error``); the same
        :attr:`CapturedImage.key` again returns the stored one with ``created=False``."""
        ...

    def add_candidates(self, batch: Sequence[CapturedImage]) -> list[tuple[Candidate, bool]]:
        """:meth:`add_candidate` for several, committed together."""
        ...

    def claim_analysis(self, sha256: str, *, lease_seconds: float) -> AnalysisClaim: ...

    def finished_analyses(self, sha256s: Sequence[str]) -> dict[str, AnalysisClaim]:
        """The analyses of these images that are over (``done`` or ``error``), by SHA-256."""
        ...

    def finish_analysis(
        self, sha256: str, token: str, *, matches: list[dict[str, Any]] | None, error: str | None
    ) -> bool:
        """Record the outcome if ``token`` still holds the claim; ``False`` when it was lost."""
        ...

    def complete_candidate(
        self, candidate_id: str, *, findings: Sequence[NewFinding], error: str | None = None
    ) -> tuple[Candidate, list[Finding]]:
        """Add the findings (once per work) and move the candidate out of ``pending``."""
        ...

    def complete_candidates(
        self, batch: Sequence[tuple[str, Sequence[NewFinding], str | None]]
    ) -> list[tuple[Candidate, list[Finding]]]:
        """:meth:`complete_candidate` for several ``(id, findings, error)``, committed together;
        ids without a candidate are left out."""
        ...

    def candidates(self, candidate_ids: Sequence[str]) -> dict[str, Candidate]:
        """The candidates with these ids, by id (ids without one are left out)."""
        ...

    def findings_of(self, candidate_id: str) -> list[Finding]: ...

    def requeue_stale(self, older_than: datetime, *, limit: int) -> list[str]:
        """Ids of candidates still ``pending`` and queued before ``older_than``, marked queued now."""
        ...

    def touch_candidate(self, candidate_id: str) -> None:
        """Mark a candidate as just queued."""
        ...

    def add_source(
        self, url: str, spider: str, every_seconds: int, *, depth: int | None, max_pages: int | None
    ) -> tuple[Source, bool]: ...

    def list_sources(self) -> list[Source]: ...

    def get_source(self, source_id: str) -> Source: ...

    def claim_due_sources(self, now: datetime, *, limit: int) -> list[Source]:
        """Sources due at ``now``; each returned source's next crawl is moved on (claimed)."""
        ...

    def start_crawl(self, spider: str, start_urls: Sequence[str], *, source_id: str | None) -> Crawl: ...

    def finish_crawl(self, crawl_id: str, *, status: str, stats: dict[str, Any]) -> None: ...

    def get_crawl(self, crawl_id: str) -> Crawl: ...

    def add_recheck(
        self,
        finding_id: str,
        *,
        page_status: int | None,
        image_status: int | None,
        online: bool,
        image_sha256: str | None = None,
        warc_path: str | None = None,
        note: str | None = None,
        checked_at: datetime | None = None,
    ) -> Recheck: ...


# ------------------------------------------------------------------ storing


def store_candidate(store: DiscoveryStore, captured: CapturedImage) -> tuple[Candidate, bool]:
    """Write one captured image as a candidate. Queue its analysis only after this returns."""
    return store.add_candidate(captured)


def store_candidates(store: DiscoveryStore, batch: Sequence[CapturedImage]) -> list[tuple[Candidate, bool]]:
    """:func:`store_candidate` for a batch, in one transaction."""
    return store.add_candidates(batch) if batch else []


# ------------------------------------------------------------------ analysing


@dataclass
class AnalysisOutcome:
    """What :func:`analyse_candidate` did: ``analysed`` says whether this call ran the matcher
    (``False`` when the bytes had been analysed before, or the candidate was already done)."""

    candidate: Candidate
    findings: list[Finding]
    analysed: bool = False

    def to_json(self) -> dict[str, Any]:
        page = self.candidate.page
        return {
            "candidate_id": self.candidate.id,
            "image_url": self.candidate.image_url,
            "page_url": page.url if page else None,
            "sha256": self.candidate.sha256,
            "status": self.candidate.status,
            "error": self.candidate.error,
            "findings": [f.to_json() for f in self.findings],
        }


def match_to_json(match: Match) -> dict[str, Any]:
    """A match as stored with its analysis: its JSON plus the transform and the reports."""
    body = match.to_json()
    body["transform"] = np.asarray(match.transform, dtype=float).round(6).tolist()
    body["reports"] = sorted(match.reports)
    return body


_FIXED_MATCH_KEYS = frozenset({"work_id", "verdict", "similarity", "flags", "region", "details", "transform"})


def finding_from_json(body: dict[str, Any]) -> NewFinding:
    report_keys = body.get("reports")
    if not isinstance(report_keys, list):
        report_keys = [k for k in body if k not in _FIXED_MATCH_KEYS and k != "reports"]
    x, y, w, h = (int(v) for v in body["region"])
    return NewFinding(
        work_id=str(body["work_id"]),
        verdict=str(body["verdict"]),
        similarity=float(body["similarity"]),
        flags=[str(f) for f in body.get("flags", [])],
        region=(x, y, w, h),
        details=dict(body.get("details") or {}),
        reports={k: body[k] for k in report_keys if k in body},
        transform=body.get("transform"),
    )


def page_context(page: PageCapture | None, image_url: str) -> PageContext:
    if page is None:
        return PageContext(url=image_url)
    text = page.text
    if page.credit and (not text or page.credit not in text):
        text = f"{text}\n{page.credit}" if text else page.credit
    return PageContext(url=page.url, title=page.title, text=text, alt=page.alt, caption=page.caption)


@dataclass(frozen=True, kw_only=True)
class AnalysisServices:
    """What analysing candidates takes besides their ids: where they are stored, their image
    bytes, the matcher (a callable, so it is built or refreshed only when an image needs it),
    the registered works, the settings and the match inspectors."""

    store: DiscoveryStore
    blobs: BlobStore
    matcher: Callable[[], Matcher]
    registry: WorkRegistry
    settings: Settings
    inspectors: Sequence[MatchInspector] = ()


def analyse_candidate(candidate_id: str, services: AnalysisServices) -> AnalysisOutcome:
    """Analyse one stored candidate, at most once per image bytes; safe to call again.

    Raises :class:`AnalysisBusy` when another worker holds a live claim on the same bytes
    (retry later) and :class:`~monitor.errors.RegistryUnavailable` on transient database
    faults. A bad image is not an exception: the candidate gets status ``error`` and the reason.
    """
    store = services.store
    candidate = store.get_candidate(candidate_id)
    if candidate.status != PENDING:
        return AnalysisOutcome(candidate, store.findings_of(candidate_id))
    if candidate.sha256 is None:
        done, findings = store.complete_candidate(
            candidate_id, findings=(), error=candidate.error or "fetch_error: no image bytes were captured"
        )
        return AnalysisOutcome(done, findings)

    lease = services.settings.discovery.analysis_lease
    claim = store.claim_analysis(candidate.sha256, lease_seconds=lease)
    ran = False
    if claim.state == BUSY:
        raise AnalysisBusy(f"the image {candidate.sha256[:12]} is being analysed by another worker")
    if claim.state == CLAIMED:
        assert claim.token is not None
        matches, error = _run_analysis(candidate, services)
        ran = True
        if not store.finish_analysis(candidate.sha256, claim.token, matches=matches, error=error):
            # Our lease ran out and another worker took over: its result is the one kept.
            log.warning(
                "analysis of %s: the claim was taken over; keeping the other result", candidate.sha256
            )
            raise AnalysisBusy(f"the analysis of {candidate.sha256[:12]} was taken over by another worker")
    else:
        matches, error = claim.matches, claim.error
    if error is not None:
        done, findings = store.complete_candidate(candidate_id, findings=(), error=error)
    else:
        new = [finding_from_json(m) for m in matches or []]
        done, findings = store.complete_candidate(candidate_id, findings=new)
    return AnalysisOutcome(done, findings, analysed=ran)


@dataclass
class BatchAnalysis:
    """What :func:`analyse_candidates` did: an outcome per candidate done, the ids with no
    candidate, and the ids to try again later (another worker is analysing their bytes)."""

    outcomes: dict[str, AnalysisOutcome] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)


def analyse_candidates(candidate_ids: Sequence[str], services: AnalysisServices) -> BatchAnalysis:
    """:func:`analyse_candidate` for several stored candidates at once; safe to call again.

    The candidates are read in one query and the finished analyses of their images in
    another; the analysis of each image not analysed yet is claimed and run once for the
    batch, under the same lease as one at a time; every candidate whose analysis is known is
    then completed in one transaction. So a batch of images seen before costs three
    transactions, not three per candidate. Candidates whose bytes another worker is
    analysing come back in :attr:`BatchAnalysis.busy` (retry those later); a transient
    database fault raises :class:`~monitor.errors.RegistryUnavailable` (retry the batch:
    nothing already done is done again).
    """
    store = services.store
    wanted = list(dict.fromkeys(candidate_ids))
    found = store.candidates(wanted)
    batch = BatchAnalysis(missing=[i for i in wanted if i not in found])
    completions: list[tuple[str, Sequence[NewFinding], str | None]] = []
    by_image: dict[str, list[Candidate]] = {}
    for candidate_id in wanted:
        candidate = found.get(candidate_id)
        if candidate is None:
            continue
        if candidate.status != PENDING:
            batch.outcomes[candidate_id] = AnalysisOutcome(candidate, store.findings_of(candidate_id))
        elif candidate.sha256 is None:
            reason = candidate.error or "fetch_error: no image bytes were captured"
            completions.append((candidate_id, (), reason))
        else:
            by_image.setdefault(candidate.sha256, []).append(candidate)
    ran: set[str] = set()
    matches: list[dict[str, Any]] | None
    error: str | None
    lease = services.settings.discovery.analysis_lease
    finished = store.finished_analyses(list(by_image)) if by_image else {}
    for sha256, group in by_image.items():
        claim = finished.get(sha256) or store.claim_analysis(sha256, lease_seconds=lease)
        if claim.state == BUSY:
            batch.busy.extend(c.id for c in group)
            continue
        if claim.state == CLAIMED:
            assert claim.token is not None
            matches, error = _run_analysis(group[0], services)
            if not store.finish_analysis(sha256, claim.token, matches=matches, error=error):
                log.warning("analysis of %s: the claim was taken over; keeping the other result", sha256)
                batch.busy.extend(c.id for c in group)
                continue
            ran.add(group[0].id)
        else:
            matches, error = claim.matches, claim.error
        new: list[NewFinding] = [] if error is not None else [finding_from_json(m) for m in matches or []]
        completions.extend((c.id, new, error) for c in group)
    for candidate, findings in store.complete_candidates(completions) if completions else []:
        batch.outcomes[candidate.id] = AnalysisOutcome(candidate, findings, analysed=candidate.id in ran)
    return batch


def _run_analysis(
    candidate: Candidate, services: AnalysisServices
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """``(matches, None)`` or ``(None, reason)`` for bytes that cannot be analysed."""
    assert candidate.sha256 is not None
    settings = services.settings
    delay = settings.discovery.test_analysis_delay
    if delay:
        time.sleep(delay)
    try:
        data = services.blobs.get(candidate.sha256)
    except MonitorError as exc:
        return None, describe(exc)
    result = analyse_bytes(
        data,
        source=candidate.image_url,
        page=page_context(candidate.page, candidate.image_url),
        matcher=services.matcher(),
        registry=services.registry,
        settings=settings,
        inspectors=services.inspectors,
    )
    if result.status != "ok":
        return None, result.error or "error: the analysis failed"
    return [match_to_json(m) for m in result.matches], None


# ------------------------------------------------------------------ sweep and sources


def sweep_pending(store: DiscoveryStore, settings: Settings, *, limit: int = 1000) -> list[str]:
    """Candidates left ``pending`` longer than ``discovery.sweep_after``: queue them again."""
    older_than = datetime.now(UTC) - timedelta(seconds=settings.discovery.sweep_after)
    return store.requeue_stale(older_than, limit=limit)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_every(text: str) -> int:
    """``"6h"`` -> 21600 seconds; units s, m, h, d, w (bare numbers are seconds); at least 60 s."""
    found = _DURATION.match(text)
    if found is None:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 30m, 6h, 1d)")
    seconds = int(float(found.group(1)) * _UNIT[found.group(2).lower()])
    if seconds < 60:
        raise ConfigError(f"a watched source is crawled at most every minute, not every {text!r}")
    return seconds


def watch_source(
    store: DiscoveryStore,
    url: str,
    *,
    spider: str = "site",
    every: str = "6h",
    depth: int | None = None,
    max_pages: int | None = None,
) -> tuple[Source, bool]:
    """Add a watched source (due at once); the same URL and spider again returns the stored one."""
    if spider not in SPIDERS:
        raise ConfigError(f"unknown spider {spider!r}: use one of {', '.join(SPIDERS)}")
    if not url.lower().startswith(("http://", "https://")):
        raise ConfigError(f"a watched source is an http(s) URL, not {url!r}")
    return store.add_source(url, spider, parse_every(every), depth=depth, max_pages=max_pages)


def due_sources(store: DiscoveryStore, *, limit: int = 100) -> list[Source]:
    """Claim the sources due now (their next crawl moves on by their period)."""
    return store.claim_due_sources(datetime.now(UTC), limit=limit)
