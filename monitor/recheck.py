"""Takedown tracking: visit a finding's page and image again and record what is still there.

:func:`recheck_finding` fetches the page (when the finding has one) and the image with the
usual fetcher (same address policy and limits as scans), decides whether the copy is still
online, writes a new capture (a WARC of the responses plus a metadata record summing up the
visit, and the image bytes in the blob store) and appends a :class:`~monitor.findings.Recheck`
to the finding's history.

The copy counts as **removed** when the image URL answers 404/410 (or any other error
status), cannot be reached, or serves other bytes that are no longer a copy of the work
(``still_matches`` decides; without it, changed bytes are reported as online with a note, since
a takedown must not be announced on a guess). While the image URL still serves the copy it
counts as **online**, even if the page no longer shows it (the note says so).

:func:`findings_due` picks the findings a periodic job should recheck.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from monitor.blobs import BlobStore
from monitor.errors import EvidenceError, FetchError, HttpStatusError, describe
from monitor.findings import Finding, FindingStore, Recheck

if TYPE_CHECKING:
    from monitor.fetching import FetchedResource
    from monitor.services import Fetcher

__all__ = ["RecheckLog", "RecheckOutcome", "findings_due", "recheck_finding"]

#: Headers that describe the transfer, not the body httpx hands over (already decoded).
_TRANSFER_HEADERS = frozenset({"content-encoding", "transfer-encoding", "content-length"})


class RecheckLog(Protocol):
    """Where rechecks are appended (the discovery store implements it)."""

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


@dataclass
class _Visit:
    url: str
    status: int | None = None
    resource: FetchedResource | None = None
    error: str | None = None


@dataclass
class RecheckOutcome:
    finding: Finding
    recheck: Recheck
    history: list[Recheck] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "finding_id": self.finding.id,
            "page_url": self.finding.page_url,
            "image_url": self.finding.image_url,
            "status": "online" if self.recheck.online else "removed",
            "recheck": _recheck_json(self.recheck),
            "history": [_recheck_json(r) for r in self.history],
        }


def _recheck_json(r: Recheck) -> dict[str, Any]:
    return {
        "recheck_id": r.id,
        "checked_at": r.checked_at.isoformat(),
        "online": r.online,
        "page_status": r.page_status,
        "image_status": r.image_status,
        "image_sha256": r.image_sha256,
        "warc_path": r.warc_path,
        "note": r.note,
    }


def _visit(fetcher: Fetcher, url: str) -> _Visit:
    try:
        resource = fetcher.fetch(url)
    except HttpStatusError as exc:
        return _Visit(url, status=exc.status, error=describe(exc))
    except FetchError as exc:
        return _Visit(url, error=describe(exc))
    return _Visit(url, status=resource.status, resource=resource)


def _page_shows(page: FetchedResource, image_url: str) -> bool | None:
    """Whether the HTML page still references the image; None when it is not HTML."""
    from monitor.fetching import decode_html, is_html
    from monitor.pages import extract_images

    if not is_html(page):
        return None
    return any(img.url == image_url for img in extract_images(decode_html(page), page.url))


def recheck_finding(
    finding_id: str,
    *,
    findings: FindingStore,
    log: RecheckLog,
    fetcher: Fetcher,
    blobs: BlobStore,
    home: Path,
    still_matches: Callable[[Finding, bytes], bool] | None = None,
    now: datetime | None = None,
) -> RecheckOutcome:
    """Visit the finding's page and image again; record and return the result with the history."""
    finding = findings.get_finding(finding_id)
    checked_at = now or datetime.now(UTC)
    notes: list[str] = []
    page: _Visit | None = None
    if finding.page_url and finding.page_url != finding.image_url:
        page = _visit(fetcher, finding.page_url)
        if page.resource is not None:
            shows = _page_shows(page.resource, finding.image_url)
            if shows is False:
                notes.append("the page no longer shows the image")
            elif shows is None:
                notes.append(f"the page now serves {page.resource.content_type or 'an untyped body'}")
        elif page.error:
            notes.append(f"page: {page.error}")
    image = _visit(fetcher, finding.image_url)
    image_sha: str | None = None
    online = False
    if image.resource is not None:
        body = image.resource.body
        image_sha = hashlib.sha256(body).hexdigest()
        blobs.put(body)
        if image_sha == finding.image_sha256:
            online = True
            notes.append("the image URL serves the same bytes")
        elif still_matches is not None:
            online = bool(still_matches(finding, body))
            notes.append(
                "the image URL serves other bytes that still show the work"
                if online
                else "the image URL serves other bytes that no longer show the work"
            )
        else:
            online = True
            notes.append("the image URL serves other bytes (not re-analysed)")
    else:
        notes.append(f"image: {image.error or 'no answer'}")
    warc = _write_capture(
        home, finding, checked_at, [v for v in (page, image) if v is not None], online, notes
    )
    recheck = log.add_recheck(
        finding.id,
        page_status=page.status if page else None,
        image_status=image.status,
        online=online,
        image_sha256=image_sha,
        warc_path=warc,
        note="; ".join(notes) or None,
        checked_at=checked_at,
    )
    return RecheckOutcome(finding, recheck, findings.rechecks(finding.id))


def _write_capture(
    home: Path,
    finding: Finding,
    checked_at: datetime,
    visits: Sequence[_Visit],
    online: bool,
    notes: Sequence[str],
) -> str:
    """A gzipped WARC under ``home/warc/rechecks/<finding>/``: a response record per answer
    received and a metadata record summing up the visit. Returns its path relative to home."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    stamp = checked_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    relative = Path("warc") / "rechecks" / finding.id / f"{stamp}-{secrets.token_hex(3)}.warc.gz"
    path = home / relative
    summary = {
        "finding_id": finding.id,
        "checked_at": checked_at.isoformat(),
        "online": online,
        "notes": list(notes),
        "visits": [{"url": v.url, "status": v.status, "error": v.error} for v in visits],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            writer = WARCWriter(fh, gzip=True)
            date = checked_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            for visit in visits:
                res = visit.resource
                if res is None:
                    continue
                headers = [(k, v) for k, v in res.headers.items() if k.lower() not in _TRANSFER_HEADERS]
                headers.append(("content-length", str(len(res.body))))
                http = StatusAndHeaders(f"{res.status} OK", headers, protocol="HTTP/1.1")
                record = writer.create_warc_record(
                    res.url,
                    "response",
                    payload=io.BytesIO(res.body),
                    http_headers=http,
                    warc_headers_dict={"WARC-Date": res.fetched_at.strftime("%Y-%m-%dT%H:%M:%SZ")},
                )
                writer.write_record(record)
            meta = json.dumps(summary, sort_keys=True).encode()
            record = writer.create_warc_record(
                finding.page_url or finding.image_url,
                "metadata",
                payload=io.BytesIO(meta),
                warc_content_type="application/json",
                warc_headers_dict={"WARC-Date": date},
            )
            writer.write_record(record)
    except OSError as exc:
        raise EvidenceError(f"cannot write the recheck capture {path}: {exc.strerror or exc}") from exc
    return relative.as_posix()


def findings_due(
    findings: FindingStore,
    *,
    every: timedelta,
    now: datetime | None = None,
    limit: int = 100,
    scan: int = 5000,
) -> list[str]:
    """Ids of findings to recheck: never rechecked, or last seen online more than ``every`` ago.
    Findings last seen removed are not visited again."""
    now = now or datetime.now(UTC)
    due: list[str] = []
    for finding in findings.list_findings(limit=scan):
        history = findings.rechecks(finding.id)
        last = history[-1] if history else None
        if last is None or (last.online and now - last.checked_at >= every):
            due.append(finding.id)
            if len(due) >= limit:
                break
    return due
