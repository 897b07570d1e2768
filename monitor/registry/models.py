"""SQLAlchemy models of the registry: ``works`` and their ``fingerprints``.

The table definitions here and the Alembic migrations must agree; a test compares them
with Alembic's autogenerate, so a change to one without the other fails the build.
Constraint names come from :data:`NAMING_CONVENTION`, so migrations can name what they alter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC ``datetime`` on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is stored as
    naive UTC and the zone is put back on read. Naive values are refused on write.
    """

    impl = DateTime
    cache_ok = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"a naive datetime cannot be stored as UTC: {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class WorkRow(Base):
    """One registered work. ``seq`` is assigned on insert as ``max(seq) + 1``."""

    __tablename__ = "works"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    pixel_sha256: Mapped[str] = mapped_column(String(64), index=True)
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    title: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(Text)
    source_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    def __repr__(self) -> str:
        return f"WorkRow(id={self.id!r}, seq={self.seq!r}, sha256={self.sha256!r})"


class FingerprintRow(Base):
    """The serialized :class:`~monitor.fingerprints.WorkFingerprint` of a work."""

    __tablename__ = "fingerprints"

    work_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("works.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    def __repr__(self) -> str:
        return f"FingerprintRow(work_id={self.work_id!r}, version={self.version!r})"


# ---------------------------------------------------------------- discovery (issue 5)
# Watched sources, crawls, candidates (one image seen on one page), analyses (one per image
# SHA-256: the same bytes on two pages are analysed once), findings (unique per candidate x
# work) and rechecks (later visits, written by the evidence/alerts issue).


class SourceRow(Base):
    """A watched source, re-crawled every ``every_seconds`` by beat."""

    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("url", "spider", name="uq_sources_url_spider"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    spider: Mapped[str] = mapped_column(String(32))
    every_seconds: Mapped[int] = mapped_column(Integer)
    depth: Mapped[int | None] = mapped_column(Integer)
    max_pages: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    next_crawl_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    last_crawl_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_crawl_id: Mapped[str | None] = mapped_column(String(32))


class CrawlRow(Base):
    """One run of one crawler process."""

    __tablename__ = "crawls"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("sources.id", ondelete="SET NULL"), index=True
    )
    spider: Mapped[str] = mapped_column(String(32))
    start_urls: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    stats: Mapped[dict[str, Any]] = mapped_column(JSON)


class CandidateRow(Base):
    """One image seen on one page, captured as fetched. ``key`` = SHA-256 of page URL, image
    URL and image SHA-256: seeing the same thing again (a re-crawl) adds nothing."""

    __tablename__ = "candidates"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    crawl_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("crawls.id", ondelete="SET NULL"), index=True
    )
    image_url: Mapped[str] = mapped_column(Text)
    page_url: Mapped[str | None] = mapped_column(Text)
    page: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    fetched_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    warc_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    analysed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AnalysisRow(Base):
    """The analysis of one image's bytes, shared by every candidate with these bytes.

    ``status``: ``running`` (claimed by ``token`` at ``claimed_at``), ``done`` (``matches``
    holds the scan's matches as JSON) or ``error`` (``error`` holds the reason)."""

    __tablename__ = "analyses"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    token: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    claims: Mapped[int] = mapped_column(Integer)
    matches: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class FindingRow(Base):
    """A registered work found in a candidate; unique per candidate x work."""

    __tablename__ = "findings"
    __table_args__ = (UniqueConstraint("candidate_id", "work_id", name="uq_findings_candidate_id_work_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    candidate_id: Mapped[str] = mapped_column(String(32), ForeignKey("candidates.id", ondelete="CASCADE"))
    work_id: Mapped[str] = mapped_column(String(32), ForeignKey("works.id", ondelete="CASCADE"), index=True)
    verdict: Mapped[str] = mapped_column(String(32))
    similarity: Mapped[float] = mapped_column(Float)
    flags: Mapped[list[str]] = mapped_column(JSON)
    region: Mapped[list[int]] = mapped_column(JSON)
    transform: Mapped[list[list[float]] | None] = mapped_column(JSON)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    reports: Mapped[dict[str, Any]] = mapped_column(JSON)
    image_url: Mapped[str] = mapped_column(Text)
    image_sha256: Mapped[str] = mapped_column(String(64))
    page_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class RecheckRow(Base):
    """A later visit to a finding's page and image (written by the evidence/alerts issue)."""

    __tablename__ = "rechecks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    finding_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("findings.id", ondelete="CASCADE"), index=True
    )
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime())
    page_status: Mapped[int | None] = mapped_column(Integer)
    image_status: Mapped[int | None] = mapped_column(Integer)
    online: Mapped[bool] = mapped_column(Boolean)
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    warc_path: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


# ---------------------------------------------------------------- dossier and attribution (issue 4)
# The authorship dossier: per work, an append-only chain of entries (``seq`` 1, 2, ...), each
# carrying the hash of the previous one; ``(work, kind, content_hash)`` is unique so that
# re-registering adds nothing. ``work_attribution`` remembers the published copy's visible
# mark and copyright metadata (CMI) for the scan-time attribution checks.


class DossierEntryRow(Base):
    """One dossier entry. ``payload`` is canonical JSON text: hashed as stored."""

    __tablename__ = "dossier_entries"
    __table_args__ = (UniqueConstraint("work_id", "kind", "content_hash"),)

    work_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("works.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    content_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
    tsa_url: Mapped[str | None] = mapped_column(Text)
    tsa_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    tsa_time: Mapped[datetime | None] = mapped_column(UtcDateTime())
    tsa_error: Mapped[str | None] = mapped_column(Text)


class WorkAttributionRow(Base):
    """The published copy of a work: its visible mark (box, stored patch) and its CMI."""

    __tablename__ = "work_attribution"

    work_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("works.id", ondelete="CASCADE"), primary_key=True
    )
    published_sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    mark: Mapped[str | None] = mapped_column(Text)
    cmi: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


# ---------------------------------------------------------------- alerts and evidence (issue 6)
# One alert per work x page (``key``), the findings that sighted it (``alert_findings``: a
# finding counts once), the delivery log (every attempt on every channel) and the evidence
# exports. Finding ids are indexed, not foreign keys: the alerts outlive re-crawled findings.


class AlertRow(Base):
    """An alert in the inbox; ``finding_id`` is the latest sighting."""

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    finding_id: Mapped[str] = mapped_column(String(32), index=True)
    first_finding_id: Mapped[str] = mapped_column(String(32))
    work_id: Mapped[str] = mapped_column(String(32), ForeignKey("works.id", ondelete="CASCADE"), index=True)
    candidate_id: Mapped[str] = mapped_column(String(32))
    page_url: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str] = mapped_column(Text)
    image_sha256: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(32))
    similarity: Mapped[float] = mapped_column(Float)
    flags: Mapped[list[str]] = mapped_column(JSON)
    severity: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    occurrences: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    acked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AlertFindingRow(Base):
    """A finding counted as a sighting of an alert (each finding once)."""

    __tablename__ = "alert_findings"

    finding_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(32), ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AlertDeliveryRow(Base):
    """One attempt at delivering an alert on a channel."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(32), ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    target: Mapped[str | None] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)


class EvidenceExportRow(Base):
    """An evidence bundle written for a finding."""

    __tablename__ = "evidence_exports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    finding_id: Mapped[str] = mapped_column(String(32), index=True)
    path: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    key_sha256: Mapped[str] = mapped_column(String(64))
    members: Mapped[int] = mapped_column(Integer)
    exported_at: Mapped[datetime] = mapped_column(UtcDateTime())


# ---------------------------------------------------------------- watermark (issue 3)
# One marked publication copy per work and channel. ``id`` is the 64-bit payload the mark
# carries; ``base_sha256`` is the unmarked picture it was added to (the original, or its
# visibly stamped version) and ``marked_sha256`` the marked file, both in the blob store.


class CopyRow(Base):
    """A published, invisibly marked copy of a work."""

    __tablename__ = "copies"
    __table_args__ = (UniqueConstraint("work_id", "channel"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    work_id: Mapped[str] = mapped_column(String(32), ForeignKey("works.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(64))
    base_sha256: Mapped[str] = mapped_column(String(64))
    marked_sha256: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str | None] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(16))
    strength: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    def __repr__(self) -> str:
        return f"CopyRow(id={self.id!r}, work_id={self.work_id!r}, channel={self.channel!r})"


# ---------------------------------------------------------------- accounts, API keys and jobs (issue 7)
# Ownership lives in link tables, never in the other features' tables: ``account_works`` (the
# same bytes registered by two accounts are one work owned by both, each with its own title),
# ``account_sources`` (one watched source may be watched by several accounts). Findings, alerts
# and exports are an account's when their work is. API keys are stored as SHA-256 digests.


class AccountRow(Base):
    """An account: a rights holder, or an agency serving many."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ApiKeyRow(Base):
    """An API key of an account; ``id`` is the public part of the key, ``key_hash`` the SHA-256."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AccountWorkRow(Base):
    """A work as one account registered it: the account's own title, owner and file name."""

    __tablename__ = "account_works"

    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    work_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("works.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    title: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class AccountSourceRow(Base):
    """A watched source an account asked for."""

    __tablename__ = "account_sources"

    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    source_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(UtcDateTime())


class JobRow(Base):
    """Long work asked for through the API (a scan, a batch upload): queued, running, finished."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    done: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
