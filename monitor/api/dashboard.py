"""The dashboard: server-rendered pages (Jinja2) over the same use cases as the API.

Readable without JavaScript (one small local script only shows upload progress), every action
a link or a form button (keyboard reachable), nothing loaded from another origin. Log in with
an API key: the page sets a signed session cookie (``SameSite=Lax``, ``HttpOnly``); every form
that changes something carries a CSRF token derived from that cookie.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from monitor.accounts import AccountScope, FindingFilter, authenticate
from monitor.alerts import SEVERITIES
from monitor.api import views
from monitor.api.app import HERE
from monitor.api.context import ApiContext, context, session_scope
from monitor.api.pictures import oriented_size, thumbnail
from monitor.api.sessions import COOKIE
from monitor.errors import ConfigError, MonitorError

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))

VERDICT_WORDS = {
    "exact": "an exact copy (same pixels)",
    "near_duplicate": "the whole work, changed a little",
    "partial": "part of the work (cropped or pasted into another picture)",
}


class LoginRequired(Exception):
    pass


def _account(request: Request) -> AccountScope:
    return _scope(request)[1]


def _scope(request: Request) -> tuple[ApiContext, AccountScope]:
    ctx = context(request)
    scope = session_scope(request, ctx)
    if scope is None:
        raise LoginRequired
    return ctx, scope


def _page(
    request: Request, name: str, scope: AccountScope | None, status: int = 200, **values: Any
) -> Response:
    ctx = context(request)
    cookie = request.cookies.get(COOKIE)
    values.update(
        account=scope.account if scope is not None else None,
        csrf=ctx.signer.csrf_token(cookie) if cookie else "",
        path=request.url.path,
        notice=request.query_params.get("notice"),
    )
    return templates.TemplateResponse(request, name, values, status_code=status)


def _redirect(url: str, notice: str | None = None) -> RedirectResponse:
    if notice:
        url += ("&" if "?" in url else "?") + "notice=" + quote(notice)
    return RedirectResponse(url, status_code=303)


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return RedirectResponse("/login?next=" + quote(target), status_code=303)


def _check_csrf(request: Request, token: str | None) -> None:
    ctx = context(request)
    if not ctx.signer.check_csrf(request.cookies.get(COOKIE), token):
        raise ConfigError("the form has expired: reload the page and try again")


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/"
    return target


def error_page(request: Request, status: int, message: str) -> Response:
    ctx = context(request)
    scope = session_scope(request, ctx)
    title = {404: "Not found", 413: "Too large", 400: "Cannot do that", 422: "Not an image we can use"}.get(
        status, "Something went wrong"
    )
    if status >= 500:
        message = "the server could not handle this request"
    return _page(request, "error.html", scope, status=status, title=title, message=message)


# ------------------------------------------------------------------ login


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return _page(request, "login.html", None, next=_safe_next(next), error=None)


@router.post("/login")
def login(
    request: Request, key: Annotated[str, Form(max_length=200)], next: Annotated[str, Form()] = "/"
) -> Response:
    ctx = context(request)
    found = authenticate(ctx.monitor.accounts, key)
    if found is None:
        return _page(
            request, "login.html", None, status=401, next=_safe_next(next), error="That key is not valid."
        )
    account, key_id = found
    response = _redirect(_safe_next(next))
    response.set_cookie(
        COOKIE,
        ctx.signer.issue(account.id, key_id),
        max_age=ctx.signer.lifetime,
        httponly=True,
        samesite="lax",
        secure=ctx.monitor.settings.api.secure_cookies,
    )
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str | None, Form()] = None) -> Response:
    _check_csrf(request, csrf)
    response = _redirect("/login")
    response.delete_cookie(COOKIE)
    return response


# ------------------------------------------------------------------ works


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    return findings_inbox(request)


@router.get("/works", response_class=HTMLResponse)
def works_gallery(
    request: Request,
    q: Annotated[str | None, Query(max_length=200)] = None,
    page: Annotated[int, Query(ge=1)] = 1,
) -> Response:
    scope = _account(request)
    per_page = 48
    items = scope.works(query=q, limit=per_page, offset=(page - 1) * per_page)
    total = scope.count_works(query=q)
    return _page(
        request,
        "works.html",
        scope,
        works=items,
        q=q or "",
        total=total,
        page=page,
        pages=max(1, -(-total // per_page)),
    )


@router.get("/works/new", response_class=HTMLResponse)
def upload_form(request: Request) -> Response:
    ctx, scope = _scope(request)
    return _page(request, "upload.html", scope, max_bytes=ctx.monitor.settings.intake.max_bytes)


@router.post("/works")
async def upload(
    request: Request,
    files: Annotated[list[UploadFile], File()],
    csrf: Annotated[str | None, Form()] = None,
    title: Annotated[str | None, Form(max_length=500)] = None,
    owner: Annotated[str | None, Form(max_length=500)] = None,
    watermark: Annotated[bool, Form()] = False,
    channels: Annotated[str | None, Form(max_length=500)] = None,
    add_visible_mark: Annotated[str | None, Form(max_length=200)] = None,
    corner: Annotated[str, Form()] = "br",
) -> Response:
    from starlette.concurrency import run_in_threadpool

    from monitor.api.routes import _read_limited

    ctx, scope = _scope(request)
    _check_csrf(request, csrf)
    options = views.upload_options(
        watermark=watermark,
        channels=[c.strip() for c in (channels or "").split(",") if c.strip()],
        visible_mark=None,
        add_visible_mark=add_visible_mark,
        corner=corner,
    )
    limit = ctx.monitor.settings.intake.max_bytes
    items = [(f.filename or "upload", await _read_limited(f, limit)) for f in files if f.filename]
    body = await run_in_threadpool(views.upload, ctx, scope, items, title=title, owner=owner, options=options)
    if body["job"] is not None:
        return _redirect(f"/jobs/{body['job']['job_id']}")
    line = body["items"][0]
    if line["work_id"] is None:
        raise ConfigError(f"{line['filename']}: {line['error']}")
    notice = "Registered." if line["created"] else "You had already registered this image."
    if line["error"]:
        notice = f"Registered, but: {line['error']}"
    return _redirect(f"/works/{line['work_id']}", notice)


@router.get("/works/{work_id}", response_class=HTMLResponse)
def work_page(request: Request, work_id: str) -> Response:
    ctx, scope = _scope(request)
    detail = views.work_detail(ctx, scope, work_id)
    found = views.list_findings(scope, FindingFilter(work_id=work_id), limit=200)
    return _page(request, "work.html", scope, work=detail, findings=found)


@router.get("/ui/works/{work_id}/image")
def work_image(request: Request, work_id: str, size: Annotated[int, Query(ge=32, le=2048)] = 512) -> Response:
    ctx, scope = _scope(request)
    mine = scope.work(work_id)
    pic = thumbnail(ctx.monitor.blobs.get(mine.work.sha256), ctx.monitor.settings, side=size)
    return Response(pic.data, media_type=pic.media_type, headers={"Cache-Control": "private, max-age=3600"})


# ------------------------------------------------------------------ findings


@router.get("/findings", response_class=HTMLResponse)
def findings_inbox(
    request: Request,
    verdict: str | None = None,
    flag: str | None = None,
    severity: str | None = None,
    site: str | None = None,
) -> Response:
    scope = _account(request)
    filters = FindingFilter(
        verdict=verdict or None,
        flag=flag or None,
        severity=views.check_severity(severity or None),
        site=site or None,
    )
    items = views.list_findings(scope, filters, sort="severity", limit=200)
    return _page(
        request,
        "findings.html",
        scope,
        findings=items,
        filters={
            "verdict": verdict or "",
            "flag": flag or "",
            "severity": severity or "",
            "site": site or "",
        },
        severities=SEVERITIES,
        verdicts=list(VERDICT_WORDS),
    )


def _apply(t: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts @ t[:, :2].T + t[:, 2], dtype=float)


def _polygon(points: np.ndarray) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def _corners(x: float, y: float, w: float, h: float) -> np.ndarray:
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=float)


def overlays(
    transform: list[list[float]] | None, region: list[int], mark_box: list[int] | None
) -> dict[str, str | None]:
    """Polygons to draw: the matched region on the work (the candidate region mapped back),
    and the visible mark on the candidate (the work's mark box mapped forward)."""
    out: dict[str, str | None] = {"work_region": None, "candidate_mark": None}
    if transform is None:
        return out
    t = np.asarray(transform, dtype=float).reshape(2, 3)
    a = t[:, :2]
    if abs(float(np.linalg.det(a))) < 1e-9:
        return out
    inv = np.hstack([np.linalg.inv(a), (-np.linalg.inv(a) @ t[:, 2]).reshape(2, 1)])
    out["work_region"] = _polygon(_apply(inv, _corners(*region)))
    if mark_box is not None:
        out["candidate_mark"] = _polygon(_apply(t, _corners(*mark_box)))
    return out


@router.get("/findings/{finding_id}", response_class=HTMLResponse)
def finding_page(request: Request, finding_id: str) -> Response:
    ctx, scope = _scope(request)
    detail = views.finding_detail(ctx, scope, finding_id)
    finding = scope.finding(finding_id)
    mine = scope.work(finding.work_id)
    settings = ctx.monitor.settings
    try:
        cand_w, cand_h = oriented_size(ctx.monitor.blobs.get(finding.image_sha256), settings)
    except MonitorError:
        cand_w, cand_h = (
            max(1, detail["region"][0] + detail["region"][2]),
            max(1, detail["region"][1] + detail["region"][3]),
        )
    return _page(
        request,
        "finding.html",
        scope,
        f=detail,
        work=mine,
        work_size=(mine.work.width, mine.work.height),
        cand_size=(cand_w, cand_h),
        shapes=overlays(detail["transform"], detail["region"], detail["mark_box"]),
        verdict_words=VERDICT_WORDS.get(detail["verdict"], detail["verdict"]),
    )


@router.get("/ui/findings/{finding_id}/image")
def finding_image(
    request: Request, finding_id: str, size: Annotated[int, Query(ge=32, le=2048)] = 512
) -> Response:
    ctx, scope = _scope(request)
    f = scope.finding(finding_id)
    pic = thumbnail(ctx.monitor.blobs.get(f.image_sha256), ctx.monitor.settings, side=size)
    return Response(pic.data, media_type=pic.media_type, headers={"Cache-Control": "private, max-age=3600"})


@router.get("/ui/findings/{finding_id}/comparison.png")
def finding_comparison(request: Request, finding_id: str) -> Response:
    ctx, scope = _scope(request)
    return Response(views.comparison_png(ctx, scope, finding_id), media_type="image/png")


@router.post("/findings/{finding_id}/evidence")
def finding_evidence(
    request: Request, finding_id: str, csrf: Annotated[str | None, Form()] = None
) -> Response:
    ctx, scope = _scope(request)
    _check_csrf(request, csrf)
    path = views.export_evidence(ctx, scope, finding_id)
    return FileResponse(path, media_type="application/zip", filename=path.name)


@router.post("/findings/{finding_id}/recheck")
def finding_recheck(
    request: Request, finding_id: str, csrf: Annotated[str | None, Form()] = None
) -> Response:
    ctx, scope = _scope(request)
    _check_csrf(request, csrf)
    outcome = views.recheck(ctx, scope, finding_id)
    state = "still online" if outcome["online"] else "removed"
    return _redirect(f"/findings/{finding_id}", f"Re-checked: {state}.")


# ------------------------------------------------------------------ scans and jobs


@router.get("/scan", response_class=HTMLResponse)
def scan_form(request: Request) -> Response:
    ctx, scope = _scope(request)
    jobs = ctx.monitor.accounts.list_jobs(scope.account_id, limit=20)
    return _page(request, "scan.html", scope, jobs=jobs)


@router.post("/scan")
def scan(
    request: Request,
    urls: Annotated[str, Form(max_length=20_000)],
    csrf: Annotated[str | None, Form()] = None,
    follow: Annotated[bool, Form()] = False,
) -> Response:
    ctx, scope = _scope(request)
    _check_csrf(request, csrf)
    job = views.scan(
        ctx, scope, urls.split(), spider="site" if follow else "urls", depth=1 if follow else None
    )
    return _redirect(f"/jobs/{job.id}")


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str) -> Response:
    ctx, scope = _scope(request)
    job = views.job_of(ctx, scope, job_id)
    body = views.job_json(ctx, scope, job)
    found = [views.finding_json(scope.finding(fid), None) for fid in body["findings"]]
    return _page(request, "job.html", scope, job=body, findings=found, refresh=not job.finished)


# ------------------------------------------------------------------ alerts and sources


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, unacked: bool = False) -> Response:
    scope = _account(request)
    return _page(
        request, "alerts.html", scope, alerts=scope.list_alerts(unacked=unacked, limit=200), unacked=unacked
    )


@router.post("/alerts/{alert_id}/ack")
def ack(request: Request, alert_id: str, csrf: Annotated[str | None, Form()] = None) -> Response:
    scope = _account(request)
    _check_csrf(request, csrf)
    scope.ack_alert(alert_id, at=datetime.now(UTC))
    return _redirect("/alerts", "Acknowledged.")


@router.get("/sources", response_class=HTMLResponse)
def sources_page(request: Request) -> Response:
    scope = _account(request)
    return _page(request, "sources.html", scope, sources=scope.sources())


@router.post("/sources")
def add_source(
    request: Request,
    url: Annotated[str, Form(max_length=2000)],
    csrf: Annotated[str | None, Form()] = None,
    spider: Annotated[str, Form()] = "site",
    every: Annotated[str, Form(max_length=20)] = "6h",
) -> Response:
    scope = _account(request)
    _check_csrf(request, csrf)
    _, created = scope.watch(url.strip(), spider=spider, every=every)
    return _redirect("/sources", "Watching." if created else "You already watch this source.")


@router.post("/sources/{source_id}/delete")
def remove_source(request: Request, source_id: str, csrf: Annotated[str | None, Form()] = None) -> Response:
    scope = _account(request)
    _check_csrf(request, csrf)
    scope.unwatch(source_id)
    return _redirect("/sources", "No longer watched.")


__all__ = ["LoginRequired", "error_page", "login_redirect", "overlays", "router"]
