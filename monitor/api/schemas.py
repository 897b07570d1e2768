"""Request and response bodies of the API (they make the OpenAPI schema in ``docs/openapi.json``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, HttpUrl

Spider = Literal["site", "sitemap", "feed", "urls"]
Severity = Literal["low", "medium", "high", "critical"]


class ErrorBody(BaseModel):
    code: str = Field(description="Stable error code, e.g. `not_found`, `too_large`.")
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class WorkOut(BaseModel):
    work_id: str
    sha256: str
    title: str | None
    owner: str | None
    filename: str | None
    format: str
    width: int
    height: int
    size_bytes: int
    registered_at: str


class WorkList(BaseModel):
    items: list[WorkOut]
    total: int


class CopyOut(BaseModel):
    copy_id: str
    channel: str
    created_at: str


class WorkDetail(WorkOut):
    dossier: list[dict[str, Any]] = Field(description="The authorship dossier, one entry per item.")
    copies: list[CopyOut] = Field(description="Invisibly watermarked publication copies.")
    visible_mark: list[int] | None = Field(description="Box x,y,w,h of the visible mark, if any.")
    findings: int = Field(description="Findings of this work.")


class RegisterLine(BaseModel):
    filename: str | None
    status: str = Field(description="`ok` or `error`.")
    error: str | None
    work_id: str | None
    sha256: str | None = None
    created: bool = Field(description="New for this account (the bytes may have been known before).")
    copies: list[dict[str, Any]] = Field(default_factory=list)


class JobOut(BaseModel):
    job_id: str
    kind: str
    status: str = Field(description="`queued`, `running`, `finished` or `failed`.")
    params: dict[str, Any]
    done: int
    total: int
    result: dict[str, Any] | None
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    findings: list[str] = Field(default_factory=list, description="The account's findings from this scan.")


class UploadOut(BaseModel):
    items: list[RegisterLine] = Field(description="Registration results (one file: done at once).")
    job: JobOut | None = Field(description="Several files: the job registering them.")


class JobList(BaseModel):
    items: list[JobOut]


class ScanIn(BaseModel):
    urls: list[HttpUrl] = Field(min_length=1, description="Pages or images to fetch now.")
    spider: Spider = Field(default="urls", description="`urls`: just these; `site`: follow links.")
    depth: int | None = Field(default=None, ge=0, le=5)
    max_pages: int | None = Field(default=None, ge=1, le=10_000)


class SourceIn(BaseModel):
    url: HttpUrl
    spider: Spider = "site"
    every: str = Field(default="6h", pattern=r"^\s*\d+(\.\d+)?\s*[smhdwSMHDW]?\s*$", max_length=20)
    depth: int | None = Field(default=None, ge=0, le=10)
    max_pages: int | None = Field(default=None, ge=1, le=1_000_000)


class SourcePatch(BaseModel):
    every: str | None = Field(default=None, pattern=r"^\s*\d+(\.\d+)?\s*[smhdwSMHDW]?\s*$", max_length=20)
    depth: int | None = Field(default=None, ge=0, le=10)
    max_pages: int | None = Field(default=None, ge=1, le=1_000_000)
    enabled: bool | None = None


class SourceOut(BaseModel):
    source_id: str
    url: str
    spider: str
    every_seconds: int
    depth: int | None
    max_pages: int | None
    enabled: bool
    next_crawl_at: str
    last_crawl_at: str | None
    last_crawl_id: str | None
    created: bool | None = None


class SourceList(BaseModel):
    items: list[SourceOut]


class PageOut(BaseModel):
    url: str
    title: str | None = None
    text: str | None = None
    alt: str | None = None
    caption: str | None = None
    credit: str | None = None


class FindingOut(BaseModel):
    finding_id: str
    work_id: str
    work_title: str | None
    verdict: str
    severity: Severity
    similarity: float
    flags: list[str]
    region: list[int]
    image_url: str
    page_url: str | None
    created_at: str


class FindingList(BaseModel):
    items: list[FindingOut]


class RecheckOut(BaseModel):
    checked_at: str
    online: bool
    page_status: int | None
    image_status: int | None
    note: str | None


class ExportOut(BaseModel):
    manifest_sha256: str
    key_sha256: str
    members: int
    exported_at: str


class FindingDetail(FindingOut):
    details: dict[str, Any]
    reports: dict[str, Any]
    transform: list[list[float]] | None
    flag_reasons: dict[str, str] = Field(description="Each flag explained in plain words.")
    page: PageOut | None
    fetched_at: str | None
    rechecks: list[RecheckOut]
    exports: list[ExportOut]
    mark_box: list[int] | None = Field(description="The work's visible mark box, in work pixels.")


class RecheckResult(BaseModel):
    online: bool
    recheck: RecheckOut
    history: list[RecheckOut]


class AlertOut(BaseModel):
    alert_id: str
    work_id: str
    finding_id: str
    severity: str
    verdict: str
    flags: list[str]
    summary: str
    page_url: str | None
    image_url: str
    occurrences: int
    created_at: str
    last_seen_at: str
    acked_at: str | None


class AlertList(BaseModel):
    items: list[AlertOut]


class AccountOut(BaseModel):
    account_id: str
    name: str
    created_at: str
    keys: list[dict[str, Any]]


class Health(BaseModel):
    status: str
    database: str
    jobs: str = Field(description="`workers` (Celery) or `in-process`.")
