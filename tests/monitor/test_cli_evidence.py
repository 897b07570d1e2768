"""End to end through the real stores and the CLI: a finding written by discovery, its alert,
``alerts``/``alerts ack``, ``export``/``verify`` and ``recheck`` against a loopback server."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.app import Monitor, open_monitor
from monitor.cli import app
from monitor.discovery import CapturedImage, NewFinding
from monitor.findings import Finding, PageCapture
from monitor.services import analyse_bytes, load_matcher
from monitor.settings import load_settings
from tests.monitor.evidence_fakes import CHINA, http_server, reused_copy

PAGE = b"<!doctype html><html><body><p>A poem</p><img src='/img/summer.jpg' alt='temple'></body></html>"


def run(*args: str) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(app, list(args))
    lines = (
        [json.loads(line) for line in result.stdout.splitlines() if line.strip()] if "--json" in args else []
    )
    return result.exit_code, lines, result.stdout + result.stderr


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Monitor, Finding, object]]:
    monkeypatch.setenv("MONITOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MONITOR_ALLOW_PRIVATE_ADDRESSES", "true")
    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    code, [registered], _ = run(
        "register", str(CHINA), "--title", "Summer Palace", "--owner", "Ada", "--json"
    )
    assert code == 0 and registered["status"] == "ok"
    mon = open_monitor(load_settings())
    data = reused_copy()
    with http_server() as server:
        server.routes["/post.html"] = (200, "text/html", PAGE)
        server.routes["/img/summer.jpg"] = (200, "image/jpeg", data)
        sha = mon.blobs.put(data)
        warc = mon.settings.home / "warc" / "crawl.warc.gz"
        warc.parent.mkdir(parents=True)
        warc.write_bytes(b"WARC/1.0 stand-in")
        candidate, _ = mon.discovery.add_candidate(
            CapturedImage(
                image_url=f"{server.base}/img/summer.jpg",
                page=PageCapture(url=f"{server.base}/post.html", title="Summer", text="A poem"),
                sha256=sha,
                headers={"content-type": "image/jpeg"},
                fetched_at=datetime.now(UTC),
                warc_path="warc/crawl.warc.gz",
            )
        )
        matcher = load_matcher(mon.registry, mon.settings, persist=False)
        [match] = analyse_bytes(
            data, source=candidate.image_url, matcher=matcher, registry=mon.registry, settings=mon.settings
        ).matches
        _, [finding] = mon.discovery.complete_candidate(
            candidate.id,
            findings=[
                NewFinding(
                    work_id=match.work_id,
                    verdict=match.verdict,
                    similarity=match.similarity,
                    flags=match.flags,
                    region=match.region,
                    details=json.loads(json.dumps(match.details)),
                    reports={},
                    transform=match.transform.tolist(),
                )
            ],
        )
        yield mon, finding, server


def test_alerts_listing_and_ack(world: tuple[Monitor, Finding, object]) -> None:
    mon, finding, _ = world
    assert run("alerts", "--json")[:2] == (0, [])
    outcome = mon.raise_alert(finding)
    assert outcome.status == "created"
    code, [line], _ = run("alerts", "--json")
    assert code == 0 and line["finding_id"] == finding.id and line["acked_at"] is None
    assert run("alerts", "--since", "1h", "--json")[1] != []
    assert run("alerts", "--since", "2999-01-01", "--json")[1] == []
    code, [acked], _ = run("alerts", "ack", str(line["alert_id"]), "--json")
    assert code == 0 and acked["acked_at"] is not None
    assert run("alerts", "--unacked", "--json")[1] == []
    code, _, text = run("alerts", "ack", "no-such-alert")
    assert code == 2 and "no alert" in text and "Traceback" not in text
    assert run("alerts", "--since", "yesterday")[0] == 2


def test_export_then_verify_then_tamper(world: tuple[Monitor, Finding, object], tmp_path: Path) -> None:
    _, finding, _ = world
    out = tmp_path / "evidence.zip"
    code, [line], _ = run("export", finding.id, "--out", str(out), "--json")
    assert code == 0 and Path(str(line["path"])) == out
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        members = {n: zf.read(n) for n in names}
    # the real dossier of the registration, and the crawl's WARC, are in the bundle
    assert {"dossier/entries.json", "dossier/verification.json", "candidate/capture.warc.gz"} <= names
    assert json.loads(members["dossier/verification.json"])["ok"] is True
    code, [result], _ = run("verify", str(out), "--json")
    assert code == 0 and result["ok"] is True
    code, _, text = run("verify", str(out))
    assert code == 0 and "intact" in text
    members["notice-dmca.txt"] = members["notice-dmca.txt"].replace(b"Summer", b"Winter")
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    code, [result], _ = run("verify", str(bad), "--json")
    assert code == 1 and result["changed"] == ["notice-dmca.txt"]
    code, _, text = run("verify", str(bad))
    assert code == 1 and "changed: notice-dmca.txt" in text
    code, _, text = run("export", "no-such-finding", "--out", str(tmp_path / "x.zip"))
    assert code == 2 and "no-such-finding" in text and "Traceback" not in text


def test_recheck_records_the_history(world: tuple[Monitor, Finding, object]) -> None:
    _, finding, server = world
    code, [first], _ = run("recheck", finding.id, "--json")
    assert code == 0 and first["status"] == "online"
    del server.routes["/img/summer.jpg"]  # type: ignore[attr-defined]
    code, [second], _ = run("recheck", finding.id, "--json")
    assert code == 0 and second["status"] == "removed"
    assert [h["online"] for h in second["history"]] == [True, False]  # type: ignore[union-attr]
    code, _, text = run("recheck", finding.id)
    assert code == 0 and "removed" in text
