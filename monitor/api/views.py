"""The use cases behind the endpoints and the dashboard pages, scoped to one account.

Each function takes the :class:`~monitor.api.context.ApiContext` and the caller's
:class:`~monitor.accounts.AccountScope` and calls the features' services; an id the account may
not see raises :class:`~monitor.errors.NotFound` (404 for the API, the same page as an unknown id).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.accounts import AccountScope, AccountWork, FindingFilter
from monitor.alerts import SEVERITIES, Alert, severity_for, severity_rank
from monitor.api.context import ApiContext
from monitor.discovery import Source
from monitor.errors import ConfigError, ImageTooLarge, NotFound
from monitor.findings import Finding, Recheck
from monitor.jobs import Job, register_upload, safe_filename, spool_dir

Box = tuple[int, int, int, int]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# ------------------------------------------------------------------ works


def work_detail(ctx: ApiContext, scope: AccountScope, work_id: str) -> dict[str, Any]:
    mine = scope.work(work_id)
    mon = ctx.monitor
    body = mine.to_json()
    body["dossier"] = [e.to_json() for e in mon.dossiers.entries(mine.id)]
    body["copies"] = [
        {"copy_id": c.id, "channel": c.channel, "created_at": c.created_at.isoformat()}
        for c in mon.copies.for_work(mine.id)
    ]
    box = visible_mark(ctx, mine.id)
    body["visible_mark"] = list(box) if box else None
    body["findings"] = len(scope.list_findings(FindingFilter(work_id=mine.id), limit=None))
    return body


def visible_mark(ctx: ApiContext, work_id: str) -> Box | None:
    record = ctx.monitor.dossiers.get_attribution(work_id)
    if record is None or record.mark is None:
        return None
    x, y, w, h = (int(v) for v in record.mark.box)
    return (x, y, w, h)


def parse_box(text: str | None) -> list[int] | None:
    if text is None or not text.strip():
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError("visible_mark: expected four integers x,y,w,h") from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise ConfigError("visible_mark: x and y must be >= 0, w and h > 0")
    return [x, y, w, h]


def upload_options(
    *,
    watermark: bool,
    channels: Sequence[str],
    visible_mark: str | None,
    add_visible_mark: str | None,
    corner: str,
) -> dict[str, Any]:
    """The CLI's registration flags as the JSON kept on a job."""
    from monitor.watermark.copies import is_channel

    bad = [c for c in channels if not is_channel(c)]
    if bad:
        raise ConfigError(f"channel {bad[0]!r}: use 1-64 lowercase letters, digits, '.', '_' or '-'")
    if corner not in ("br", "bl", "tr", "tl"):
        raise ConfigError("corner: use br, bl, tr or tl")
    box = parse_box(visible_mark)
    mark_text = (add_visible_mark or "").strip() or None
    if box is not None and mark_text is not None:
        raise ConfigError(
            "give visible_mark (a mark already there) or add_visible_mark (stamp one), not both"
        )
    return {
        "watermark": bool(watermark or channels),
        "channels": list(channels),
        "visible_mark": box,
        "add_visible_mark": mark_text,
        "corner": corner,
    }


def upload(
    ctx: ApiContext,
    scope: AccountScope,
    files: Sequence[tuple[str, bytes]],
    *,
    title: str | None,
    owner: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """One file: registered now. Several: spooled and registered by a job."""
    mon = ctx.monitor
    limit = mon.settings.intake.max_bytes
    if not files:
        raise ConfigError("no file uploaded")
    if len(files) > mon.settings.api.max_files:
        raise ConfigError(f"at most {mon.settings.api.max_files} files per upload")
    title = (title or "").strip() or None
    owner = (owner or "").strip() or None
    if len(files) == 1:
        name, data = files[0]
        if len(data) > limit:
            raise ImageTooLarge(f"the file is {len(data):,} bytes; the limit is {limit:,}")
        line = register_upload(
            mon, scope.account_id, data, filename=name, title=title, owner=owner, options=options
        )
        scope.forget()
        return {"items": [line], "job": None}
    job_id = secrets.token_hex(8)
    entries = []
    folder = spool_dir(mon.settings, f"upload-{job_id}")
    folder.mkdir(parents=True, exist_ok=True)
    for n, (name, data) in enumerate(files, start=1):
        spooled = f"{n:03d}-{safe_filename(name)}"
        (folder / spooled).write_bytes(data)
        entries.append({"filename": name, "spool": spooled})
    job = mon.accounts.add_job(
        scope.account_id,
        "register",
        {"files": entries, "title": title, "owner": owner, "options": options},
        total=len(entries),
    )
    folder.rename(spool_dir(mon.settings, job.id))
    job = ctx.dispatcher.submit(job)
    return {"items": [], "job": job_json(ctx, scope, job)}


# ------------------------------------------------------------------ jobs and scans


def scan(
    ctx: ApiContext,
    scope: AccountScope,
    urls: Sequence[str],
    *,
    spider: str = "urls",
    depth: int | None = None,
    max_pages: int | None = None,
) -> Job:
    mon = ctx.monitor
    urls = [u.strip() for u in urls if u.strip()]
    if not urls:
        raise ConfigError("give at least one http(s) URL to scan")
    if len(urls) > mon.settings.api.max_scan_urls:
        raise ConfigError(f"at most {mon.settings.api.max_scan_urls} URLs per scan")
    bad = [u for u in urls if not u.lower().startswith(("http://", "https://"))]
    if bad:
        raise ConfigError(f"not an http(s) URL: {bad[0]}")
    params = {"urls": urls, "spider": spider, "depth": depth, "max_pages": max_pages}
    job = mon.accounts.add_job(scope.account_id, "scan", params, total=len(urls))
    return ctx.dispatcher.submit(job)


def job_of(ctx: ApiContext, scope: AccountScope, job_id: str) -> Job:
    job = ctx.monitor.accounts.account_job(scope.account_id, job_id)
    if job is None:
        raise NotFound(f"no job has id {job_id!r}", item=job_id)
    return job


def job_json(ctx: ApiContext, scope: AccountScope, job: Job) -> dict[str, Any]:
    body = job.to_json()
    body["findings"] = []
    crawl_id = (job.result or {}).get("crawl_id") if job.kind == "scan" else None
    if crawl_id and job.started_at is not None:
        found = scope.list_findings(FindingFilter(since=job.started_at), limit=None)
        candidates = ctx.monitor.discovery.candidates([f.candidate_id for f in found])
        body["findings"] = [
            f.id
            for f in found
            if (c := candidates.get(f.candidate_id)) is not None and c.crawl_id == crawl_id
        ]
    return body


# ------------------------------------------------------------------ findings


def _titles(scope: AccountScope, work_ids: Sequence[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for work_id in set(work_ids):
        mine: AccountWork | None = scope.accounts.account_work(scope.account_id, work_id)
        out[work_id] = mine.title if mine is not None else None
    return out


def finding_json(f: Finding, title: str | None) -> dict[str, Any]:
    return {
        "finding_id": f.id,
        "work_id": f.work_id,
        "work_title": title,
        "verdict": f.verdict,
        "severity": severity_for(f.verdict, f.flags),
        "similarity": round(float(f.similarity), 4),
        "flags": list(f.flags),
        "region": [int(v) for v in f.region],
        "image_url": f.image_url,
        "page_url": f.page_url,
        "created_at": f.created_at.isoformat(),
    }


def list_findings(
    scope: AccountScope, filters: FindingFilter, *, sort: str = "severity", limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    found = scope.list_findings(filters, limit=None)
    if sort == "severity":
        # newest first (as listed), then the most severe first: a stable sort keeps the order within
        found = sorted(found, key=lambda f: -severity_rank(severity_for(f.verdict, f.flags)))
    found = found[offset : offset + limit]
    titles = _titles(scope, [f.work_id for f in found])
    return [finding_json(f, titles.get(f.work_id)) for f in found]


def recheck_json(r: Recheck) -> dict[str, Any]:
    return {
        "checked_at": r.checked_at.isoformat(),
        "online": r.online,
        "page_status": r.page_status,
        "image_status": r.image_status,
        "note": r.note,
    }


def finding_detail(ctx: ApiContext, scope: AccountScope, finding_id: str) -> dict[str, Any]:
    from monitor.evidence import flag_reasons

    f = scope.finding(finding_id)
    mon = ctx.monitor
    body = finding_json(f, _titles(scope, [f.work_id]).get(f.work_id))
    candidate = mon.discovery.get_candidate(f.candidate_id)
    body["details"] = f.details
    body["reports"] = f.reports
    body["transform"] = f.transform
    body["flag_reasons"] = flag_reasons(f)
    body["page"] = asdict(candidate.page) if candidate.page is not None else None
    body["fetched_at"] = iso(candidate.fetched_at)
    body["rechecks"] = [recheck_json(r) for r in mon.discovery.rechecks(f.id)]
    body["exports"] = [
        {k: e[k] for k in ("manifest_sha256", "key_sha256", "members", "exported_at")}
        for e in scope.exports(f.id)
    ]
    box = visible_mark(ctx, f.work_id)
    body["mark_box"] = list(box) if box else None
    return body


def export_evidence(ctx: ApiContext, scope: AccountScope, finding_id: str) -> Path:
    """Write the signed evidence bundle of a finding under ``home/exports/<account>``."""
    from monitor.evidence import export_evidence as export

    f = scope.finding(finding_id)
    mon = ctx.monitor
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = mon.settings.home / "exports" / scope.account_id / f"evidence-{f.id}-{stamp}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    export(f.id, out, mon.evidence_sources(), log=mon.alert_store)
    return out


def recheck(ctx: ApiContext, scope: AccountScope, finding_id: str) -> dict[str, Any]:
    f = scope.finding(finding_id)
    outcome = ctx.monitor.recheck(f.id)
    return {
        "online": outcome.recheck.online,
        "recheck": recheck_json(outcome.recheck),
        "history": [recheck_json(r) for r in outcome.history],
    }


def comparison_png(ctx: ApiContext, scope: AccountScope, finding_id: str) -> bytes:
    f = scope.finding(finding_id)
    picture = ctx.monitor.comparison_picture(f)
    if picture is None:
        raise NotFound(f"no comparison for finding {finding_id!r}", item=finding_id)
    return picture


# ------------------------------------------------------------------ alerts and sources


def alert_json(a: Alert) -> dict[str, Any]:
    return {
        "alert_id": a.id,
        "work_id": a.work_id,
        "finding_id": a.finding_id,
        "severity": a.severity,
        "verdict": a.verdict,
        "flags": list(a.flags),
        "summary": a.summary,
        "page_url": a.page_url,
        "image_url": a.image_url,
        "occurrences": a.occurrences,
        "created_at": a.created_at.isoformat(),
        "last_seen_at": a.last_seen_at.isoformat(),
        "acked_at": iso(a.acked_at),
    }


def source_json(s: Source, created: bool | None = None) -> dict[str, Any]:
    body = s.to_json()
    body["created"] = created
    return body


def check_severity(value: str | None) -> str | None:
    if value is not None and value not in SEVERITIES:
        raise ConfigError(f"severity: use one of {', '.join(SEVERITIES)}")
    return value


__all__ = [
    "alert_json",
    "comparison_png",
    "export_evidence",
    "finding_detail",
    "finding_json",
    "job_json",
    "job_of",
    "list_findings",
    "recheck",
    "scan",
    "source_json",
    "upload",
    "upload_options",
    "work_detail",
]
