"""In-memory fakes of the ports alerts, evidence and rechecks read from, and a scenario builder.

A scenario is a real registered work (``register_bytes`` on a real SQLite registry and blob
store), a real candidate image made from it (cropped, scaled, recompressed) matched by the
real matcher, and that match recorded as a :class:`Finding` in :class:`MemoryFindings`.
"""

from __future__ import annotations

import io
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from PIL import Image

from monitor.app import Monitor, open_monitor
from monitor.errors import NotFound
from monitor.evidence import Box, DossierExport, EvidenceSources, HomeCaptures, PublishedCopy
from monitor.findings import ANALYSED, Candidate, Finding, PageCapture, Recheck
from monitor.services import analyse_bytes, load_matcher, register_bytes
from monitor.settings import Settings, load_settings
from monitor.signing import InstallationKey
from monitor.works import Work

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "images"
CHINA = FIXTURES / "pypi-scikit-learn__china.jpg"  # 384x257 photo, textured everywhere


class MemoryFindings:
    """A :class:`~monitor.findings.FindingStore` (and recheck log) in memory."""

    def __init__(self) -> None:
        self.candidates: dict[str, Candidate] = {}
        self.findings: dict[str, Finding] = {}
        self.history: dict[str, list[Recheck]] = {}

    def add(self, candidate: Candidate, finding: Finding) -> None:
        self.candidates[candidate.id] = candidate
        self.findings[finding.id] = finding

    def get_candidate(self, candidate_id: str) -> Candidate:
        try:
            return self.candidates[candidate_id]
        except KeyError:
            raise NotFound(f"no candidate {candidate_id}") from None

    def get_finding(self, finding_id: str) -> Finding:
        try:
            return self.findings[finding_id]
        except KeyError:
            raise NotFound(f"no finding has id {finding_id!r}") from None

    def list_findings(
        self,
        *,
        since: datetime | None = None,
        work_ids: Any = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Finding]:
        items = sorted(self.findings.values(), key=lambda f: f.created_at, reverse=True)
        return items[offset : None if limit is None else offset + limit]

    def rechecks(self, finding_id: str) -> list[Recheck]:
        return list(self.history.get(finding_id, []))

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
        self.get_finding(finding_id)
        r = Recheck(
            id=secrets.token_hex(8),
            finding_id=finding_id,
            checked_at=checked_at or datetime.now(UTC),
            page_status=page_status,
            image_status=image_status,
            online=online,
            image_sha256=image_sha256,
            warc_path=warc_path,
            note=note,
        )
        self.history.setdefault(finding_id, []).append(r)
        return r


@dataclass
class FakeDossier:
    """A :class:`~monitor.evidence.DossierSource` with fixed content."""

    exports: dict[str, DossierExport] = field(default_factory=dict)

    def dossier(self, work_id: str) -> DossierExport | None:
        return self.exports.get(work_id)


@dataclass
class FakePublished:
    """A :class:`~monitor.evidence.PublishedSource` with fixed content."""

    copies: dict[str, list[PublishedCopy]] = field(default_factory=dict)
    marks: dict[str, Box] = field(default_factory=dict)

    def published_copies(self, work_id: str) -> list[PublishedCopy]:
        return list(self.copies.get(work_id, []))

    def visible_mark(self, work_id: str) -> Box | None:
        return self.marks.get(work_id)


def jpeg(img: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def reused_copy() -> bytes:
    """The work cropped (its bottom-right corner cut off), scaled and recompressed."""
    with Image.open(CHINA) as img:
        crop = img.convert("RGB").crop((20, 10, 300, 210))
    return jpeg(crop.resize((224, 160), Image.Resampling.LANCZOS))


@dataclass
class Scenario:
    settings: Settings
    monitor: Monitor
    work: Work
    candidate_bytes: bytes
    findings: MemoryFindings
    finding: Finding
    candidate: Candidate
    dossier: FakeDossier
    published: FakePublished

    def sources(self, **overrides: Any) -> EvidenceSources:
        values: dict[str, Any] = {
            "findings": self.findings,
            "registry": self.monitor.registry,
            "blobs": self.monitor.blobs,
            "key": InstallationKey.load_or_create(self.settings.home),
            "dossiers": self.dossier,
            "published": self.published,
            "captures": HomeCaptures(self.settings.home),
        }
        values.update(overrides)
        return EvidenceSources(**values)


def make_finding(
    mon: Monitor,
    work: Work,
    data: bytes,
    *,
    page_url: str | None,
    image_url: str,
    flags: tuple[str, ...] = (),
    finding_id: str | None = None,
) -> tuple[Candidate, Finding]:
    """Analyse ``data`` with the real matcher; the match with ``work`` becomes a finding."""
    matcher = load_matcher(mon.registry, mon.settings, persist=False)
    result = analyse_bytes(
        data, source=image_url, matcher=matcher, registry=mon.registry, settings=mon.settings
    )
    [match] = [m for m in result.matches if m.work_id == work.id]
    sha = mon.blobs.put(data)
    fetched = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    candidate = Candidate(
        id=secrets.token_hex(8),
        image_url=image_url,
        sha256=sha,
        status=ANALYSED,
        page=PageCapture(
            url=page_url,
            title="A poem about summer",
            text="Green hills, a temple, and the river below.",
            alt="temple",
            caption="Photo: unknown",
        )
        if page_url
        else None,
        headers={"content-type": "image/jpeg", "server": "test"},
        fetched_at=fetched,
        warc_path=None,
    )
    finding = Finding(
        id=finding_id or secrets.token_hex(8),
        candidate_id=candidate.id,
        work_id=work.id,
        verdict=match.verdict,
        similarity=match.similarity,
        flags=[*match.flags, *flags],
        region=match.region,
        details=json.loads(json.dumps(match.to_json()["details"])),
        reports={"watermark": {"expected": True, "found": False, "copy_id": None, "confidence": 0.1}},
        image_url=image_url,
        image_sha256=sha,
        page_url=page_url,
        created_at=datetime(2026, 3, 1, 12, 5, tzinfo=UTC),
        transform=[[float(v) for v in row] for row in match.transform.tolist()],
    )
    return candidate, finding


def build_scenario(
    tmp_path: Path,
    *,
    page_url: str | None = "https://blog.example.org/poems/summer.html",
    image_url: str = "https://cdn.example.org/img/summer.jpg",
    flags: tuple[str, ...] = ("visible_mark_cropped",),
    **settings: Any,
) -> Scenario:
    cfg = load_settings(home=tmp_path / "home", **settings)
    mon = open_monitor(cfg)
    reg = register_bytes(
        CHINA.read_bytes(),
        path=str(CHINA),
        registry=mon.registry,
        blobs=mon.blobs,
        settings=cfg,
        title="Summer Palace",
        owner="Ada Lovelace",
    )
    assert reg.work is not None
    data = reused_copy()
    candidate, finding = make_finding(
        mon, reg.work, data, page_url=page_url, image_url=image_url, flags=flags
    )
    findings = MemoryFindings()
    findings.add(candidate, finding)
    dossier = FakeDossier(
        {
            reg.work.id: DossierExport(
                entries=[{"seq": 1, "kind": "registered", "entry_hash": "ab" * 32}],
                verification={"ok": True, "entries": 1},
                tokens=[("entry-001", b"\x30\x03\x02\x01\x00")],
                records=[("prompt.txt", b"a temple over a lake, golden hour")],
            )
        }
    )
    return Scenario(cfg, mon, reg.work, data, findings, finding, candidate, dossier, FakePublished())


# ------------------------------------------------------------------ a loopback HTTP server


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        routes = self.server.routes
        if self.path not in routes:
            self.send_error(404)
            return
        status, ctype, body = routes[self.path]
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.posts.append((dict(self.headers.items()), body))
            status = self.server.post_statuses.pop(0) if self.server.post_statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.post_statuses: list[int] = []
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def http_server() -> Iterator[_Server]:
    """A real HTTP server on loopback: GET serves ``routes``, POST records and answers from
    ``post_statuses`` (then 200)."""
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
