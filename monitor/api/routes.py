"""The JSON API under ``/api``: every route takes the caller's account from the API key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse

from monitor.accounts import FindingFilter
from monitor.api import views
from monitor.api.context import Context, Scope
from monitor.api.pictures import thumbnail
from monitor.api.schemas import (
    AccountOut,
    AlertList,
    AlertOut,
    ErrorResponse,
    FindingDetail,
    FindingList,
    JobList,
    JobOut,
    RecheckResult,
    ScanIn,
    Severity,
    SourceIn,
    SourceList,
    SourceOut,
    SourcePatch,
    UploadOut,
    WorkDetail,
    WorkList,
)
from monitor.errors import ImageTooLarge

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "Not found."}}
BAD: dict[int | str, dict[str, Any]] = {400: {"model": ErrorResponse, "description": "Bad request."}}
IMAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "A re-encoded picture."}
}

router = APIRouter(
    prefix="/api",
    responses={401: {"model": ErrorResponse, "description": "No valid API key."}},
)

Id = Annotated[str, PathParam(min_length=1, max_length=64)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
Side = Annotated[int, Query(ge=32, le=2048, description="Longest side in pixels.")]


async def _read_limited(upload: UploadFile, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise ImageTooLarge(f"{upload.filename or 'the file'} is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# ------------------------------------------------------------------ account


@router.get("/account", response_model=AccountOut, tags=["account"])
def account(ctx: Context, scope: Scope) -> dict[str, Any]:
    """The caller's account and its keys (ids only: keys are shown once, at creation)."""
    body = scope.account.to_json()
    body["keys"] = ctx.monitor.accounts.keys(scope.account_id)
    return body


# ------------------------------------------------------------------ works


@router.post(
    "/works",
    response_model=UploadOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        **BAD,
        202: {"model": UploadOut, "description": "Several files: a job registers them."},
        413: {"model": ErrorResponse, "description": "Over the size limit."},
        422: {"model": ErrorResponse, "description": "Not an image that can be registered."},
    },
    tags=["works"],
)
async def upload_works(
    ctx: Context,
    scope: Scope,
    response: Response,
    files: Annotated[list[UploadFile], File(description="One or more images.")],
    title: Annotated[str | None, Form(max_length=500)] = None,
    owner: Annotated[str | None, Form(max_length=500)] = None,
    watermark: Annotated[bool, Form(description="Make an invisibly watermarked copy.")] = False,
    channel: Annotated[list[str] | None, Form(description="Channels, one marked copy each.")] = None,
    visible_mark: Annotated[str | None, Form(description="Box x,y,w,h of a visible mark.")] = None,
    add_visible_mark: Annotated[str | None, Form(max_length=200, description="Stamp this text.")] = None,
    corner: Annotated[str, Form(pattern="^(br|bl|tr|tl)$")] = "br",
) -> Any:
    """Register images (multipart). One file is registered at once; several return a job."""
    from starlette.concurrency import run_in_threadpool

    options = views.upload_options(
        watermark=watermark,
        channels=[c for c in channel or [] if c],
        visible_mark=visible_mark,
        add_visible_mark=add_visible_mark,
        corner=corner,
    )
    limit = ctx.monitor.settings.intake.max_bytes
    items = [(f.filename or "upload", await _read_limited(f, limit)) for f in files]
    body = await run_in_threadpool(views.upload, ctx, scope, items, title=title, owner=owner, options=options)
    single = body["items"][0] if body["job"] is None else None
    if single is not None and single["work_id"] is None:
        code, _, message = (single["error"] or "image_error: cannot register").partition(": ")
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=422)
    if body["job"] is not None:
        response.status_code = status.HTTP_202_ACCEPTED
    elif not any(line["created"] for line in body["items"]):
        response.status_code = status.HTTP_200_OK
    return body


@router.get("/works", response_model=WorkList, tags=["works"])
def list_works(
    scope: Scope,
    q: Annotated[str | None, Query(max_length=200, description="Title, owner, file name or id.")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The account's works, newest first."""
    items = scope.works(query=q, limit=limit, offset=offset)
    return {"items": [w.to_json() for w in items], "total": scope.count_works(query=q)}


@router.get("/works/{work_id}", response_model=WorkDetail, responses=NOT_FOUND, tags=["works"])
def get_work(ctx: Context, scope: Scope, work_id: Id) -> dict[str, Any]:
    """A work with its dossier, marked copies and visible mark."""
    return views.work_detail(ctx, scope, work_id)


@router.get(
    "/works/{work_id}/image", response_class=Response, responses={**NOT_FOUND, **IMAGE}, tags=["works"]
)
def work_image(ctx: Context, scope: Scope, work_id: Id, size: Side = 512) -> Response:
    """The work, re-encoded, at most ``size`` pixels on its longest side."""
    mine = scope.work(work_id)
    pic = thumbnail(ctx.monitor.blobs.get(mine.work.sha256), ctx.monitor.settings, side=size)
    return Response(pic.data, media_type=pic.media_type, headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/works/{work_id}/copies/{copy_id}",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"application/octet-stream": {}}}},
    tags=["works"],
)
def work_copy(ctx: Context, scope: Scope, work_id: Id, copy_id: Id) -> Response:
    """Download a watermarked publication copy of the work."""
    from monitor.errors import NotFound

    mine = scope.work(work_id)
    copies = {c.id: c for c in ctx.monitor.copies.for_work(mine.id)}
    if copy_id not in copies:
        raise NotFound(f"no copy has id {copy_id!r}", item=copy_id)
    copy = copies[copy_id]
    data = ctx.monitor.blobs.get(copy.marked_sha256)
    name = f"{mine.work.id}-{copy.channel}{_suffix(data)}"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _suffix(data: bytes) -> str:
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".bin"


# ------------------------------------------------------------------ scans and jobs


@router.post(
    "/scans",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=BAD,
    tags=["scans"],
)
def submit_scan(ctx: Context, scope: Scope, body: ScanIn) -> dict[str, Any]:
    """Fetch these pages or images now and look for the account's works (a job)."""
    job = views.scan(
        ctx,
        scope,
        [str(u) for u in body.urls],
        spider=body.spider,
        depth=body.depth,
        max_pages=body.max_pages,
    )
    return views.job_json(ctx, scope, job)


@router.get("/jobs", response_model=JobList, tags=["scans"])
def list_jobs(ctx: Context, scope: Scope, limit: Limit = 50) -> dict[str, Any]:
    jobs = ctx.monitor.accounts.list_jobs(scope.account_id, limit=limit)
    return {"items": [views.job_json(ctx, scope, j) for j in jobs]}


@router.get("/jobs/{job_id}", response_model=JobOut, responses=NOT_FOUND, tags=["scans"])
def get_job(ctx: Context, scope: Scope, job_id: Id) -> dict[str, Any]:
    """A job's state; a finished scan lists the account's findings it made."""
    return views.job_json(ctx, scope, views.job_of(ctx, scope, job_id))


# ------------------------------------------------------------------ watched sources


@router.post(
    "/sources",
    response_model=SourceOut,
    status_code=status.HTTP_201_CREATED,
    responses=BAD,
    tags=["sources"],
)
def add_source(scope: Scope, body: SourceIn, response: Response) -> dict[str, Any]:
    """Watch a page, sitemap or feed: crawled now and then every ``every``."""
    source, created = scope.watch(
        str(body.url), spider=body.spider, every=body.every, depth=body.depth, max_pages=body.max_pages
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return views.source_json(source, created)


@router.get("/sources", response_model=SourceList, tags=["sources"])
def list_sources(scope: Scope) -> dict[str, Any]:
    return {"items": [views.source_json(s) for s in scope.sources()]}


@router.get("/sources/{source_id}", response_model=SourceOut, responses=NOT_FOUND, tags=["sources"])
def get_source(scope: Scope, source_id: Id) -> dict[str, Any]:
    return views.source_json(scope.source(source_id))


@router.patch(
    "/sources/{source_id}", response_model=SourceOut, responses={**NOT_FOUND, **BAD}, tags=["sources"]
)
def update_source(scope: Scope, source_id: Id, body: SourcePatch) -> dict[str, Any]:
    """Change the period or limits, or pause (``enabled: false``) a watched source."""
    source = scope.update_source(
        source_id, every=body.every, depth=body.depth, max_pages=body.max_pages, enabled=body.enabled
    )
    return views.source_json(source)


@router.delete(
    "/sources/{source_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND, tags=["sources"]
)
def delete_source(scope: Scope, source_id: Id) -> Response:
    """Stop watching a source (its crawls and findings are kept)."""
    scope.unwatch(source_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ------------------------------------------------------------------ findings


@router.get("/findings", response_model=FindingList, responses=BAD, tags=["findings"])
def list_findings(
    scope: Scope,
    verdict: Annotated[str | None, Query(max_length=40, description="exact, near_duplicate, partial")] = None,
    flag: Annotated[str | None, Query(max_length=40, description="e.g. cropped, metadata_stripped")] = None,
    severity: Severity | None = None,
    since: Annotated[datetime | None, Query(description="Found at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Found at or before (ISO 8601).")] = None,
    site: Annotated[str | None, Query(max_length=255, description="Host name (and its subdomains).")] = None,
    work_id: Annotated[str | None, Query(max_length=64)] = None,
    sort: Annotated[str, Query(pattern="^(severity|newest)$")] = "severity",
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The account's findings: most severe first (or newest), filtered."""
    filters = FindingFilter(
        verdict=verdict,
        flag=flag,
        severity=severity,
        since=_utc(since),
        until=_utc(until),
        site=site,
        work_id=work_id,
    )
    return {"items": views.list_findings(scope, filters, sort=sort, limit=limit, offset=offset)}


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@router.get("/findings/{finding_id}", response_model=FindingDetail, responses=NOT_FOUND, tags=["findings"])
def get_finding(ctx: Context, scope: Scope, finding_id: Id) -> dict[str, Any]:
    """A finding: the match, its flags in plain words, the page it was seen on, rechecks, exports."""
    return views.finding_detail(ctx, scope, finding_id)


@router.get(
    "/findings/{finding_id}/image",
    response_class=Response,
    responses={**NOT_FOUND, **IMAGE},
    tags=["findings"],
)
def finding_image(ctx: Context, scope: Scope, finding_id: Id, size: Side = 512) -> Response:
    """The candidate image, re-encoded (never the fetched bytes as they are)."""
    f = scope.finding(finding_id)
    pic = thumbnail(ctx.monitor.blobs.get(f.image_sha256), ctx.monitor.settings, side=size)
    return Response(pic.data, media_type=pic.media_type, headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/findings/{finding_id}/comparison.png",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/png": {}}}},
    tags=["findings"],
)
def finding_comparison(ctx: Context, scope: Scope, finding_id: Id) -> Response:
    """Work and candidate side by side, the matched region and the visible mark drawn."""
    return Response(views.comparison_png(ctx, scope, finding_id), media_type="image/png")


@router.post(
    "/findings/{finding_id}/evidence",
    response_class=FileResponse,
    responses={**NOT_FOUND, 200: {"content": {"application/zip": {}}, "description": "The bundle."}},
    tags=["findings"],
)
def export_evidence(ctx: Context, scope: Scope, finding_id: Id) -> FileResponse:
    """Build the signed evidence bundle of a finding and download it (zip)."""
    path = views.export_evidence(ctx, scope, finding_id)
    return FileResponse(path, media_type="application/zip", filename=path.name)


@router.post(
    "/findings/{finding_id}/recheck", response_model=RecheckResult, responses=NOT_FOUND, tags=["findings"]
)
def recheck_finding(ctx: Context, scope: Scope, finding_id: Id) -> dict[str, Any]:
    """Visit the page and image again: still online, or removed?"""
    return views.recheck(ctx, scope, finding_id)


# ------------------------------------------------------------------ alerts


@router.get("/alerts", response_model=AlertList, tags=["alerts"])
def list_alerts(
    scope: Scope,
    since: Annotated[datetime | None, Query(description="Seen at or after (ISO 8601).")] = None,
    unacked: bool = False,
    severity: Severity | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The account's alerts, newest sighting first."""
    items = scope.list_alerts(
        since=_utc(since), unacked=unacked, severity=severity, limit=limit, offset=offset
    )
    return {"items": [views.alert_json(a) for a in items]}


@router.get("/alerts/{alert_id}", response_model=AlertOut, responses=NOT_FOUND, tags=["alerts"])
def get_alert(scope: Scope, alert_id: Id) -> dict[str, Any]:
    return views.alert_json(scope.alert(alert_id))


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut, responses=NOT_FOUND, tags=["alerts"])
def ack_alert(scope: Scope, alert_id: Id) -> dict[str, Any]:
    """Acknowledge an alert (it leaves the unacknowledged list until it gets worse)."""
    return views.alert_json(scope.ack_alert(alert_id, at=datetime.now(UTC)))
