"""Visible marks and copyright metadata: stamping, and the scan-time attribution flags.

The motivating case: a work published with the artist's handle in the bottom-right corner,
then found (a) cropped to lose the corner, (b) with the corner inpainted, (c) untouched but
recompressed. Flags in (a) and (b), none in (c).
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from monitor.app import Monitor, open_monitor
from monitor.attribution import CORNERS, stamp_text
from monitor.cli import app
from monitor.provenance import read_provenance
from monitor.services import (
    RegisterOptions,
    RegisterResult,
    ScanResult,
    analyse_bytes,
    load_matcher,
    register_bytes,
)
from monitor.settings import load_settings
from tests.monitor.helpers import CHINA, PAINTING, fixture_bytes, fixture_image
from tests.monitor.metadata_helpers import jpeg_with_cmi

HANDLE = "@ada_draws"
FLAGS = {"visible_mark_cropped", "visible_mark_removed", "metadata_stripped"}


def jpeg(pixels: np.ndarray, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def inpaint(pixels: np.ndarray, box: list[int]) -> np.ndarray:
    x, y, w, h = box
    mask = np.zeros(pixels.shape[:2], np.uint8)
    mask[max(0, y - 2) : y + h + 2, max(0, x - 2) : x + w + 2] = 255
    bgr = np.ascontiguousarray(pixels[..., ::-1])
    return np.ascontiguousarray(cv2.inpaint(bgr, mask, 5, cv2.INPAINT_TELEA)[..., ::-1])


@pytest.fixture
def mon(tmp_path: Path) -> Monitor:
    return open_monitor(load_settings(home=tmp_path / "home"))


def register(mon: Monitor, data: bytes, path: Path, **options: Any) -> RegisterResult:
    result = register_bytes(
        data,
        path=str(path),
        registry=mon.registry,
        blobs=mon.blobs,
        settings=mon.settings,
        options=RegisterOptions(**options),
        steps=mon.registration_steps,
    )
    assert result.status == "ok", result.error
    return result


def scan(mon: Monitor, data: bytes) -> ScanResult:
    matcher = load_matcher(mon.registry, mon.settings, persist=False)
    return analyse_bytes(
        data,
        source="candidate",
        matcher=matcher,
        registry=mon.registry,
        settings=mon.settings,
        inspectors=mon.inspectors,
    )


def only_match(result: ScanResult, work_id: str | None) -> Any:
    assert result.status == "ok", result.error
    [match] = result.matches
    assert match.work_id == work_id
    return match


# ---------------------------------------------------------------------------- stamping


@pytest.mark.parametrize("corner", CORNERS)
def test_stamped_mark_lies_in_its_corner_and_changes_only_its_box(corner: str) -> None:
    original = fixture_bytes(CHINA)
    stamped = stamp_text(original, HANDLE, corner)
    before, after = rgb(original).astype(int), rgb(stamped.data).astype(int)
    h, w = before.shape[:2]
    x, y, bw, bh = stamped.box
    assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h
    assert (x + bw / 2 > w / 2) == (corner in ("br", "tr"))
    assert (y + bh / 2 > h / 2) == (corner in ("br", "bl"))
    assert bh >= 0.04 * min(w, h)  # readable: relative to the picture
    diff = np.abs(after - before).sum(axis=2)
    inside = diff[y : y + bh, x : x + bw]
    outside = diff.copy()
    outside[y : y + bh, x : x + bw] = 0
    assert inside.max() > 150  # the mark is plainly visible
    assert outside.mean() < 6  # elsewhere only re-encoding noise


def test_stamping_keeps_the_metadata() -> None:
    original = jpeg_with_cmi(fixture_image(CHINA))
    stamped = stamp_text(original, HANDLE, "br")
    assert set(read_provenance(stamped.data).cmi()) == set(read_provenance(original).cmi())
    assert stamped.suffix == ".jpg"


# ---------------------------------------------------------------------------- the motivating case


def test_cropped_inpainted_and_recompressed_copies_of_a_marked_work(mon: Monitor, tmp_path: Path) -> None:
    original = tmp_path / "harbour.jpg"
    original.write_bytes(fixture_bytes(CHINA))
    result = register(mon, original.read_bytes(), original, add_visible_mark=HANDLE, visible_mark_corner="br")
    box = result.extra["visible_mark"]["box"]
    published_path = Path(result.extra["published_path"])
    assert published_path == tmp_path / "harbour.published.jpg"
    published = rgb(published_path.read_bytes())
    h, w = published.shape[:2]
    x, y, bw, bh = box
    assert x > w / 2 and y > h / 2  # bottom right

    # (a) cropped to remove the corner
    match = only_match(scan(mon, jpeg(published[: y - 4, : x - 4])), result.work_id)
    assert "visible_mark_cropped" in match.flags and "visible_mark_removed" not in match.flags
    assert match.details["visible_mark"]["visible_fraction"] == 0.0

    # (b) the corner inpainted with OpenCV
    match = only_match(scan(mon, jpeg(inpaint(published, box))), result.work_id)
    assert "visible_mark_removed" in match.flags and "visible_mark_cropped" not in match.flags
    mark = match.details["visible_mark"]
    assert mark["verdict"] == "removed"
    assert mark["mark_similarity"] < 0.5 <= mark["surround_similarity"]
    assert mark["visible_fraction"] == 1.0
    bx, by, bbw, bbh = mark["box_in_candidate"]
    assert abs(bx - x) <= 3 and abs(by - y) <= 3 and abs(bbw - bw) <= 4 and abs(bbh - bh) <= 4

    # (c) untouched but recompressed (and resized): no attribution flag
    for candidate in (jpeg(published, 60), jpeg(cv2.resize(published, (w * 2 // 3, h * 2 // 3)), 80)):
        match = only_match(scan(mon, candidate), result.work_id)
        assert not FLAGS & set(match.flags), match.flags
        assert match.details["visible_mark"]["verdict"] == "present"
        assert match.details["visible_mark"]["mark_similarity"] > 0.8

    # (d) a negative of the published copy: the mark is judged on the pixels inverted back
    match = only_match(scan(mon, jpeg(255 - published, 85)), result.work_id)
    assert "inverted" in match.flags and not FLAGS & set(match.flags), match.flags
    assert match.details["visible_mark"]["verdict"] == "present"
    match = only_match(scan(mon, jpeg(255 - inpaint(published, box), 85)), result.work_id)
    assert "inverted" in match.flags and "visible_mark_removed" in match.flags

    # the unmarked original itself (say, leaked) is told apart from a removal
    match = only_match(scan(mon, original.read_bytes()), result.work_id)
    assert match.details["visible_mark"]["verdict"] == "unmarked_original"
    assert not FLAGS & set(match.flags)

    # the dossier holds the published copy's record
    kinds = [e.kind for e in mon.dossiers.entries(str(result.work_id))]
    assert kinds == ["registered", "published_copy"]


def test_a_declared_mark_painted_over(mon: Monitor, tmp_path: Path) -> None:
    # The artist's own signature is already on the picture; they declare its box.
    signed = stamp_text(fixture_bytes(PAINTING), "A. Lovelace", "bl", font_fraction=0.07)
    path = tmp_path / "signed.jpg"
    result = register(mon, signed.data, path, visible_mark=signed.box)
    assert result.extra["visible_mark"] == {"box": list(signed.box), "source": "declared", "text": None}
    assert "published_path" not in result.extra  # nothing stamped, nothing written
    pixels = rgb(signed.data).copy()
    x, y, w, h = signed.box
    painted = pixels.copy()
    painted[y : y + h, x : x + w] = np.median(pixels[y - 10 : y, x : x + w].reshape(-1, 3), axis=0)
    match = only_match(scan(mon, jpeg(painted)), result.work_id)
    assert "visible_mark_removed" in match.flags
    match = only_match(scan(mon, jpeg(pixels, 75)), result.work_id)
    assert "visible_mark_removed" not in match.flags


def test_a_box_outside_the_image_is_an_error_on_the_line(mon: Monitor, tmp_path: Path) -> None:
    result = register_bytes(
        fixture_bytes(CHINA),
        path=str(tmp_path / "x.jpg"),
        registry=mon.registry,
        blobs=mon.blobs,
        settings=mon.settings,
        options=RegisterOptions(visible_mark=(300, 200, 200, 100)),
        steps=mon.registration_steps,
    )
    assert result.status == "error" and "not inside" in (result.error or "")


def test_no_flags_for_a_work_without_mark_or_metadata(mon: Monitor, tmp_path: Path) -> None:
    result = register(mon, fixture_bytes(CHINA), tmp_path / "plain.jpg")
    assert mon.dossiers.get_attribution(str(result.work_id)) is None
    pixels = rgb(fixture_bytes(CHINA))
    match = only_match(scan(mon, jpeg(inpaint(pixels[:200, :300], [250, 180, 40, 12]))), result.work_id)
    assert not FLAGS & set(match.flags)
    assert "visible_mark" not in match.details and "metadata_removed" not in match.details


# ---------------------------------------------------------------------------- metadata


def test_stripped_metadata_is_flagged_and_kept_metadata_is_not(mon: Monitor, tmp_path: Path) -> None:
    data = jpeg_with_cmi(fixture_image(CHINA), quality=92)
    result = register(mon, data, tmp_path / "cmi.jpg")
    record = mon.dossiers.get_attribution(str(result.work_id))
    assert record is not None and record.mark is None
    assert {"EXIF:Copyright", "XMP:dc:rights", "IPTC:CopyrightNotice"} <= set(record.cmi)

    with Image.open(io.BytesIO(data)) as img:
        stripped = io.BytesIO()
        img.save(stripped, "JPEG", quality=80)  # Pillow writes no EXIF/XMP unless asked
        kept = io.BytesIO()
        img.save(kept, "JPEG", quality=80, exif=img.info["exif"], xmp=img.info["xmp"])
    match = only_match(scan(mon, stripped.getvalue()), result.work_id)
    assert "metadata_stripped" in match.flags
    assert set(match.details["metadata_removed"]) == set(record.cmi)

    match = only_match(scan(mon, kept.getvalue()), result.work_id)
    # EXIF and XMP kept; the IPTC block (APP13) is what this re-save lost
    assert set(match.details["metadata_removed"]) == {"IPTC:By-line", "IPTC:CopyrightNotice", "IPTC:Credit"}

    kept_all = mon.blobs.get(record.published_sha256)
    match = only_match(scan(mon, kept_all), result.work_id)
    assert "metadata_stripped" not in match.flags and match.details["metadata_removed"] == []


def test_metadata_resave_keeping_exif_and_xmp_is_not_flagged(mon: Monitor, tmp_path: Path) -> None:
    data = jpeg_with_cmi(fixture_image(CHINA), iptc=False)
    result = register(mon, data, tmp_path / "cmi.jpg")
    with Image.open(io.BytesIO(data)) as img:
        kept = io.BytesIO()
        img.save(kept, "JPEG", quality=75, exif=img.info["exif"], xmp=img.info["xmp"])
        stripped = io.BytesIO()
        img.save(stripped, "JPEG", quality=75)
    match = only_match(scan(mon, kept.getvalue()), result.work_id)
    assert "metadata_stripped" not in match.flags and match.details["metadata_removed"] == []
    match = only_match(scan(mon, stripped.getvalue()), result.work_id)
    assert "metadata_stripped" in match.flags
    assert "EXIF:Copyright" in match.details["metadata_removed"]


# ---------------------------------------------------------------------------- CLI


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("MONITOR_HOME", str(h))
    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    monkeypatch.delenv("MONITOR_TSA_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return h


def run(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = CliRunner().invoke(app, list(args))
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.strip()] if "--json" in args else []
    return result.exit_code, lines, result.stdout


def test_cli_register_scan_dossier_and_verify(home: Path, tmp_path: Path) -> None:
    work = tmp_path / "harbour.jpg"
    work.write_bytes(jpeg_with_cmi(fixture_image(CHINA)))
    log_dir = tmp_path / "process"
    log_dir.mkdir()
    (log_dir / "final.jpg").write_bytes(work.read_bytes())
    (log_dir / "notes.txt").write_text("two evenings")
    code, [line], _ = run(
        "register",
        str(work),
        "--add-visible-mark",
        HANDLE,
        "--corner",
        "br",
        "--process",
        str(log_dir),
        "--json",
    )
    assert code == 0 and line["status"] == "ok", line
    work_id = line["work_id"]
    published = Path(line["published_path"])
    assert published.is_file() and line["visible_mark"]["box"]
    assert "EXIF:Copyright" in line["cmi"]
    assert line["dossier"]["process"]["chosen"] == ["final.jpg"]

    pixels = rgb(published.read_bytes())
    x, y, _, _ = line["visible_mark"]["box"]
    (tmp_path / "found").mkdir()
    (tmp_path / "found" / "cropped.jpg").write_bytes(jpeg(pixels[: y - 4, : x - 4]))
    (tmp_path / "found" / "inpainted.jpg").write_bytes(jpeg(inpaint(pixels, line["visible_mark"]["box"])))
    code, results, _ = run("scan", str(tmp_path / "found"), "--json")
    assert code == 0
    by_name = {Path(r["source"]).name: r for r in results}
    cropped = by_name["cropped.jpg"]["matches"][0]
    assert {"visible_mark_cropped", "metadata_stripped"} <= set(cropped["flags"])
    assert "EXIF:Copyright" in cropped["details"]["metadata_removed"]
    inpainted = by_name["inpainted.jpg"]["matches"][0]
    assert "visible_mark_removed" in inpainted["flags"]
    assert inpainted["details"]["visible_mark"]["verdict"] == "removed"

    code, entries, _ = run("dossier", work_id, "--json")
    assert code == 0 and [e["kind"] for e in entries] == ["registered", "process", "published_copy"]
    assert entries[0]["payload"]["provenance"]["sources"]["exif"]["Artist"] == "Ada Lovelace"
    assert entries[1]["prev_hash"] == entries[0]["entry_hash"]
    code, _, text = run("dossier", work_id)
    assert code == 0 and "published_copy" in text and "generation log" in text

    code, [report], _ = run("dossier", work_id, "--verify", "--json")
    assert code == 0 and report["ok"] is True and report["entries"] == 3

    with sqlite3.connect(home / "monitor.db") as db:
        db.execute(
            "UPDATE dossier_entries SET payload = replace(payload, 'two evenings', 'one evening') "
            "WHERE work_id = ? AND seq = 2",
            (work_id,),
        )
    code, [report], _ = run("dossier", work_id, "--verify", "--json")
    assert code == 1 and report["ok"] is False
    assert report["problems"][0]["seq"] == 2
    code, _, text = run("dossier", work_id, "--verify")
    assert code == 1 and "BROKEN" in text

    code, _, _ = run("dossier", "nosuchwork", "--json")
    assert code == 2


def test_cli_dossier_with_a_local_tsa(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.tsa import local_tsa

    work = tmp_path / "w.jpg"
    work.write_bytes(fixture_bytes(CHINA))
    with local_tsa() as tsa:
        monkeypatch.setenv("MONITOR_TSA_URL", tsa.url)
        code, [line], _ = run("register", str(work), "--json")
        assert code == 0 and line["status"] == "ok"
    (tmp_path / "tsa.pem").write_bytes(tsa.ca_pem)
    monkeypatch.setenv("MONITOR_DOSSIER__TSA_CERTS", str(tmp_path / "tsa.pem"))
    code, [report], _ = run("dossier", line["work_id"], "--verify", "--json")
    assert code == 0 and report["ok"]
    assert [t["status"] for t in report["timestamps"]] == ["valid"]
    assert report["timestamps"][0]["trusted"] is True


def test_stamping_an_exif_rotated_photo_marks_the_corner_as_displayed() -> None:
    from monitor.images import decode_full_pixels

    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90° clockwise
    buf = io.BytesIO()
    fixture_image(CHINA).save(buf, "JPEG", quality=92, exif=exif.tobytes())
    stamped = stamp_text(buf.getvalue(), HANDLE, "br")
    with Image.open(io.BytesIO(stamped.data)) as img:
        assert img.getexif().get(0x0112) == 1
    shown = decode_full_pixels(stamped.data).astype(int)
    before = decode_full_pixels(buf.getvalue()).astype(int)
    assert shown.shape == before.shape == (384, 257, 3)
    x, y, w, h = stamped.box
    assert x > 257 / 2 and y > 384 / 2
    assert np.abs(shown - before)[y : y + h, x : x + w].max() > 150
