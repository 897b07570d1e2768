"""``SqlDiscoveryStore``: sources, crawls, candidates, analyses, findings and rechecks in SQL.

Implements :class:`monitor.discovery.DiscoveryStore` (and so
:class:`monitor.findings.FindingStore`). Each call is one short transaction; rows never leave
this module. Every state change that could race is a conditional update or an insert guarded
by a unique key, so concurrent workers and a task delivered twice cannot do a thing twice:

* ``candidates.key`` is unique (page URL, image URL, image SHA-256);
* ``analyses.sha256`` is the primary key; a claim is taken by inserting the row, or by
  ``UPDATE ... WHERE token = <the stale token>`` once the lease has run out;
* ``findings`` are unique on ``(candidate_id, work_id)`` (insert ... on conflict do nothing);
* a candidate leaves ``pending`` by ``UPDATE ... WHERE status = 'pending'``.

Locked or unreachable databases raise :class:`~monitor.errors.RegistryUnavailable` (the
workers retry those); other SQL errors :class:`~monitor.errors.RegistryError`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, Row, Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from monitor.discovery import BUSY, CLAIMED, DONE, AnalysisClaim, CapturedImage, Crawl, NewFinding, Source
from monitor.errors import NotFound, RegistryError
from monitor.findings import ANALYSED, FAILED, PENDING, Candidate, Finding, PageCapture, Recheck
from monitor.registry._store import SqlStore
from monitor.registry.models import (
    AnalysisRow,
    CandidateRow,
    CrawlRow,
    FindingRow,
    RecheckRow,
    SourceRow,
)

__all__ = ["SqlDiscoveryStore"]


def _new_id() -> str:
    return secrets.token_hex(8)


def _now() -> datetime:
    return datetime.now(UTC)


def _page(data: dict[str, Any] | None) -> PageCapture | None:
    if not data:
        return None
    known = {"url", "title", "text", "alt", "caption", "credit"}
    return PageCapture(**{k: v for k, v in data.items() if k in known})


def _candidate_values(captured: CapturedImage, key: str, now: datetime) -> dict[str, Any]:
    """The row of a new candidate (``pending``, or ``error`` when nothing was captured)."""
    failed = captured.error is not None or captured.sha256 is None
    page = captured.page
    return {
        "id": _new_id(),
        "key": key,
        "crawl_id": captured.crawl_id,
        "image_url": captured.image_url,
        "page_url": page.url if page else None,
        "page": asdict(page) if page else None,
        "headers": dict(captured.headers),
        "sha256": captured.sha256,
        "status": FAILED if failed else PENDING,
        "error": (captured.error or "fetch_error: no image bytes were captured") if failed else None,
        "fetched_at": captured.fetched_at,
        "warc_path": captured.warc_path,
        "created_at": now,
        "queued_at": now,
        "analysed_at": now if failed else None,
    }


def _finding_values(new: NewFinding, row: Row[Any], now: datetime) -> dict[str, Any]:
    """The row of a new finding on the candidate ``row``."""
    return {
        "id": _new_id(),
        "candidate_id": row.id,
        "work_id": new.work_id,
        "verdict": new.verdict,
        "similarity": float(new.similarity),
        "flags": list(new.flags),
        "region": [int(v) for v in new.region],
        "transform": new.transform,
        "details": new.details,
        "reports": new.reports,
        "image_url": row.image_url,
        "image_sha256": row.sha256 or "",
        "page_url": row.page_url,
        "created_at": now,
    }


def _candidate(row: CandidateRow | Row[Any]) -> Candidate:
    """A candidate from its ORM row or from a Core row of the ``candidates`` table."""
    return Candidate(
        id=row.id,
        image_url=row.image_url,
        sha256=row.sha256,
        status=row.status,
        error=row.error,
        page=_page(row.page),
        headers=dict(row.headers or {}),
        fetched_at=row.fetched_at,
        warc_path=row.warc_path,
        crawl_id=row.crawl_id,
        created_at=row.created_at,
    )


def _finding(row: FindingRow) -> Finding:
    x, y, w, h = (int(v) for v in row.region)
    return Finding(
        id=row.id,
        candidate_id=row.candidate_id,
        work_id=row.work_id,
        verdict=row.verdict,
        similarity=float(row.similarity),
        flags=list(row.flags or []),
        region=(x, y, w, h),
        details=dict(row.details or {}),
        reports=dict(row.reports or {}),
        image_url=row.image_url,
        image_sha256=row.image_sha256,
        page_url=row.page_url,
        created_at=row.created_at,
        transform=row.transform,
    )


def _source(row: SourceRow) -> Source:
    return Source(
        id=row.id,
        url=row.url,
        spider=row.spider,
        every_seconds=row.every_seconds,
        enabled=row.enabled,
        created_at=row.created_at,
        next_crawl_at=row.next_crawl_at,
        depth=row.depth,
        max_pages=row.max_pages,
        last_crawl_at=row.last_crawl_at,
        last_crawl_id=row.last_crawl_id,
    )


def _crawl(row: CrawlRow) -> Crawl:
    return Crawl(
        id=row.id,
        spider=row.spider,
        start_urls=list(row.start_urls or []),
        status=row.status,
        started_at=row.started_at,
        source_id=row.source_id,
        finished_at=row.finished_at,
        stats=dict(row.stats or {}),
    )


def _recheck(row: RecheckRow) -> Recheck:
    return Recheck(
        id=row.id,
        finding_id=row.finding_id,
        checked_at=row.checked_at,
        page_status=row.page_status,
        image_status=row.image_status,
        online=row.online,
        image_sha256=row.image_sha256,
        warc_path=row.warc_path,
        note=row.note,
    )


class SqlDiscoveryStore(SqlStore):
    """The discovery tables on SQLite or PostgreSQL (migrated to head by ``upgrade_database``)."""

    _label = "discovery"
    _lost_connection_unavailable = True

    # ------------------------------------------------------------------ candidates

    def add_candidate(self, captured: CapturedImage) -> tuple[Candidate, bool]:
        return self.add_candidates([captured])[0]

    def add_candidates(self, batch: Sequence[CapturedImage]) -> list[tuple[Candidate, bool]]:
        """Several candidates in one transaction (one commit: crawls store in batches), with one
        multi-row insert for the new ones and one select for those already stored. One result
        per captured image, in order; a key repeated within ``batch`` is created once (its
        first occurrence) and returned again with ``created=False``."""
        if not batch:
            return []
        now = _now()
        keys = [captured.key for captured in batch]
        values: dict[str, dict[str, Any]] = {}
        for key, captured in zip(keys, batch, strict=True):
            if key not in values:
                values[key] = _candidate_values(captured, key, now)
        table = CandidateRow.__table__
        rows: dict[str, Row[Any]] = {}
        inserted: set[str] = set()
        with self._tx() as session:
            todo = sorted(values)  # one order for every writer: no deadlock between two crawls
            for _ in range(3):
                for row in self._insert_many_ignore(session, table, [values[key] for key in todo]):
                    rows[row.key] = row
                    inserted.add(row.key)
                stored = [key for key in todo if key not in inserted]
                for start in range(0, len(stored), 500):
                    chosen = select(table).where(table.c.key.in_(stored[start : start + 500]))
                    rows.update((row.key, row) for row in session.execute(chosen))
                # Neither inserted nor stored: the row conflicted on its id (drawn twice). Redraw.
                todo = [key for key in todo if key not in rows]
                if not todo:
                    break
                for key in todo:
                    values[key]["id"] = _new_id()
            else:
                raise RegistryError(f"discovery database error (cannot insert the candidate {todo[0]})")
        candidates = {key: _candidate(row) for key, row in rows.items()}
        created: set[str] = set()
        out: list[tuple[Candidate, bool]] = []
        for key in keys:
            new = key in inserted and key not in created
            created.add(key)
            out.append((candidates[key], new))
        return out

    def get_candidate(self, candidate_id: str) -> Candidate:
        with self._tx() as session:
            row = session.get(CandidateRow, candidate_id)
            if row is None:
                raise NotFound(f"no candidate has id {candidate_id!r}", item=candidate_id)
            return _candidate(row)

    def candidates(self, candidate_ids: Sequence[str]) -> dict[str, Candidate]:
        wanted = list(dict.fromkeys(candidate_ids))
        out: dict[str, Candidate] = {}
        with self._tx() as session:
            for start in range(0, len(wanted), 500):
                rows = session.scalars(
                    select(CandidateRow).where(CandidateRow.id.in_(wanted[start : start + 500]))
                )
                out.update((row.id, _candidate(row)) for row in rows)
        return out

    def list_candidates(
        self, *, crawl_id: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[Candidate]:
        """Oldest first."""
        query = select(CandidateRow).order_by(CandidateRow.created_at, CandidateRow.id).limit(limit)
        if crawl_id is not None:
            query = query.where(CandidateRow.crawl_id == crawl_id)
        if status is not None:
            query = query.where(CandidateRow.status == status)
        with self._tx() as session:
            return [_candidate(row) for row in session.scalars(query)]

    def count_candidates(self, *, status: str | None = None) -> int:
        query = select(func.count()).select_from(CandidateRow)
        if status is not None:
            query = query.where(CandidateRow.status == status)
        with self._tx() as session:
            return int(session.scalar(query) or 0)

    def touch_candidate(self, candidate_id: str) -> None:
        with self._tx() as session:
            session.execute(
                update(CandidateRow).where(CandidateRow.id == candidate_id).values(queued_at=_now())
            )

    def requeue_stale(self, older_than: datetime, *, limit: int) -> list[str]:
        now = _now()
        requeued: list[str] = []
        with self._tx() as session:
            rows = session.execute(
                select(CandidateRow.id, CandidateRow.queued_at)
                .where(CandidateRow.status == PENDING, CandidateRow.queued_at < older_than)
                .order_by(CandidateRow.queued_at)
                .limit(limit)
            ).all()
            for candidate_id, queued_at in rows:
                result = session.execute(
                    update(CandidateRow)
                    .where(
                        CandidateRow.id == candidate_id,
                        CandidateRow.status == PENDING,
                        CandidateRow.queued_at == queued_at,
                    )
                    .values(queued_at=now)
                )
                if _changed(result):
                    requeued.append(candidate_id)
        return requeued

    # ------------------------------------------------------------------ analyses

    def claim_analysis(self, sha256: str, *, lease_seconds: float) -> AnalysisClaim:
        now = _now()
        token = _new_id()
        with self._tx() as session:
            fresh = {
                "sha256": sha256,
                "status": "running",
                "token": token,
                "claimed_at": now,
                "claims": 1,
                "matches": None,
                "error": None,
                "finished_at": None,
            }
            if self._insert_ignore(session, AnalysisRow, fresh):
                return AnalysisClaim(state=CLAIMED, token=token)
            row = session.get(AnalysisRow, sha256)
            assert row is not None
            if row.status == DONE:
                return AnalysisClaim(state=DONE, matches=list(row.matches or []))
            if row.status == FAILED:
                return AnalysisClaim(state=FAILED, error=row.error)
            stale = row.claimed_at is None or row.claimed_at < now - timedelta(seconds=lease_seconds)
            if not stale:
                return AnalysisClaim(state=BUSY)
            taken = session.execute(
                update(AnalysisRow)
                .where(AnalysisRow.sha256 == sha256, AnalysisRow.status == "running")
                .where(
                    AnalysisRow.token == row.token if row.token is not None else AnalysisRow.token.is_(None)
                )
                .values(token=token, claimed_at=now, claims=AnalysisRow.claims + 1)
            )
            return AnalysisClaim(state=CLAIMED, token=token) if _changed(taken) else AnalysisClaim(state=BUSY)

    def finish_analysis(
        self, sha256: str, token: str, *, matches: list[dict[str, Any]] | None, error: str | None
    ) -> bool:
        with self._tx() as session:
            result = session.execute(
                update(AnalysisRow)
                .where(
                    AnalysisRow.sha256 == sha256, AnalysisRow.token == token, AnalysisRow.status == "running"
                )
                .values(
                    status=FAILED if error is not None else DONE,
                    matches=None if error is not None else list(matches or []),
                    error=error,
                    finished_at=_now(),
                    token=None,
                )
            )
            return bool(_changed(result))

    def finished_analyses(self, sha256s: Sequence[str]) -> dict[str, AnalysisClaim]:
        """The analyses of these images that are over (``done`` with their matches, or
        ``error`` with the reason), by SHA-256; a finished analysis never changes again, so
        these need no claim. Images not analysed yet, or being analysed, are left out."""
        wanted = list(dict.fromkeys(sha256s))
        out: dict[str, AnalysisClaim] = {}
        with self._tx() as session:
            for start in range(0, len(wanted), 500):
                rows = session.scalars(
                    select(AnalysisRow).where(
                        AnalysisRow.sha256.in_(wanted[start : start + 500]),
                        AnalysisRow.status.in_([DONE, FAILED]),
                    )
                )
                for row in rows:
                    if row.status == DONE:
                        out[row.sha256] = AnalysisClaim(state=DONE, matches=list(row.matches or []))
                    else:
                        out[row.sha256] = AnalysisClaim(state=FAILED, error=row.error)
        return out

    def analysis_stats(self, sha256: str) -> dict[str, Any] | None:
        """``status``, ``claims`` and ``error`` of the analysis of these bytes (tests, diagnostics)."""
        with self._tx() as session:
            row = session.get(AnalysisRow, sha256)
            if row is None:
                return None
            return {"status": row.status, "claims": row.claims, "error": row.error}

    def count_analyses(self) -> int:
        with self._tx() as session:
            return int(session.scalar(select(func.count()).select_from(AnalysisRow)) or 0)

    # ------------------------------------------------------------------ findings

    def complete_candidate(
        self, candidate_id: str, *, findings: Sequence[NewFinding], error: str | None = None
    ) -> tuple[Candidate, list[Finding]]:
        done = self.complete_candidates([(candidate_id, findings, error)])
        if not done:
            raise NotFound(f"no candidate has id {candidate_id!r}", item=candidate_id)
        return done[0]

    def complete_candidates(
        self, batch: Sequence[tuple[str, Sequence[NewFinding], str | None]]
    ) -> list[tuple[Candidate, list[Finding]]]:
        """:meth:`complete_candidate` for several candidates (``(id, findings, error)``) in one
        transaction: one commit for the batch. A candidate no longer ``pending`` is left as it
        is; an id given twice is completed by its first entry; ids without a candidate are
        left out of the result, which follows the order of ``batch``."""
        now = _now()
        ids = list(dict.fromkeys(candidate_id for candidate_id, _, _ in batch))
        with self._tx() as session:
            rows = self._candidate_rows(session, ids)
            completed: dict[str, str | None] = {}
            for candidate_id, findings, error in batch:
                row = rows.get(candidate_id)
                if row is None or row.status != PENDING or candidate_id in completed:
                    continue
                completed[candidate_id] = error
                if error is None:
                    for new in findings:
                        self._insert_ignore(session, FindingRow, _finding_values(new, row, now))
            if completed:
                # One statement run for the whole batch (executemany), still conditional on
                # ``pending`` row by row: built once, not once per candidate.
                table = cast(Table, CandidateRow.__table__)
                session.execute(
                    update(table)
                    .where(table.c.id == bindparam("done_id"), table.c.status == PENDING)
                    .values(status=bindparam("done_status"), error=bindparam("done_error"), analysed_at=now),
                    [
                        {
                            "done_id": candidate_id,
                            "done_status": FAILED if error is not None else ANALYSED,
                            "done_error": error,
                        }
                        for candidate_id, error in completed.items()
                    ],
                )
                rows.update(self._candidate_rows(session, list(completed)))
            found: dict[str, list[Finding]] = {candidate_id: [] for candidate_id in rows}
            for start in range(0, len(ids), 500):
                chosen = (
                    select(FindingRow)
                    .where(FindingRow.candidate_id.in_(ids[start : start + 500]))
                    .order_by(FindingRow.candidate_id, FindingRow.id)
                )
                for finding in session.scalars(chosen):
                    found[finding.candidate_id].append(_finding(finding))
        return [(_candidate(rows[i]), found[i]) for i in ids if i in rows]

    @staticmethod
    def _candidate_rows(session: Session, ids: Sequence[str]) -> dict[str, Row[Any]]:
        table = CandidateRow.__table__
        rows: dict[str, Row[Any]] = {}
        for start in range(0, len(ids), 500):
            chosen = select(table).where(table.c.id.in_(list(ids[start : start + 500])))
            rows.update((row.id, row) for row in session.execute(chosen))
        return rows

    def findings_of(self, candidate_id: str) -> list[Finding]:
        with self._tx() as session:
            rows = session.scalars(
                select(FindingRow).where(FindingRow.candidate_id == candidate_id).order_by(FindingRow.id)
            )
            return [_finding(row) for row in rows]

    def get_finding(self, finding_id: str) -> Finding:
        with self._tx() as session:
            row = session.get(FindingRow, finding_id)
            if row is None:
                raise NotFound(f"no finding has id {finding_id!r}", item=finding_id)
            return _finding(row)

    def list_findings(
        self,
        *,
        since: datetime | None = None,
        work_ids: Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Finding]:
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError("limit and offset cannot be negative")
        query = select(FindingRow).order_by(FindingRow.created_at.desc(), FindingRow.id.desc())
        if since is not None:
            query = query.where(FindingRow.created_at >= since)
        if work_ids is not None:
            query = query.where(FindingRow.work_id.in_(list(work_ids)))
        with self._tx() as session:
            return [_finding(row) for row in session.scalars(query.offset(offset).limit(limit))]

    def count_findings(self) -> int:
        with self._tx() as session:
            return int(session.scalar(select(func.count()).select_from(FindingRow)) or 0)

    # ------------------------------------------------------------------ rechecks

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
    ) -> Recheck:
        values = {
            "id": _new_id(),
            "finding_id": finding_id,
            "checked_at": checked_at or _now(),
            "page_status": page_status,
            "image_status": image_status,
            "online": online,
            "image_sha256": image_sha256,
            "warc_path": warc_path,
            "note": note,
        }
        with self._tx() as session:
            if session.get(FindingRow, finding_id) is None:
                raise NotFound(f"no finding has id {finding_id!r}", item=finding_id)
            session.execute(insert(RecheckRow).values(**values))
            row = session.get(RecheckRow, values["id"])
            assert row is not None
            return _recheck(row)

    def rechecks(self, finding_id: str) -> list[Recheck]:
        with self._tx() as session:
            rows = session.scalars(
                select(RecheckRow)
                .where(RecheckRow.finding_id == finding_id)
                .order_by(RecheckRow.checked_at, RecheckRow.id)
            )
            return [_recheck(row) for row in rows]

    # ------------------------------------------------------------------ sources and crawls

    def add_source(
        self, url: str, spider: str, every_seconds: int, *, depth: int | None, max_pages: int | None
    ) -> tuple[Source, bool]:
        now = _now()
        values = {
            "id": _new_id(),
            "url": url,
            "spider": spider,
            "every_seconds": int(every_seconds),
            "depth": depth,
            "max_pages": max_pages,
            "enabled": True,
            "created_at": now,
            "next_crawl_at": now,
            "last_crawl_at": None,
            "last_crawl_id": None,
        }
        with self._tx() as session:
            created = self._insert_ignore(session, SourceRow, values)
            row = session.scalars(
                select(SourceRow).where(SourceRow.url == url, SourceRow.spider == spider)
            ).one()
            return _source(row), created

    def list_sources(self) -> list[Source]:
        with self._tx() as session:
            return [_source(r) for r in session.scalars(select(SourceRow).order_by(SourceRow.created_at))]

    def get_source(self, source_id: str) -> Source:
        with self._tx() as session:
            row = session.get(SourceRow, source_id)
            if row is None:
                raise NotFound(f"no watched source has id {source_id!r}", item=source_id)
            return _source(row)

    def claim_due_sources(self, now: datetime, *, limit: int) -> list[Source]:
        claimed: list[Source] = []
        with self._tx() as session:
            rows = session.scalars(
                select(SourceRow)
                .where(SourceRow.enabled.is_(True), SourceRow.next_crawl_at <= now)
                .order_by(SourceRow.next_crawl_at)
                .limit(limit)
            ).all()
            for row in rows:
                due = row.next_crawl_at
                result = session.execute(
                    update(SourceRow)
                    .where(SourceRow.id == row.id, SourceRow.next_crawl_at == due)
                    .values(next_crawl_at=now + timedelta(seconds=row.every_seconds))
                )
                if _changed(result):
                    session.refresh(row)
                    claimed.append(_source(row))
        return claimed

    def start_crawl(self, spider: str, start_urls: Sequence[str], *, source_id: str | None) -> Crawl:
        now = _now()
        values: dict[str, Any] = {
            "id": _new_id(),
            "source_id": source_id,
            "spider": spider,
            "start_urls": list(start_urls),
            "status": "running",
            "started_at": now,
            "finished_at": None,
            "stats": {},
        }
        with self._tx() as session:
            session.execute(insert(CrawlRow).values(**values))
            if source_id is not None:
                session.execute(
                    update(SourceRow)
                    .where(SourceRow.id == source_id)
                    .values(last_crawl_at=now, last_crawl_id=values["id"])
                )
        return Crawl(
            id=values["id"],
            spider=spider,
            start_urls=list(start_urls),
            status="running",
            started_at=now,
            source_id=source_id,
        )

    def finish_crawl(self, crawl_id: str, *, status: str, stats: dict[str, Any]) -> None:
        with self._tx() as session:
            session.execute(
                update(CrawlRow)
                .where(CrawlRow.id == crawl_id)
                .values(status=status, finished_at=_now(), stats=stats)
            )

    def get_crawl(self, crawl_id: str) -> Crawl:
        with self._tx() as session:
            row = session.get(CrawlRow, crawl_id)
            if row is None:
                raise NotFound(f"no crawl has id {crawl_id!r}", item=crawl_id)
            return _crawl(row)


def _changed(result: Result[Any]) -> int:
    """Rows an UPDATE changed (``Session.execute`` types its result as a plain ``Result``)."""
    return cast(CursorResult[Any], result).rowcount
