"""The dossier: hash chain, idempotent appends, RFC 3161 tokens, generation logs."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import text

from monitor.app import Monitor, open_monitor
from monitor.dossier import (
    GENESIS,
    RfcTimestamper,
    append_entry,
    read_process_log,
    verify_chain,
    verify_token,
)
from monitor.errors import TimestampError
from monitor.registry import SqlDossierStore
from monitor.services import RegisterOptions, register_bytes
from monitor.settings import Settings, load_settings
from tests.monitor.metadata_helpers import A1111_PARAMETERS, png_with_text
from tests.tsa import LocalTsa, local_tsa


@pytest.fixture
def tsa() -> Iterator[LocalTsa]:
    with local_tsa() as server:
        yield server


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings(home=tmp_path / "home", **overrides)


def monitor_for(tmp_path: Path, **overrides: object) -> Monitor:
    return open_monitor(settings_for(tmp_path, **overrides))


def work_png(seed: int = 1, text_chunks: dict[str, str] | None = None) -> bytes:
    img = Image.effect_noise((64, 48), 40 + seed).convert("RGB")
    if text_chunks:
        return png_with_text(img, text_chunks)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def register(mon: Monitor, data: bytes, path: str = "work.png", **options: object) -> dict[str, object]:
    result = register_bytes(
        data,
        path=path,
        registry=mon.registry,
        blobs=mon.blobs,
        settings=mon.settings,
        options=RegisterOptions(**options),  # type: ignore[arg-type]
        steps=mon.registration_steps,
    )
    assert result.status == "ok", result.error
    return result.to_json()


def test_registration_records_provenance_once(tmp_path: Path) -> None:
    mon = monitor_for(tmp_path)
    data = work_png(text_chunks={"parameters": A1111_PARAMETERS})
    first = register(mon, data)
    register(mon, data)  # the same bytes again: nothing new
    entries = mon.dossiers.entries(str(first["work_id"]))
    assert [e.kind for e in entries] == ["registered"]
    entry = entries[0]
    assert entry.prev_hash == GENESIS and entry.content_hash == first["sha256"]
    assert entry.payload["work"]["sha256"] == first["sha256"]
    prov = entry.payload["provenance"]
    assert prov["generation"]["seed"] == 1234567890
    raw = prov["raw"]["png_text"]
    assert json.loads(mon.blobs.get(raw["sha256"]))["parameters"] == A1111_PARAMETERS
    assert entry.timestamp is None  # no TSA configured
    assert entry.created_at.tzinfo is not None
    assert verify_chain(entry.work_id, entries).ok
    # plain registration adds no keys to the register line
    assert set(first) == {"work_id", "path", "sha256", "status", "error"}


def test_chain_detects_altered_removed_and_reordered_entries(tmp_path: Path) -> None:
    mon = monitor_for(tmp_path)
    work_id = str(register(mon, work_png())["work_id"])
    store = mon.dossiers
    for n in range(3):
        append_entry(store, work_id, "note", {"n": n, "text": f"iteration {n}"})
    entries = store.entries(work_id)
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(entries))
    assert verify_chain(work_id, entries).ok

    engine = mon.registry.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE dossier_entries SET payload = :p WHERE work_id = :w AND seq = 3"),
            {"p": json.dumps({"n": 1, "text": "rewritten after the dispute"}), "w": work_id},
        )
    report = verify_chain(work_id, store.entries(work_id))
    assert not report.ok
    assert report.problems == [{"seq": 3, "problem": "entry hash does not match its content (altered)"}]

    assert not verify_chain(work_id, [entries[0], entries[2], entries[3]]).ok  # one removed
    assert not verify_chain(work_id, [entries[0], entries[2], entries[1], entries[3]]).ok  # reordered


def test_the_same_content_is_appended_once(tmp_path: Path) -> None:
    mon = monitor_for(tmp_path)
    work_id = str(register(mon, work_png())["work_id"])
    a, created_a = append_entry(mon.dossiers, work_id, "note", {"x": 1})
    b, created_b = append_entry(mon.dossiers, work_id, "note", {"x": 1})
    c, created_c = append_entry(mon.dossiers, work_id, "note", {"x": 2})
    assert created_a and not created_b and created_c
    assert a.entry_hash == b.entry_hash and c.seq == a.seq + 1


def test_entries_get_a_verified_rfc3161_token(tmp_path: Path, tsa: LocalTsa) -> None:
    mon = monitor_for(tmp_path, tsa_url=tsa.url)
    work_id = str(register(mon, work_png())["work_id"])
    [entry] = mon.dossiers.entries(work_id)
    assert entry.timestamp is not None and entry.timestamp.token and entry.timestamp.error is None
    assert entry.timestamp.time is not None
    info = verify_token(entry.timestamp.token, entry.entry_hash, trusted=[tsa.ca_pem])
    assert info["trusted"] is True and info["tsa"].endswith("CN=Test TSA")
    report = verify_chain(work_id, [entry], trusted_tsa=[tsa.ca_pem])
    assert report.ok and report.timestamps[0]["status"] == "valid"
    # the token is over this entry's hash, not another's
    with pytest.raises(TimestampError, match="imprint"):
        verify_token(entry.timestamp.token, hashlib.sha256(b"other").hexdigest())
    # a TSA we do not trust
    other = LocalTsa()
    with pytest.raises(TimestampError, match="not trusted"):
        verify_token(entry.timestamp.token, entry.entry_hash, trusted=[other.ca_pem])
    # a token whose signed content was changed
    token = bytearray(entry.timestamp.token)
    at = bytes(token).find(bytes.fromhex(entry.entry_hash))
    token[at] ^= 1
    with pytest.raises(TimestampError):
        verify_token(bytes(token), entry.entry_hash)


def test_an_unreachable_tsa_loses_the_token_not_the_entry(tmp_path: Path, tsa: LocalTsa) -> None:
    dead = tsa.url.rsplit(":", 1)[0] + ":9/tsr"  # discard port: nothing listens
    mon = monitor_for(tmp_path, tsa_url=dead, dossier={"tsa_timeout": 2.0})
    work_id = str(register(mon, work_png())["work_id"])
    [entry] = mon.dossiers.entries(work_id)
    assert entry.timestamp is not None and entry.timestamp.token is None
    assert "cannot be reached" in (entry.timestamp.error or "")
    report = verify_chain(work_id, [entry])
    assert report.ok and report.timestamps[0]["status"] == "missing"


@pytest.mark.parametrize(("mode", "message"), [("refuse", "refused"), ("wrong_nonce", "nonce")])
def test_a_misbehaving_tsa_is_recorded(tsa: LocalTsa, mode: str, message: str) -> None:
    tsa.mode = mode
    stamp = RfcTimestamper(tsa.url).stamp(hashlib.sha256(b"x").hexdigest())
    assert stamp.token is None and message in (stamp.error or "")


def make_process_folder(root: Path, chosen: bytes) -> Path:
    folder = root / "session"
    (folder / "iterations").mkdir(parents=True)
    for n in range(3):
        (folder / "iterations" / f"{n:02d}.png").write_bytes(
            work_png(seed=10 + n, text_chunks={"parameters": A1111_PARAMETERS.replace("1234567890", str(n))})
        )
    (folder / "iterations" / "03.png").write_bytes(chosen)
    (folder / "log.json").write_bytes(
        json.dumps({"discarded": ["iterations/01.png"], "tool": "a1111"}).encode()
    )
    (folder / "notes.txt").write_text("Kept the warmer palette; repainted the hands by hand.")
    (folder / "rejected-sketch.png").write_bytes(work_png(seed=30))
    (folder / ".DS_Store").write_bytes(b"junk")
    return folder


def test_process_log_items_are_stored_in_order_with_choices(tmp_path: Path) -> None:
    mon = monitor_for(tmp_path)
    chosen = work_png(seed=2)
    folder = make_process_folder(tmp_path, chosen)
    line = register(mon, chosen, process=folder)
    work_id = str(line["work_id"])
    dossier = line["dossier"]
    assert isinstance(dossier, dict) and dossier["process"]["created"] is True
    entries = mon.dossiers.entries(work_id)
    assert [e.kind for e in entries] == ["registered", "process"]
    items = entries[1].payload["items"]
    assert [i["path"] for i in items] == [
        "iterations/00.png",
        "iterations/01.png",
        "iterations/02.png",
        "iterations/03.png",
        "log.json",
        "notes.txt",
        "rejected-sketch.png",
    ]
    assert [i["order"] for i in items] == list(range(1, 8))
    status = {i["path"]: i["status"] for i in items}
    assert status["iterations/03.png"] == "chosen"  # the registered bytes
    assert status["iterations/01.png"] == "discarded"  # named by the JSON log
    assert status["rejected-sketch.png"] == "discarded"  # by its name
    assert status["iterations/00.png"] is None
    by_path = {i["path"]: i for i in items}
    assert by_path["iterations/02.png"]["provenance"]["generation"]["seed"] == 2
    assert by_path["notes.txt"]["excerpt"].startswith("Kept the warmer palette")
    assert by_path["log.json"]["keys"] == ["discarded", "tool"]
    for item in items:  # every item is kept by its hash
        assert hashlib.sha256(mon.blobs.get(item["sha256"])).hexdigest() == item["sha256"]
    assert entries[1].payload["summary"]["contains_registered_work"] is True

    # the same folder again: no new entry; a changed folder: a new one
    again = register(mon, chosen, process=folder)
    assert again["dossier"]["process"]["created"] is False  # type: ignore[index]
    (folder / "notes.txt").write_text("Second thoughts.")
    register(mon, chosen, process=folder)
    assert [e.kind for e in mon.dossiers.entries(work_id)] == ["registered", "process", "process"]
    assert verify_chain(work_id, mon.dossiers.entries(work_id)).ok


def test_a_single_file_process_log(tmp_path: Path) -> None:
    mon = monitor_for(tmp_path)
    log_file = tmp_path / "prompt-log.txt"
    log_file.write_text("seed 1, then seed 2; chose seed 2")
    payload = read_process_log(log_file, blobs=mon.blobs, work_sha256="0" * 64, max_items=10, max_bytes=1000)
    assert [i["path"] for i in payload["items"]] == ["prompt-log.txt"]
    assert payload["items"][0]["kind"] == "text"


def test_a_missing_process_folder_is_an_item_error(tmp_path: Path) -> None:
    mon = monitor_for(tmp_path)
    result = register_bytes(
        work_png(),
        path="w.png",
        registry=mon.registry,
        blobs=mon.blobs,
        settings=mon.settings,
        options=RegisterOptions(process=tmp_path / "nowhere"),
        steps=mon.registration_steps,
    )
    assert result.status == "error" and "nowhere" in (result.error or "")
    assert result.work_id  # the work itself stays registered


def test_store_is_a_dossier_store(tmp_path: Path) -> None:
    mon = monitor_for(tmp_path)
    assert isinstance(mon.dossiers, SqlDossierStore)
