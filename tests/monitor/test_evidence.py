"""Evidence bundles: export, verify, tamper detection, zip-slip, reproducibility, the PDF."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import stat
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from monitor.evidence import (
    MANIFEST,
    SIGNATURE,
    PublishedCopy,
    build_bundle,
    export_evidence,
    unsafe_name,
    verify_bundle,
    write_bundle,
)
from monitor.signing import KEY_FILE, InstallationKey
from tests.monitor.evidence_fakes import Scenario, build_scenario

EXPECTED = {
    "candidate/capture.json",
    "candidate/image.jpg",
    "comparison.png",
    "dossier/entries.json",
    "dossier/records/001-prompt.txt",
    "dossier/tokens/01-entry-001.tsr",
    "dossier/verification.json",
    "finding.json",
    "manifest.json",
    "manifest.sig",
    "notice-cn.txt",
    "notice-dmca.txt",
    "notice-dsa.txt",
    "public_key.pem",
    "report.pdf",
    "work/original.jpg",
    "work/work.json",
}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(tmp_path_factory.mktemp("evidence"))


@pytest.fixture(scope="module")
def bundle_path(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "evidence.zip"
    export_evidence(scenario.finding.id, out, scenario.sources())
    return out


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _rewrite(src: Path, dst: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(src) as old:
        comment = old.comment
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.comment = comment
    return dst


def test_the_bundle_holds_every_member_listed_with_hash_size_and_role(bundle_path: Path) -> None:
    members = _members(bundle_path)
    assert set(members) == EXPECTED
    manifest = json.loads(members[MANIFEST])
    listed = {m["name"]: m for m in manifest["members"]}
    assert set(listed) == EXPECTED - {MANIFEST, SIGNATURE}
    for name, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256(members[name]).hexdigest()
        assert entry["size"] == len(members[name])
        assert entry["role"]
    assert listed["candidate/image.jpg"]["role"] == "candidate_image"
    assert listed["work/original.jpg"]["role"] == "work_original"
    assert listed["report.pdf"]["role"] == "report"
    assert len(members[SIGNATURE]) == 64


def test_the_bundle_carries_the_candidate_as_fetched_and_the_original(
    scenario: Scenario, bundle_path: Path
) -> None:
    members = _members(bundle_path)
    assert members["candidate/image.jpg"] == scenario.candidate_bytes
    assert members["work/original.jpg"] == scenario.monitor.blobs.get(scenario.work.sha256)
    capture = json.loads(members["candidate/capture.json"])
    assert capture["image_url"] == scenario.finding.image_url
    assert capture["page"]["url"] == scenario.finding.page_url
    assert capture["page"]["title"] == "A poem about summer"
    assert capture["headers"]["content-type"] == "image/jpeg"
    assert capture["fetched_at"] == "2026-03-01T12:00:00+00:00"
    finding = json.loads(members["finding.json"])
    assert finding["explanation"]["inliers"] >= 10
    assert len(finding["explanation"]["transform"]) == 2
    assert set(finding["flag_reasons"]) == set(scenario.finding.flags)
    assert "of its area" in finding["flag_reasons"]["cropped"]
    assert finding["watermark"] == {"expected": True, "found": False, "copy_id": None, "confidence": 0.1}
    work = json.loads(members["work/work.json"])
    assert work["registered_at"] == scenario.work.created_at.isoformat()


def test_an_intact_bundle_verifies(bundle_path: Path) -> None:
    result = verify_bundle(bundle_path)
    assert result.ok, result.to_json()
    assert result.signature_ok and not (result.changed or result.added or result.missing)
    assert result.members == len(EXPECTED) - 2


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_any_byte_changed_in_any_member_is_named(bundle_path: Path, tmp_path: Path, name: str) -> None:
    members = _members(bundle_path)
    data = bytearray(members[name])
    data[len(data) // 2] ^= 0x01
    members[name] = bytes(data)
    result = verify_bundle(_rewrite(bundle_path, tmp_path / "t.zip", members))
    assert not result.ok
    assert name in result.changed
    if name in (MANIFEST, SIGNATURE):
        assert result.signature_ok is False


def test_added_and_removed_members_are_named(bundle_path: Path, tmp_path: Path) -> None:
    members = _members(bundle_path)
    del members["comparison.png"]
    members["extra/note.txt"] = b"slipped in"
    result = verify_bundle(_rewrite(bundle_path, tmp_path / "t.zip", members))
    assert not result.ok
    assert result.missing == ["comparison.png"]
    assert result.added == ["extra/note.txt"]
    assert result.signature_ok  # the manifest itself is intact


def test_a_resigned_bundle_fails_against_the_trusted_key(
    scenario: Scenario, bundle_path: Path, tmp_path: Path
) -> None:
    members = _members(bundle_path)
    forger = InstallationKey.load_or_create(tmp_path / "forger")
    manifest = json.loads(members[MANIFEST])
    manifest["signature"]["key_sha256"] = forger.fingerprint
    members[MANIFEST] = json.dumps(manifest).encode()
    members["public_key.pem"] = forger.public_pem()
    members[SIGNATURE] = forger.sign(members[MANIFEST])
    forged = _rewrite(bundle_path, tmp_path / "t.zip", members)
    real = InstallationKey.load_or_create(scenario.settings.home).fingerprint
    result = verify_bundle(forged, trusted_keys=[real])
    assert not result.ok and result.key_trusted is False
    assert verify_bundle(bundle_path, trusted_keys=[real]).ok


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "dossier/../../evil", "C:/evil", "a\\..\\b"])
def test_verify_refuses_unsafe_member_names(bundle_path: Path, tmp_path: Path, name: str) -> None:
    assert unsafe_name(name) is not None
    members = _members(bundle_path)
    members[name] = b"x"
    result = verify_bundle(_rewrite(bundle_path, tmp_path / "t.zip", members))
    assert not result.ok and result.unsafe == [name]
    assert not (tmp_path / "evil.txt").exists()


def test_not_a_zip_is_a_failed_verification_not_a_crash(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.zip"
    bogus.write_bytes(b"not a zip at all")
    result = verify_bundle(bogus)
    assert not result.ok and "zip" in result.problems[0]


def test_exports_are_reproducible_except_the_export_time(scenario: Scenario, tmp_path: Path) -> None:
    sources = scenario.sources()
    first = write_bundle(
        build_bundle(scenario.finding.id, sources, exported_at=datetime(2026, 3, 2, tzinfo=UTC)),
        tmp_path / "1.zip",
    )
    second = write_bundle(
        build_bundle(scenario.finding.id, sources, exported_at=datetime(2026, 3, 9, tzinfo=UTC)),
        tmp_path / "2.zip",
    )
    a, b = _members(first), _members(second)
    assert set(a) == set(b)
    differing = sorted(name for name in a if a[name] != b[name])
    assert differing == [MANIFEST, SIGNATURE]
    ma, mb = json.loads(a[MANIFEST]), json.loads(b[MANIFEST])
    assert ma.pop("exported_at") != mb.pop("exported_at")
    assert ma == mb
    with zipfile.ZipFile(first) as zf:
        names = [i.filename for i in zf.infolist()]
        assert names == sorted(names)
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_the_pdf_text_has_the_urls_and_hashes(scenario: Scenario, bundle_path: Path) -> None:
    pdf = _members(bundle_path)["report.pdf"]
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    compact = "".join(text.split())
    for needle in (
        scenario.finding.page_url,
        scenario.finding.image_url,
        scenario.finding.image_sha256,
        scenario.work.sha256,
        scenario.finding.id,
    ):
        assert needle and needle in compact, needle
    assert "visible_mark_cropped" in compact


def test_pdftotext_reads_the_report_when_installed(
    scenario: Scenario, bundle_path: Path, tmp_path: Path
) -> None:
    tool = shutil.which("pdftotext")
    if tool is None:
        pytest.skip("pdftotext (poppler-utils) is not installed; pypdf reads the text in the test above")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(_members(bundle_path)["report.pdf"])
    text = subprocess.run([tool, str(pdf), "-"], capture_output=True, check=True, text=True).stdout
    for needle in (scenario.finding.page_url, scenario.finding.image_sha256, scenario.work.sha256):
        assert needle and needle in text


def test_published_copies_and_the_mark_box_go_in(scenario: Scenario, tmp_path: Path) -> None:
    published = scenario.published
    published.copies[scenario.work.id] = [
        PublishedCopy("visibly marked", b"\x89PNG\r\n\x1a\nfake", channel="site")
    ]
    published.marks[scenario.work.id] = (300, 200, 80, 50)
    try:
        bundle = build_bundle(scenario.finding.id, scenario.sources())
    finally:
        published.copies.clear()
        published.marks.clear()
    by_name = {m.name: m for m in bundle.members}
    assert by_name["work/published-01-visibly-marked.png"].role == "work_published"
    finding = json.loads(by_name["finding.json"].data)
    assert finding["visible_mark_box"] == [300, 200, 80, 50]
    # the unreadable "published copy" cannot be drawn: the error is recorded, the export goes on
    assert "comparison_error" in finding and "comparison.png" not in by_name


def test_the_warc_captures_are_included(scenario: Scenario, tmp_path: Path) -> None:
    home = scenario.settings.home
    (home / "warc").mkdir(parents=True, exist_ok=True)
    (home / "warc" / "c.warc.gz").write_bytes(b"WARC bytes")
    from dataclasses import replace

    scenario.findings.candidates[scenario.candidate.id] = replace(
        scenario.candidate, warc_path="warc/c.warc.gz"
    )
    try:
        bundle = build_bundle(scenario.finding.id, scenario.sources())
        outside = replace(scenario.candidate, warc_path="../../etc/passwd")
        scenario.findings.candidates[scenario.candidate.id] = outside
        escaped = build_bundle(scenario.finding.id, scenario.sources())
    finally:
        scenario.findings.candidates[scenario.candidate.id] = scenario.candidate
    by_name = {m.name: m for m in bundle.members}
    assert by_name["candidate/capture.warc.gz"].data == b"WARC bytes"
    assert by_name["candidate/capture.warc.gz"].role == "warc"
    assert not any(m.role == "warc" for m in escaped.members)


def test_the_signing_key_is_private_and_stable(scenario: Scenario) -> None:
    path = scenario.settings.home / KEY_FILE
    first = InstallationKey.load_or_create(scenario.settings.home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert InstallationKey.load_or_create(scenario.settings.home).fingerprint == first.fingerprint


def test_a_stretched_copy_is_explained_with_its_ratio() -> None:
    from monitor.evidence import flag_reasons
    from monitor.findings import Finding

    finding = Finding(
        id="f", candidate_id="c", work_id="w", verdict="partial", similarity=0.9,
        flags=["cropped", "stretched"], region=(0, 0, 10, 10),
        details={"coverage_work": 0.62, "stretch": 1.35}, reports={}, image_url="http://x/i.jpg",
        image_sha256="0" * 64, page_url=None, created_at=datetime.now(UTC),
    )  # fmt: skip
    reasons = flag_reasons(finding)
    assert reasons["stretched"] == (
        "the work is stretched or squeezed to another aspect ratio "
        "(one direction scaled 1.35 times the other)"
    )
    assert "62%" in reasons["cropped"]
