"""Evidence bundles: everything about one finding in one signed, reproducible zip.

:func:`build_bundle` gathers the members (fixed, safe names; ``role`` says what each is):

============================== =========================================================
``work/original.<ext>``        the registered original, byte for byte (``work_original``)
``work/published-NN-*.<ext>``  the copies the owner published (``work_published``)
``work/work.json``             the work's record and registration time (``work_record``)
``dossier/entries.json``       the hash-chained creative-process dossier (``dossier``)
``dossier/verification.json``  the chain re-checked at export (``dossier_verification``)
``dossier/tokens/NN-*.tsr``    RFC 3161 timestamp tokens (``timestamp_token``)
``dossier/records/NN-*``       attached creative-process records (``dossier_record``)
``candidate/image.<ext>``      the candidate exactly as fetched (``candidate_image``)
``candidate/capture.json``     URL, page URL and title, text around it, HTTP headers,
                               fetch time (``candidate_capture``)
``candidate/capture.warc.gz``  the WARC of the page and image responses (``warc``)
``rechecks/NN-*.warc.gz``      captures of later visits (``recheck_warc``)
``comparison.png``             work and candidate side by side (``comparison``)
``finding.json``               the match explained, watermark report, every flag with its
                               reason, recheck history (``finding``)
``report.pdf``                 all of the above for people (``report``)
``notice-dmca.txt`` …          takedown notice drafts (``notice``)
``public_key.pem``             the installation's Ed25519 public key (``public_key``)
============================== =========================================================

and ``manifest.json`` lists each with its SHA-256, size and role; ``manifest.sig`` is the
Ed25519 signature of the exact manifest bytes. :func:`write_bundle` writes the zip with
sorted members and fixed timestamps, so the same finding always gives the same member bytes;
only ``manifest.json`` (its ``exported_at``) and ``manifest.sig`` change between exports.

:func:`verify_bundle` re-checks a zip: every member against the manifest, the signature with
the included key (and, if given, against trusted key fingerprints); it names each member
changed, added or missing, and refuses unsafe names (absolute, ``..``) without extracting
anything.

Sources the core does not own are ports: :class:`DossierSource` (the dossier of a work),
:class:`PublishedSource` (published copies, the visible mark's box) and
:class:`CaptureSource` (WARC files); each is optional.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from monitor.alerts import STRIPPING_FLAGS, severity_for
from monitor.blobs import BlobStore
from monitor.comparison import render_comparison
from monitor.errors import EvidenceError, MonitorError, RegistryError, SigningError, describe
from monitor.findings import Candidate, Finding, FindingStore, Recheck
from monitor.notices import NoticeFacts, cn_notice, dmca_notice, dsa_notice
from monitor.report_pdf import ReportContent, ReportSection, render_report
from monitor.signing import InstallationKey, key_fingerprint, load_public_pem, verify_signature
from monitor.works import Work, WorkRegistry

__all__ = [
    "BUNDLE_FORMAT",
    "Bundle",
    "CaptureSource",
    "Contact",
    "DossierExport",
    "DossierSource",
    "EvidenceSources",
    "HomeCaptures",
    "Member",
    "PublishedCopy",
    "PublishedSource",
    "Verification",
    "build_bundle",
    "export_evidence",
    "flag_reasons",
    "verify_bundle",
    "write_bundle",
]

BUNDLE_FORMAT = "monitor-evidence/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "public_key.pem"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_COMMENT_PREFIX = b"monitor-evidence manifest sha256="
#: Declared member sizes above this are refused by verify (zip bombs).
MAX_MEMBER_BYTES = 2 * 1024**3

Box = tuple[int, int, int, int]


# ------------------------------------------------------------------ ports


@dataclass(frozen=True)
class PublishedCopy:
    """A copy of the work the owner published (visibly marked, watermarked for a channel)."""

    name: str
    data: bytes = field(repr=False)
    channel: str | None = None
    copy_id: str | None = None


@dataclass(frozen=True)
class DossierExport:
    """A work's dossier as it goes into a bundle."""

    entries: list[dict[str, Any]]  # the hash-chained entries, oldest first
    verification: dict[str, Any]  # the chain re-checked now: {"ok": bool, ...}
    tokens: list[tuple[str, bytes]] = field(default_factory=list)  # (name, RFC 3161 token DER)
    records: list[tuple[str, bytes]] = field(default_factory=list)  # attached process records


class DossierSource(Protocol):
    def dossier(self, work_id: str) -> DossierExport | None:
        """The work's dossier, or None when it has none."""
        ...


class PublishedSource(Protocol):
    def published_copies(self, work_id: str) -> list[PublishedCopy]: ...

    def visible_mark(self, work_id: str) -> Box | None:
        """The box ``x, y, w, h`` of the owner's visible mark on the published copy, if recorded."""
        ...


class CaptureSource(Protocol):
    def read_capture(self, warc_path: str) -> bytes | None:
        """The bytes of a WARC file named as the candidate or recheck records it, or None."""
        ...


class HomeCaptures:
    """WARC files under ``MONITOR_HOME`` (paths relative to it; nothing outside it is read)."""

    def __init__(self, home: Path) -> None:
        self.home = home.resolve()

    def read_capture(self, warc_path: str) -> bytes | None:
        path = (self.home / warc_path).resolve()
        if not path.is_relative_to(self.home) or not path.is_file():
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None


@dataclass(frozen=True)
class Contact:
    """The rights holder as named in notices (from ``settings.alerts.contact``)."""

    name: str | None = None
    email: str | None = None
    address: str | None = None
    phone: str | None = None


@dataclass
class EvidenceSources:
    """What an export reads from."""

    findings: FindingStore
    registry: WorkRegistry
    blobs: BlobStore
    key: InstallationKey
    dossiers: DossierSource | None = None
    published: PublishedSource | None = None
    captures: CaptureSource | None = None
    contact: Contact = field(default_factory=Contact)
    max_pixels: int = 80_000_000


# ------------------------------------------------------------------ the bundle


@dataclass(frozen=True)
class Member:
    name: str
    role: str
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def entry(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "sha256": self.sha256, "size": len(self.data)}


@dataclass(frozen=True)
class Bundle:
    finding_id: str
    members: list[Member]  # everything but manifest.json and manifest.sig
    manifest: bytes
    signature: bytes

    @property
    def manifest_sha256(self) -> str:
        return hashlib.sha256(self.manifest).hexdigest()

    def files(self) -> list[tuple[str, bytes]]:
        out = [(m.name, m.data) for m in self.members]
        out += [(MANIFEST, self.manifest), (SIGNATURE, self.signature)]
        return sorted(out)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(name: str, limit: int = 60) -> str:
    cleaned = _UNSAFE.sub("-", name).strip("-.") or "file"
    return cleaned[:limit]


def _ext(data: bytes, fallback: str = "bin") -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tif"
    if data[:2] == b"BM":
        return "bmp"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "avif"
    if data[4:8] == b"ftyp":
        return "heic"
    return fallback


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=2, default=str) + "\n").encode()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# ------------------------------------------------------------------ explanations

#: flag -> (why, detail drawn from the match's numbers when they are there)
_FLAG_TEXT: dict[str, tuple[str, str | None]] = {
    "cropped": ("only part of the work is shown", "{coverage_work:.0%} of its area"),
    "embedded": ("the work is pasted into a larger picture", "it fills {coverage_candidate:.0%} of it"),
    "mirrored": ("the work is flipped left-right", None),
    "rotated": ("the work is rotated", "by {rotation_deg} degrees"),
    "resized": ("the work is scaled", "by a factor of {scale}"),
    "stretched": (
        "the work is stretched or squeezed to another aspect ratio",
        "one direction scaled {stretch} times the other",
    ),
    "recompressed": ("the candidate was re-encoded with lossy compression", None),
    "grayscale": ("the colour work appears in grayscale", None),
    "inverted": ("the work's tones are inverted (a negative)", None),
    "watermark_stripped": (
        "the owner's invisible watermark is expected in this region but was not found",
        None,
    ),
    "visible_mark_cropped": (
        "the owner's visible mark falls outside the candidate while the rest of the work is there",
        None,
    ),
    "visible_mark_removed": ("the owner's visible mark is inside the copy but painted over or erased", None),
    "metadata_stripped": ("the copyright metadata of the published copy is gone from the candidate", None),
}


def flag_reasons(finding: Finding) -> dict[str, str]:
    """Each flag with a sentence saying why it was raised, from the match's numbers."""
    d = {k: v for k, v in finding.details.items() if v is not None}
    out: dict[str, str] = {}
    for flag in finding.flags:
        why, detail = _FLAG_TEXT.get(flag, (flag.replace("_", " "), None))
        if detail is not None:
            with contextlib.suppress(KeyError, ValueError, TypeError, IndexError):
                why = f"{why} ({detail.format(**d)})"
        extra = d.get(flag)
        if extra not in (None, True, False, {}, []):
            why += f" ({json.dumps(extra, sort_keys=True, ensure_ascii=False, default=str)})"
        out[flag] = why
    return out


def _explanation(finding: Finding) -> dict[str, Any]:
    d = finding.details
    keys = (
        "method",
        "pdq_distance",
        "phash_distance",
        "pdq_quality",
        "inliers",
        "matches",
        "inlier_ratio",
        "votes",
        "ncc",
        "scale",
        "rotation_deg",
        "mirrored",
        "stretch",
        "model",
        "coverage_work",
        "coverage_candidate",
        "same_bytes",
        "same_pixels",
    )
    out = {k: d[k] for k in keys if k in d}
    out["transform"] = finding.transform if finding.transform is not None else d.get("transform")
    out["region"] = list(finding.region)
    return out


def _match_summary(finding: Finding) -> str:
    d = finding.details
    parts = [f"{finding.verdict.replace('_', ' ')} copy, similarity {finding.similarity:.2f}"]
    if d.get("inliers") is not None:
        parts.append(f"{d['inliers']} geometrically consistent keypoint matches")
    if d.get("pdq_distance") is not None:
        parts.append(f"PDQ distance {d['pdq_distance']}")
    if d.get("phash_distance") is not None:
        parts.append(f"pHash distance {d['phash_distance']}")
    if finding.flags:
        parts.append("changes: " + ", ".join(finding.flags))
    return "; ".join(parts)


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


def _mark_box(finding: Finding, sources: EvidenceSources) -> Box | None:
    if sources.published is not None:
        box = sources.published.visible_mark(finding.work_id)
        if box is not None:
            return box
    for holder in (finding.reports.get("visible_mark"), finding.details.get("visible_mark")):
        if isinstance(holder, dict):
            box = holder.get("box") or holder.get("work_box")
            if isinstance(box, list | tuple) and len(box) == 4:
                x, y, w, h = (int(v) for v in box)
                return (x, y, w, h)
    return None


# ------------------------------------------------------------------ building


def build_bundle(
    finding_id: str,
    sources: EvidenceSources,
    *,
    exported_at: datetime | None = None,
    generator: str = "image-infringement-monitor",
) -> Bundle:
    """Gather, render and sign every member for ``finding_id`` (see the module docstring)."""
    exported_at = exported_at or datetime.now(UTC)
    finding = sources.findings.get_finding(finding_id)
    candidate = sources.findings.get_candidate(finding.candidate_id)
    work = sources.registry.get(finding.work_id)
    rechecks = sources.findings.rechecks(finding.id)
    members: list[Member] = []

    def add(name: str, role: str, data: bytes) -> None:
        members.append(Member(name, role, data))

    try:
        original = sources.blobs.get(work.sha256)
        image = sources.blobs.get(finding.image_sha256)
    except RegistryError as exc:
        raise EvidenceError(f"cannot export finding {finding.id}: {exc.message}", item=finding.id) from exc

    # -- the work
    add(f"work/original.{_ext(original, _safe(work.format.lower()))}", "work_original", original)
    published = sources.published.published_copies(work.id) if sources.published else []
    published = [c for c in published if c.data != original]  # the original is already in
    copies_json = []
    for i, copy in enumerate(published, 1):
        name = f"work/published-{i:02d}-{_safe(copy.name, 40)}.{_ext(copy.data)}"
        add(name, "work_published", copy.data)
        copies_json.append({"file": name, "channel": copy.channel, "copy_id": copy.copy_id})
    add("work/work.json", "work_record", _json(_work_json(work, copies_json)))

    # -- the dossier
    dossier = sources.dossiers.dossier(work.id) if sources.dossiers else None
    if dossier is not None:
        add("dossier/entries.json", "dossier", _json(dossier.entries))
        add("dossier/verification.json", "dossier_verification", _json(dossier.verification))
        for i, (name, token) in enumerate(dossier.tokens, 1):
            add(f"dossier/tokens/{i:02d}-{_safe(name, 40)}.tsr", "timestamp_token", token)
        for i, (name, data) in enumerate(dossier.records, 1):
            add(f"dossier/records/{i:03d}-{_safe(name, 50)}", "dossier_record", data)

    # -- the candidate as fetched
    add(f"candidate/image.{_ext(image)}", "candidate_image", image)
    add("candidate/capture.json", "candidate_capture", _json(_capture_json(candidate, finding)))
    if candidate.warc_path and sources.captures is not None:
        warc = sources.captures.read_capture(candidate.warc_path)
        if warc is not None:
            suffix = ".warc.gz" if candidate.warc_path.endswith(".gz") else ".warc"
            add(f"candidate/capture{suffix}", "warc", warc)
    for i, r in enumerate(rechecks, 1):
        if r.warc_path and sources.captures is not None:
            warc = sources.captures.read_capture(r.warc_path)
            if warc is not None:
                stamp = r.checked_at.strftime("%Y%m%dT%H%M%SZ")
                suffix = ".warc.gz" if r.warc_path.endswith(".gz") else ".warc"
                add(f"rechecks/{i:02d}-{stamp}{suffix}", "recheck_warc", warc)

    # -- the comparison, the explanation
    mark_box = _mark_box(finding, sources)
    shown = published[0].data if published else original
    picture: bytes | None
    try:
        picture = render_comparison(
            shown,
            image,
            transform=finding.transform,
            region=finding.region,
            mark_box=mark_box,
            max_pixels=sources.max_pixels,
        )
        add("comparison.png", "comparison", picture)
        picture_error = None
    except MonitorError as exc:
        picture, picture_error = None, describe(exc)
    finding_doc = _finding_json(finding, rechecks, mark_box, picture_error)
    add("finding.json", "finding", _json(finding_doc))

    # -- notices
    facts = _facts(finding, candidate, work, sources.contact)
    add("notice-dmca.txt", "notice", dmca_notice(facts).encode())
    add("notice-dsa.txt", "notice", dsa_notice(facts).encode())
    add("notice-cn.txt", "notice", cn_notice(facts).encode())
    add(PUBLIC_KEY, "public_key", sources.key.public_pem())

    # -- the report, over everything above
    members.sort(key=lambda m: m.name)
    report = _report(finding, candidate, work, finding_doc, dossier, rechecks, members, picture)
    members.append(Member("report.pdf", "report", render_report(report)))
    members.sort(key=lambda m: m.name)

    manifest = {
        "format": BUNDLE_FORMAT,
        "generator": generator,
        "finding_id": finding.id,
        "work_id": work.id,
        "candidate_id": candidate.id,
        "exported_at": exported_at.astimezone(UTC).isoformat(timespec="seconds"),
        "signature": {
            "algorithm": "Ed25519",
            "file": SIGNATURE,
            "public_key": PUBLIC_KEY,
            "key_sha256": sources.key.fingerprint,
        },
        "members": [m.entry() for m in members],
    }
    manifest_bytes = _json(manifest)
    signature = sources.key.sign(manifest_bytes)
    return Bundle(finding.id, members, manifest_bytes, signature)


def _work_json(work: Work, copies: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "work_id": work.id,
        "title": work.title,
        "owner": work.owner,
        "sha256": work.sha256,
        "pixel_sha256": work.pixel_sha256,
        "format": work.format,
        "width": work.width,
        "height": work.height,
        "frames": work.frames,
        "size_bytes": work.size_bytes,
        "source_path": work.source_path,
        "registered_at": _iso(work.created_at),
        "published_copies": copies,
    }


def _capture_json(candidate: Candidate, finding: Finding) -> dict[str, Any]:
    page = candidate.page
    return {
        "candidate_id": candidate.id,
        "image_url": candidate.image_url,
        "image_sha256": candidate.sha256 or finding.image_sha256,
        "fetched_at": _iso(candidate.fetched_at),
        "headers": dict(sorted(candidate.headers.items())),
        "warc_path": candidate.warc_path,
        "crawl_id": candidate.crawl_id,
        "page": None
        if page is None
        else {
            "url": page.url,
            "title": page.title,
            "text": page.text,
            "alt": page.alt,
            "caption": page.caption,
            "credit": page.credit,
        },
    }


def _finding_json(
    finding: Finding, rechecks: Sequence[Recheck], mark_box: Box | None, picture_error: str | None
) -> dict[str, Any]:
    body = finding.to_json()
    body["severity"] = severity_for(finding.verdict, finding.flags)
    body["transform"] = finding.transform
    body["explanation"] = _explanation(finding)
    body["flag_reasons"] = flag_reasons(finding)
    body["watermark"] = finding.reports.get("watermark")
    body["visible_mark_box"] = list(mark_box) if mark_box else None
    body["rechecks"] = [_recheck_json(r) for r in rechecks]
    body["status"] = None if not rechecks else ("online" if rechecks[-1].online else "removed")
    if picture_error:
        body["comparison_error"] = picture_error
    return body


def _facts(finding: Finding, candidate: Candidate, work: Work, contact: Contact) -> NoticeFacts:
    reasons = flag_reasons(finding)
    page = candidate.page
    return NoticeFacts(
        finding_id=finding.id,
        work_id=work.id,
        work_title=work.title,
        work_sha256=work.sha256,
        work_size=(work.width, work.height),
        work_registered_at=work.created_at,
        owner=work.owner,
        image_url=finding.image_url,
        image_sha256=finding.image_sha256,
        page_url=finding.page_url,
        page_title=page.title if page else None,
        fetched_at=candidate.fetched_at,
        verdict=finding.verdict,
        similarity=finding.similarity,
        flags=tuple(finding.flags),
        stripped=tuple(f"{f}: {reasons[f]}" for f in finding.flags if f in STRIPPING_FLAGS),
        match_summary=_match_summary(finding),
        contact_name=contact.name,
        contact_email=contact.email,
        contact_address=contact.address,
        contact_phone=contact.phone,
    )


def _report(
    finding: Finding,
    candidate: Candidate,
    work: Work,
    doc: dict[str, Any],
    dossier: DossierExport | None,
    rechecks: Sequence[Recheck],
    members: Sequence[Member],
    picture: bytes | None,
) -> ReportContent:
    page = candidate.page
    where = [("Image URL", finding.image_url)]
    if finding.page_url:
        where.insert(0, ("Page URL", finding.page_url))
    sections = [
        ReportSection(
            "Summary",
            [
                ("Verdict", f"{finding.verdict} (similarity {finding.similarity:.2f})"),
                ("Severity", str(doc["severity"])),
                ("Flags", ", ".join(finding.flags) or "none"),
                ("Found", finding.created_at.isoformat(timespec="seconds")),
                ("Status", doc["status"] or "not rechecked"),
            ],
        ),
        ReportSection("Where the copy was found", where, code=True),
        ReportSection(
            "The registered work",
            [
                ("Title", work.title or "(untitled)"),
                ("Owner", work.owner or "-"),
                ("Work id", work.id),
                ("Registered", work.created_at.isoformat(timespec="seconds")),
                ("Size", f"{work.width}x{work.height} {work.format}, {work.size_bytes} bytes"),
            ],
        ),
        ReportSection("Work SHA-256", [("Original", work.sha256), ("Pixels", work.pixel_sha256)], code=True),
        ReportSection(
            "The copy as fetched",
            [
                ("Fetched", _iso(candidate.fetched_at) or "unknown"),
                ("Page title", (page.title if page else None) or "-"),
                ("Alt text", (page.alt if page else None) or "-"),
                ("Caption", (page.caption if page else None) or "-"),
                ("Credit line", (page.credit if page else None) or "-"),
                ("Text around", ((page.text if page else None) or "-")[:1500]),
            ],
        ),
        ReportSection(
            "Copy SHA-256 and HTTP headers",
            [("SHA-256", finding.image_sha256), *sorted(candidate.headers.items())],
            code=True,
        ),
        ReportSection(
            "Why it is a copy",
            [(k, json.dumps(v, default=str)) for k, v in sorted(doc["explanation"].items())],
            note=_match_summary(finding),
        ),
        ReportSection("Flags and their reasons", sorted(doc["flag_reasons"].items())),
    ]
    if doc.get("watermark") is not None:
        wm = doc["watermark"]
        rows = (
            sorted((str(k), json.dumps(v, default=str)) for k, v in wm.items())
            if isinstance(wm, dict)
            else []
        )
        sections.append(ReportSection("Invisible watermark", rows))
    if dossier is not None:
        sections.append(
            ReportSection(
                "Authorship dossier",
                [
                    ("Entries", str(len(dossier.entries))),
                    ("Chain check", json.dumps(dossier.verification, sort_keys=True, default=str)[:600]),
                    ("Timestamp tokens", str(len(dossier.tokens))),
                    ("Process records", str(len(dossier.records))),
                ],
            )
        )
    if rechecks:
        sections.append(
            ReportSection(
                "Takedown tracking",
                [
                    (
                        r.checked_at.isoformat(timespec="seconds"),
                        f"{'online' if r.online else 'removed'} "
                        f"(page {r.page_status}, image {r.image_status})" + (f": {r.note}" if r.note else ""),
                    )
                    for r in rechecks
                ],
            )
        )
    sections.append(
        ReportSection(
            "Files in this bundle (SHA-256)",
            [(m.name, m.sha256) for m in members],
            code=True,
            note="manifest.json lists these and this report; manifest.sig is its Ed25519 signature.",
        )
    )
    return ReportContent(
        title="Evidence report: reuse of a registered image",
        subtitle=f"Finding {finding.id}: work {work.id} found at {finding.page_url or finding.image_url}",
        sections=sections,
        picture=picture,
        picture_caption="Left: the registered work. Right: the copy as fetched. Green: the region showing "
        "the work; yellow: the work's outline; red: the owner's visible mark; lines: matched keypoints.",
    )


# ------------------------------------------------------------------ writing


def write_bundle(bundle: Bundle, out: Path) -> Path:
    """Write the zip atomically (a temporary file beside ``out``, then a rename)."""
    if out.is_dir():
        raise EvidenceError(f"{out} is a directory; give a file name such as evidence.zip")
    directory = out.parent if str(out.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".export-", suffix=".zip")
        try:
            with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
                for name, data in bundle.files():
                    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.create_system = 3
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, data, compresslevel=6)
                zf.comment = _COMMENT_PREFIX + bundle.manifest_sha256.encode()
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise EvidenceError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return out


@dataclass
class ExportResult:
    finding_id: str
    path: Path
    manifest_sha256: str
    key_sha256: str
    members: list[Member]
    exported_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "finding_id": self.finding_id,
            "path": str(self.path),
            "manifest_sha256": self.manifest_sha256,
            "key_sha256": self.key_sha256,
            "exported_at": self.exported_at.isoformat(timespec="seconds"),
            "members": [m.entry() for m in self.members],
        }


class ExportLog(Protocol):
    def add_export(
        self, *, finding_id: str, path: str, manifest_sha256: str, key_sha256: str, members: int, at: datetime
    ) -> None: ...


def export_evidence(
    finding_id: str,
    out: Path,
    sources: EvidenceSources,
    *,
    log: ExportLog | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ExportResult:
    """Build, sign and write the bundle of ``finding_id`` to ``out``; record it in ``log``."""
    exported_at = now().replace(microsecond=0)
    bundle = build_bundle(finding_id, sources, exported_at=exported_at)
    write_bundle(bundle, out)
    result = ExportResult(
        finding_id,
        out,
        bundle.manifest_sha256,
        sources.key.fingerprint,
        [*bundle.members],
        exported_at,
    )
    if log is not None:
        log.add_export(
            finding_id=finding_id,
            path=str(out.resolve()),
            manifest_sha256=bundle.manifest_sha256,
            key_sha256=sources.key.fingerprint,
            members=len(bundle.members),
            at=exported_at,
        )
    return result


# ------------------------------------------------------------------ verifying


@dataclass
class Verification:
    """What :func:`verify_bundle` found. ``ok`` only when nothing at all is wrong."""

    path: str
    ok: bool = False
    signature_ok: bool | None = None
    key_sha256: str | None = None
    key_trusted: bool | None = None  # None: no trusted keys were given
    finding_id: str | None = None
    exported_at: str | None = None
    members: int = 0
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "signature_ok": self.signature_ok,
            "key_sha256": self.key_sha256,
            "key_trusted": self.key_trusted,
            "finding_id": self.finding_id,
            "exported_at": self.exported_at,
            "members": self.members,
            "changed": self.changed,
            "added": self.added,
            "missing": self.missing,
            "unsafe": self.unsafe,
            "problems": self.problems,
        }


def unsafe_name(name: str) -> str | None:
    """Why a member name could escape an extraction folder (zip-slip), or None when it is safe."""
    if not name or "\x00" in name:
        return "empty or NUL in the name"
    if "\\" in name:
        return "backslash in the name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if any(part in ("..", "") for part in PurePosixPath(name).parts[:-1]) or ".." in name.split("/"):
        return "'..' in the path"
    return None


def _hash_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with zf.open(info) as fh:
        while chunk := fh.read(1 << 20):
            size += len(chunk)
            if size > MAX_MEMBER_BYTES:
                raise EvidenceError(f"{info.filename} is larger than {MAX_MEMBER_BYTES} bytes")
            digest.update(chunk)
    return digest.hexdigest(), size


def _read_small(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int = 64 * 1024 * 1024) -> bytes:
    if info.file_size > limit:
        raise EvidenceError(f"{info.filename} is too large ({info.file_size} bytes)")
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise EvidenceError(f"{info.filename} is too large")
    return data


def verify_bundle(path: Path, *, trusted_keys: Sequence[str] = ()) -> Verification:
    """Check every member's hash and size against the manifest, the manifest's signature, and
    the member names. Reads in memory only; never extracts. ``trusted_keys`` are key
    fingerprints (SHA-256 of the raw public key) the signer must be one of, when given."""
    v = Verification(path=str(path))
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        v.problems.append(f"cannot open {path} as a zip file: {exc}")
        return v
    with zf:
        infos: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            reason = unsafe_name(info.filename)
            if reason is not None:
                v.unsafe.append(info.filename)
                v.problems.append(f"unsafe member name {info.filename!r}: {reason}")
                continue
            if info.filename in infos:
                v.problems.append(f"member {info.filename} appears twice")
                v.changed.append(info.filename)
                continue
            infos[info.filename] = info
        manifest = _check_manifest(zf, infos, v)
        if manifest is not None:
            _check_members(zf, infos, manifest, v)
        if trusted_keys and v.key_sha256 is not None:
            v.key_trusted = v.key_sha256 in trusted_keys
            if not v.key_trusted:
                v.problems.append(f"signed by key {v.key_sha256[:16]}…, which is not a trusted key")
    v.changed = sorted(set(v.changed))
    v.ok = (
        not v.problems
        and not v.changed
        and not v.added
        and not v.missing
        and not v.unsafe
        and v.signature_ok is True
        and v.key_trusted is not False
    )
    return v


def _check_manifest(
    zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], v: Verification
) -> dict[str, Any] | None:
    for name in (MANIFEST, SIGNATURE, PUBLIC_KEY):
        if name not in infos:
            v.missing.append(name)
    if MANIFEST not in infos:
        v.problems.append("no manifest.json: nothing can be checked")
        return None
    try:
        manifest_bytes = _read_small(zf, infos[MANIFEST])
    except (EvidenceError, zipfile.BadZipFile) as exc:
        v.changed.append(MANIFEST)
        v.problems.append(f"manifest.json cannot be read: {exc}")
        return None
    _check_signature(zf, infos, manifest_bytes, v)
    try:
        manifest = json.loads(manifest_bytes)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("members"), list):
            raise ValueError("not a bundle manifest")
    except ValueError as exc:
        v.changed.append(MANIFEST)
        v.problems.append(f"manifest.json cannot be read: {exc}")
        return None
    v.finding_id = manifest.get("finding_id")
    v.exported_at = manifest.get("exported_at")
    if manifest.get("format") != BUNDLE_FORMAT:
        v.problems.append(f"unknown bundle format {manifest.get('format')!r}")
    declared_key = (manifest.get("signature") or {}).get("key_sha256")
    if declared_key and v.key_sha256 and declared_key != v.key_sha256:
        v.changed.append(PUBLIC_KEY)
        v.problems.append("public_key.pem is not the key the manifest names")
    return manifest


def _check_signature(
    zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], manifest_bytes: bytes, v: Verification
) -> None:
    if SIGNATURE not in infos or PUBLIC_KEY not in infos:
        v.signature_ok = False
        return
    try:
        signature = _read_small(zf, infos[SIGNATURE], 1024)
        public = load_public_pem(_read_small(zf, infos[PUBLIC_KEY], 64 * 1024))
    except (EvidenceError, SigningError, zipfile.BadZipFile) as exc:
        v.signature_ok = False
        v.problems.append(f"the signature cannot be checked: {exc}")
        return
    v.key_sha256 = key_fingerprint(public)
    v.signature_ok = verify_signature(public, manifest_bytes, signature)
    if not v.signature_ok:
        v.changed.append(_suspect(zf, manifest_bytes))
        v.problems.append(
            "the signature does not match manifest.json: manifest.json or manifest.sig was changed"
        )


def _suspect(zf: zipfile.ZipFile, manifest_bytes: bytes) -> str:
    """Which of manifest.json and manifest.sig was changed: the zip comment records the hash of
    the manifest as written (a hint for the message only; the check itself failed either way)."""
    comment = zf.comment
    if comment.startswith(_COMMENT_PREFIX):
        recorded = comment[len(_COMMENT_PREFIX) :].decode("ascii", "replace")
        if recorded == hashlib.sha256(manifest_bytes).hexdigest():
            return SIGNATURE
    return MANIFEST


def _check_members(
    zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], manifest: dict[str, Any], v: Verification
) -> None:
    listed: dict[str, dict[str, Any]] = {}
    for entry in manifest["members"]:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or unsafe_name(name) is not None:
            v.problems.append(f"the manifest lists an unsafe or invalid name {name!r}")
            continue
        listed[name] = entry
    v.members = len(listed)
    for name, entry in sorted(listed.items()):
        info = infos.get(name)
        if info is None:
            v.missing.append(name)
            continue
        if info.file_size > MAX_MEMBER_BYTES:
            v.changed.append(name)
            v.problems.append(f"{name} declares {info.file_size} bytes")
            continue
        try:
            digest, size = _hash_member(zf, info)
        except (zipfile.BadZipFile, EvidenceError, OSError, EOFError) as exc:
            v.changed.append(name)
            v.problems.append(f"{name} cannot be read: {exc}")
            continue
        if digest != entry.get("sha256") or size != entry.get("size"):
            v.changed.append(name)
    for name in sorted(infos):
        if name not in listed and name not in (MANIFEST, SIGNATURE):
            v.added.append(name)
    v.missing = sorted(set(v.missing))
