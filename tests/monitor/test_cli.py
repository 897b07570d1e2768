"""The CLI contract: ``register`` / ``scan`` / ``works`` JSON lines, exit codes, no tracebacks."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from monitor.cli import app
from monitor.demo import DATA, serve_directory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "images"
RETINA = FIXTURES / "pypi-scikit-image__retina.jpg"
DEMO_WORKS = DATA / "works"

REGISTER_KEYS = {"work_id", "path", "sha256", "status", "error"}
SCAN_KEYS = {"source", "page_url", "sha256", "status", "error", "matches"}
REPORT_KEYS = {"watermark", "attribution"}
MATCH_KEYS = {"work_id", "verdict", "similarity", "flags", "region", "details"}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("MONITOR_HOME", str(h))
    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no config/monitor.toml from the repo
    return h


def run(*args: str) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(app, list(args))
    lines = (
        [json.loads(line) for line in result.stdout.splitlines() if line.strip()] if "--json" in args else []
    )
    return result.exit_code, lines, result.stdout


def jpeg(img: Image.Image, path: Path, quality: int = 80) -> Path:
    img.convert("RGB").save(path, "JPEG", quality=quality)
    return path


def test_register_directory_reports_each_item_and_goes_on_past_bad_ones(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "works"
    (src / "nested").mkdir(parents=True)
    (src / "a.jpg").write_bytes(RETINA.read_bytes())
    (src / "nested" / "b.jpg").write_bytes((DEMO_WORKS / "thug.jpg").read_bytes())
    (src / "broken.jpg").write_bytes(RETINA.read_bytes()[:2000])
    (src / "page.png").write_bytes(b"<!doctype html><html><body>not an image</body></html>")
    code, lines, _ = run("register", str(src), "--json", "--owner", "Ada")
    assert code == 0
    assert len(lines) == 4
    by_name = {Path(str(line["path"])).name: line for line in lines}
    for line in lines:
        assert set(line) == REGISTER_KEYS
    for name in ("a.jpg", "b.jpg"):
        ok = by_name[name]
        assert ok["status"] == "ok" and ok["error"] is None
        assert isinstance(ok["work_id"], str) and ok["work_id"]
        assert isinstance(ok["sha256"], str) and len(ok["sha256"]) == 64
    assert by_name["broken.jpg"]["status"] == "error"
    assert str(by_name["broken.jpg"]["error"]).startswith("truncated")
    assert by_name["page.png"]["status"] == "error"
    assert str(by_name["page.png"]["error"]).startswith("not_an_image")
    assert by_name["broken.jpg"]["work_id"] is None

    # the same bytes again: the same work id, nothing new
    code, again, _ = run("register", str(src / "a.jpg"), "--json")
    assert code == 0 and again[0]["work_id"] == by_name["a.jpg"]["work_id"]
    code, works, _ = run("works", "--json")
    assert code == 0 and len(works) == 2
    assert {w["owner"] for w in works} == {"Ada"}


def test_scan_finds_crop_mirror_and_exact_copy_and_not_unrelated(home: Path, tmp_path: Path) -> None:
    code, reg, _ = run("register", str(DEMO_WORKS), "--json")
    assert code == 0 and all(r["status"] == "ok" for r in reg)
    ids = {Path(str(r["path"])).name: r["work_id"] for r in reg}

    thug = Image.open(DEMO_WORKS / "thug.jpg")
    w, h = thug.size
    cands = tmp_path / "cands"
    cands.mkdir()
    jpeg(thug.crop((0, 0, int(w * 0.7), int(h * 0.75))), cands / "crop.jpg", 70)
    jpeg(ImageOps.mirror(Image.open(DEMO_WORKS / "temple.jpg")), cands / "mirror.jpg", 85)
    (cands / "copy.jpg").write_bytes((DEMO_WORKS / "sky-cow.jpg").read_bytes())
    (cands / "unrelated.jpg").write_bytes(RETINA.read_bytes())
    (cands / "empty.jpg").write_bytes(b"")

    code, lines, _ = run("scan", str(cands), "--json")
    assert code == 0
    by_name = {Path(str(line["source"])).name: line for line in lines}
    assert set(by_name) == {"crop.jpg", "mirror.jpg", "copy.jpg", "unrelated.jpg", "empty.jpg"}
    for line in lines:
        assert set(line) == SCAN_KEYS
        assert line["page_url"] is None
        for m in line["matches"]:  # type: ignore[union-attr]
            # the fixed keys, plus the reports of the inspectors (e.g. "watermark")
            assert MATCH_KEYS <= set(m) <= MATCH_KEYS | REPORT_KEYS
            assert 0.0 <= m["similarity"] <= 1.0
            assert len(m["region"]) == 4 and all(isinstance(v, int) for v in m["region"])
            json.dumps(m["details"])

    crop = by_name["crop.jpg"]["matches"]
    assert [m["work_id"] for m in crop] == [ids["thug.jpg"]]
    assert crop[0]["verdict"] == "partial"
    assert "cropped" in crop[0]["flags"] and "recompressed" in crop[0]["flags"]
    assert crop[0]["details"]["inliers"] >= 10

    mirror = by_name["mirror.jpg"]["matches"]
    assert [m["work_id"] for m in mirror] == [ids["temple.jpg"]]
    assert "mirrored" in mirror[0]["flags"]

    copy = by_name["copy.jpg"]["matches"]
    assert copy[0]["work_id"] == ids["sky-cow.jpg"] and copy[0]["verdict"] == "exact"
    assert copy[0]["similarity"] == 1.0

    assert by_name["unrelated.jpg"]["matches"] == []
    assert by_name["unrelated.jpg"]["status"] == "ok"
    empty = by_name["empty.jpg"]
    assert empty["status"] == "error" and str(empty["error"]).startswith("empty") and empty["matches"] == []


def test_same_pixels_in_another_file_format_is_exact(home: Path, tmp_path: Path) -> None:
    run("register", str(RETINA), "--json")
    png = tmp_path / "same.png"
    Image.open(RETINA).save(png)
    code, lines, _ = run("scan", str(png), "--json")
    assert code == 0
    assert lines[0]["matches"][0]["verdict"] == "exact"  # type: ignore[index]


def test_scan_page_url_scans_its_images(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_ALLOW_PRIVATE_ADDRESSES", "true")
    code, reg, _ = run("register", str(DEMO_WORKS / "thug.jpg"), "--json")
    with serve_directory(DATA / "site") as base:
        code, lines, _ = run("scan", base + "index.html", "--json")
    assert code == 0
    assert {line["page_url"] for line in lines} == {base + "index.html"}
    found = {str(line["source"]).rsplit("/", 1)[-1]: line["matches"] for line in lines}
    assert set(found) == {"illustration.jpg", "temple-small.jpg", "hubble.jpg"}
    assert [m["work_id"] for m in found["illustration.jpg"]] == [reg[0]["work_id"]]  # type: ignore[union-attr]
    assert found["hubble.jpg"] == [] and found["temple-small.jpg"] == []


def test_loopback_urls_are_refused_by_default(home: Path) -> None:
    with serve_directory(DATA / "site") as base:
        code, lines, _ = run("scan", base + "hubble.jpg", "--json")
    assert code == 0
    assert lines[0]["status"] == "error" and str(lines[0]["error"]).startswith("fetch_refused")


def test_usage_errors_exit_2_and_failures_exit_1_without_traceback(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert CliRunner().invoke(app, ["scan"]).exit_code == 2
    assert CliRunner().invoke(app, ["register", "x.jpg", "--no-such-option"]).exit_code == 2
    monkeypatch.setenv("MONITOR_DATABASE_URL", "nosuchdb://nowhere/x")
    result = CliRunner().invoke(app, ["works"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "nosuchdb" in result.output and "database" in result.output


def _subprocess_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["MONITOR_HOME"] = str(home)
    return env


def test_json_mode_prints_nothing_but_json_lines_from_the_real_entry_point(
    home: Path, tmp_path: Path
) -> None:
    env = _subprocess_env(home)
    cmd = [sys.executable, "-m", "monitor.cli"]
    reg = subprocess.run(
        [*cmd, "register", str(DEMO_WORKS), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert reg.returncode == 0, reg.stderr
    assert [json.loads(line)["status"] for line in reg.stdout.splitlines()] == ["ok"] * 3
    missing = tmp_path / "missing.jpg"
    scan = subprocess.run(
        [*cmd, "scan", str(DEMO_WORKS / "thug.jpg"), str(missing), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert scan.returncode == 0, scan.stderr
    lines = [json.loads(line) for line in scan.stdout.splitlines()]
    assert [line["status"] for line in lines] == ["ok", "error"]
    assert lines[0]["matches"][0]["verdict"] == "exact"
    assert "Traceback" not in scan.stderr


def test_demo_runs_on_a_fresh_home(home: Path) -> None:
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "2 of 3 images on the page show a registered work" in result.output
    assert not home.exists()  # the demo used a temporary home
    # the motivating case: signature corner cropped away, the invisible mark still read
    illustration = next(block for block in result.output.split("MATCH") if "illustration.jpg" in block)
    assert "partial" in illustration and "visible_mark_cropped" in illustration
    assert "watermark: found" in illustration and "published to site" in illustration


def test_human_output_names_matches(home: Path, tmp_path: Path) -> None:
    run("register", str(DEMO_WORKS / "thug.jpg"))
    buf = io.BytesIO()
    Image.open(DEMO_WORKS / "thug.jpg").resize((200, 233)).save(buf, "JPEG")
    (tmp_path / "small.jpg").write_bytes(buf.getvalue())
    code, _, text = run("scan", str(tmp_path / "small.jpg"))
    assert code == 0
    assert "MATCH" in text and "resized" in text


def test_a_directory_without_images_is_noted_on_stderr_not_passed_over_in_silence(
    home: Path, tmp_path: Path
) -> None:
    empty, full = tmp_path / "empty", tmp_path / "full"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("no pictures here")
    full.mkdir()
    (full / "a.jpg").write_bytes(RETINA.read_bytes())
    for command in ("register", "scan", "mark-check"):
        result = CliRunner().invoke(app, [command, str(empty), str(full), "--json"])
        assert result.exit_code == 0, result.output
        assert f"no image files in {empty}" in result.stderr
        assert str(full) not in result.stderr  # a folder with images gets no note
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        assert len(lines) == 1  # stdout stays JSON: the one image's line
