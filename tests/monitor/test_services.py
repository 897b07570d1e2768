"""Services over a real SQLite registry: registration, the persisted match index, blobs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.attacks import encode
from monitor import services
from monitor.app import open_monitor
from monitor.blobs import BlobStore
from monitor.demo import DATA
from monitor.errors import RegistryError
from monitor.fingerprints import fingerprint_candidate
from monitor.images import decode_image
from monitor.index import FeatureIndex
from monitor.services import LiveMatcher, analyse_bytes, load_matcher, prepare_candidate, register_paths
from monitor.settings import Settings, load_settings

WORKS = sorted((DATA / "works").iterdir())
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "images"
RETINA = FIXTURES / "pypi-scikit-image__retina.jpg"
CUPS = FIXTURES / "plasma-workspace-wallpapers__ColorfulCups__2560x1600.jpg"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home")


@pytest.mark.parametrize("undo", [True, False])
def test_candidates_follow_the_undo_upscaling_setting(tmp_path: Path, undo: bool) -> None:
    # the middle of the cups wallpaper enlarged 3x: told enlarged, so the setting decides
    with Image.open(CUPS) as img:
        w, h = img.size
        detail = img.convert("RGB").crop((w // 2 - 128, h // 2 - 128, w // 2 + 128, h // 2 + 128))
    big = detail.resize((768, 768), Image.Resampling.BICUBIC)
    data = encode(big, "JPEG", 90)
    settings = load_settings(home=tmp_path / "home", match={"undo_upscaling": undo})
    prepared = prepare_candidate(data, settings)
    assert prepared.fingerprint is not None
    match = settings.match
    decoded = decode_image(data, work_side=settings.intake.work_side)
    for flag in (True, False):
        expected = fingerprint_candidate(decoded, match.local_max_features, match.candidate_feature_side,
                                         undo_upscaling=flag)  # fmt: skip
        assert len(expected.features) > 0
        same = np.array_equal(prepared.fingerprint.features.points, expected.features.points)
        assert same == (flag == undo)


def test_registration_keeps_the_original_bytes(settings: Settings) -> None:
    mon = open_monitor(settings)
    [result] = register_paths([WORKS[0]], registry=mon.registry, blobs=mon.blobs, settings=settings)
    assert result.status == "ok" and result.created
    assert mon.blobs.get(result.sha256 or "") == WORKS[0].read_bytes()
    [again] = register_paths([WORKS[0]], registry=mon.registry, blobs=mon.blobs, settings=settings)
    assert again.work_id == result.work_id and not again.created


def test_matcher_snapshot_is_reused_and_brought_up_to_date(settings: Settings) -> None:
    mon = open_monitor(settings)
    list(register_paths(WORKS[:2], registry=mon.registry, blobs=mon.blobs, settings=settings))
    first = load_matcher(mon.registry, settings)
    assert len(first) == 2
    meta = settings.index_dir / "matcher" / "snapshot.json"
    assert meta.is_file()
    [late] = register_paths([WORKS[2]], registry=mon.registry, blobs=mon.blobs, settings=settings)
    second = load_matcher(mon.registry, settings)
    assert len(second) == 3 and late.work_id in second
    # the late work is found through the updated snapshot
    found = analyse_bytes(
        WORKS[2].read_bytes(),
        source="x",
        matcher=load_matcher(mon.registry, settings),
        registry=mon.registry,
        settings=settings,
    )
    assert [m.work_id for m in found.matches] == [late.work_id]


def test_a_snapshot_indexed_with_other_cuts_is_rebuilt(settings: Settings) -> None:
    """The centred cuts' PDQ lives in the snapshot: changing ``match.cut_aspects`` (or the share
    they must leave out) makes it another index, rebuilt from the registry, not reused."""
    mon = open_monitor(settings)
    list(register_paths(WORKS[:2], registry=mon.registry, blobs=mon.blobs, settings=settings))
    assert len(load_matcher(mon.registry, settings)) == 2
    meta = settings.index_dir / "matcher" / "snapshot.json"
    assert json.loads(meta.read_text())["signature"]["cut_aspects"] == settings.match.cut_aspects
    no_cuts = settings.model_copy(update={"match": settings.match.model_copy(update={"cut_aspects": []})})
    assert len(load_matcher(mon.registry, no_cuts)) == 2
    assert json.loads(meta.read_text())["signature"]["cut_aspects"] == []


def _snapshot_seq(settings: Settings) -> int:
    return int(json.loads((settings.index_dir / "matcher" / "snapshot.json").read_text())["seq"])


def test_a_live_matcher_adds_new_works_in_memory_and_rewrites_the_snapshot_only_when_stale(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "SNAPSHOT_STALE_SHARE", 1.0)  # rewrite once it lacks as many as it holds
    mon = open_monitor(settings)
    first_two = [
        r.work_id
        for r in register_paths(WORKS[:2], registry=mon.registry, blobs=mon.blobs, settings=settings)
    ]
    live = LiveMatcher(mon.registry, settings)
    matcher = live.get()
    assert len(matcher) == 2 and _snapshot_seq(settings) == 2  # no snapshot yet: written
    [third] = register_paths([WORKS[2]], registry=mon.registry, blobs=mon.blobs, settings=settings)
    assert live.get() is matcher and len(matcher) == 3 and third.work_id in matcher  # added, not reloaded
    assert _snapshot_seq(settings) == 2  # lacks 1 of 2: not rewritten
    # Another process replays the missing work from the registry and finds it.
    other = load_matcher(mon.registry, settings)
    assert len(other) == 3
    found = analyse_bytes(
        WORKS[2].read_bytes(), source="x", matcher=other, registry=mon.registry, settings=settings
    )
    assert [m.work_id for m in found.matches] == [third.work_id]
    assert _snapshot_seq(settings) == 2
    [fourth] = register_paths([RETINA], registry=mon.registry, blobs=mon.blobs, settings=settings)
    assert len(live.get()) == 4 and fourth.work_id in matcher
    assert _snapshot_seq(settings) == 4  # lacked 2 of 2: rewritten
    assert all(w in load_matcher(mon.registry, settings) for w in [*first_two, third.work_id, fourth.work_id])
    # no temporary left behind (the lock file stays)
    assert sorted(p.name for p in settings.index_dir.iterdir()) == [".matcher.lock", "matcher"]


def test_a_retrained_feature_index_is_saved_at_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "SNAPSHOT_STALE_SHARE", 100.0)  # never stale: only a retraining saves
    mon = open_monitor(settings)
    list(register_paths(WORKS[:2], registry=mon.registry, blobs=mon.blobs, settings=settings))
    live = LiveMatcher(mon.registry, settings)
    matcher = live.get()
    assert matcher.index_trained_at == 0  # a flat index at this size
    matcher._features.ivf_threshold = len(matcher._features) + 1  # the next work makes it an inverted file
    list(register_paths(WORKS[2:3], registry=mon.registry, blobs=mon.blobs, settings=settings))
    assert len(live.get()) == 3 and matcher.index_trained_at > 0
    assert _snapshot_seq(settings) == 3
    assert load_matcher(mon.registry, settings).index_trained_at == matcher.index_trained_at


def test_a_retraining_is_done_by_one_process_and_loaded_by_the_others(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    mon = open_monitor(settings)
    list(register_paths(WORKS[:2], registry=mon.registry, blobs=mon.blobs, settings=settings))
    first, second = LiveMatcher(mon.registry, settings), LiveMatcher(mon.registry, settings)
    before = second.get()
    for live in (first, second):  # the next work makes an inverted file of either
        features = live.get()._features
        features.ivf_threshold = len(features) + 1
    trainings: list[int] = []
    rebuild = FeatureIndex._rebuild_ivf

    def counted(index: FeatureIndex, extra: np.ndarray) -> None:
        trainings.append(len(index))
        rebuild(index, extra)

    monkeypatch.setattr(FeatureIndex, "_rebuild_ivf", counted)
    [third] = register_paths([WORKS[2]], registry=mon.registry, blobs=mon.blobs, settings=settings)
    trained = first.get()
    assert trained.index_trained_at > 0 and len(trainings) == 1
    after = second.get()  # finds the retrained snapshot: loads it, trains nothing
    assert len(trainings) == 1
    assert after is not before and after.index_trained_at == trained.index_trained_at
    assert len(after) == 3 and third.work_id in after


@pytest.mark.parametrize(
    ("theirs", "ours", "waits"),
    [("LOCK_EX", False, True), ("LOCK_EX", True, True), ("LOCK_SH", False, True), ("LOCK_SH", True, False)],
    ids=["writer-writer", "writer-reader", "reader-writer", "reader-reader"],
)
def test_the_index_lock_lets_readers_share_and_keeps_writers_apart(
    settings: Settings, theirs: str, ours: bool, waits: bool
) -> None:
    """Another process holds the lock (``theirs``) for 1.5 s; ours (shared or not) waits
    for it unless both only read the snapshot."""
    live = LiveMatcher(open_monitor(settings).registry, settings)
    settings.index_dir.mkdir(parents=True)
    held, released = settings.index_dir / "held", settings.index_dir / "released"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time, pathlib\n"
            "d = pathlib.Path(sys.argv[1])\n"
            "with (d / '.matcher.lock').open('a+b') as fh:\n"
            f"    fcntl.flock(fh.fileno(), fcntl.{theirs})\n"
            "    (d / 'held').touch(); time.sleep(1.5); (d / 'released').touch()\n",
            str(settings.index_dir),
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not held.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert held.exists()
        with live._index_lock(shared=ours):
            assert released.exists() == waits
    finally:
        child.wait(timeout=30)


def test_a_home_that_cannot_be_locked_still_gets_its_matcher(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared home on NFS mounted without locks answers ``flock`` with ENOLCK: the matcher
    is built all the same (unlocked, with a warning)."""
    import errno
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    mon = open_monitor(settings)
    [work] = register_paths(WORKS[:1], registry=mon.registry, blobs=mon.blobs, settings=settings)
    live = LiveMatcher(mon.registry, settings)
    assert work.work_id in live.get()
    [late] = register_paths(WORKS[1:2], registry=mon.registry, blobs=mon.blobs, settings=settings)
    assert late.work_id in live.get()


def test_a_corrupt_snapshot_is_rebuilt_not_fatal(settings: Settings) -> None:
    mon = open_monitor(settings)
    list(register_paths(WORKS, registry=mon.registry, blobs=mon.blobs, settings=settings))
    load_matcher(mon.registry, settings)
    (settings.index_dir / "matcher" / "pdq.faiss").write_bytes(b"garbage")
    rebuilt = load_matcher(mon.registry, settings)
    assert len(rebuilt) == len(WORKS)


def test_blob_store_is_content_addressed_and_validates_names(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = store.put(b"hello")
    assert store.path_for(digest).read_bytes() == b"hello"
    assert store.put(b"hello") == digest and digest in store
    with pytest.raises(RegistryError):
        store.path_for("../../etc/passwd")
    with pytest.raises(RegistryError, match="missing"):
        store.get("0" * 64)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_matcher_runs_faiss_and_opencv_on_the_configured_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    import cv2
    import faiss

    from monitor.index import set_library_threads

    monkeypatch.setenv("MONITOR_MATCH__THREADS", str(threads))
    settings = load_settings(home=tmp_path)
    before = (faiss.omp_get_max_threads(), cv2.getNumThreads())
    try:
        set_library_threads(0)
        load_matcher(open_monitor(settings).registry, settings, persist=False)
        assert faiss.omp_get_max_threads() == threads
        assert cv2.getNumThreads() == threads
    finally:
        faiss.omp_set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def _batch(folder: Path) -> Path:
    """Works, a copy of one of them, and bad files, in a directory of its own."""
    folder.mkdir()
    for i, work in enumerate(WORKS):
        (folder / f"{i}-{work.name}").write_bytes(work.read_bytes())
    (folder / "3-again.jpg").write_bytes(WORKS[0].read_bytes())
    (folder / "4-cut.jpg").write_bytes(WORKS[1].read_bytes()[:300])
    (folder / "5-page.png").write_bytes(b"<!DOCTYPE html><html><body>not found</body></html>")
    (folder / "6-empty.gif").write_bytes(b"")
    return folder


@pytest.mark.parametrize("threads", ["0", "2"])
def test_a_batch_registers_in_order_with_or_without_threads_working_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: str
) -> None:
    import monitor.services as services

    monkeypatch.setenv("MONITOR_INTAKE__PREFETCH_THREADS", threads)
    settings = load_settings(home=tmp_path / "home")
    assert settings.intake.prefetch_threads == int(threads)
    mon = open_monitor(settings)
    folder = _batch(tmp_path / "batch")
    first = list(register_paths([folder], registry=mon.registry, blobs=mon.blobs, settings=settings))
    assert [Path(r.path).name for r in first] == sorted(p.name for p in folder.iterdir())
    assert [r.status for r in first] == ["ok"] * 4 + ["error"] * 3
    assert all(r.error for r in first[4:])
    assert [r.created for r in first[:4]] == [True, True, True, False]
    assert first[3].work_id == first[0].work_id  # the same bytes twice in one batch: one work
    assert mon.registry.count() == len(WORKS)

    fingerprinted: list[str] = []
    real = services.fingerprint_work

    def counting(*args: object, **kwargs: object) -> object:
        fingerprinted.append("x")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services, "fingerprint_work", counting)
    again = list(register_paths([folder], registry=mon.registry, blobs=mon.blobs, settings=settings))
    assert [r.work_id for r in again] == [r.work_id for r in first]
    assert not any(r.created for r in again)
    assert fingerprinted == []  # works already registered are not fingerprinted again


def test_a_directory_scan_gives_the_same_results_with_threads_working_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.services import scan_targets

    folder = _batch(tmp_path / "batch")
    (folder / "7-crop.jpg").write_bytes(encode_crop(WORKS[2]))
    lines = {}
    for threads in ("0", "2"):
        monkeypatch.setenv("MONITOR_INTAKE__PREFETCH_THREADS", threads)
        settings = load_settings(home=tmp_path / "home")
        mon = open_monitor(settings)
        list(register_paths(WORKS, registry=mon.registry, blobs=mon.blobs, settings=settings))
        results = scan_targets(
            [str(folder), str(tmp_path / "missing.jpg")],
            matcher=load_matcher(mon.registry, settings),
            registry=mon.registry,
            settings=settings,
            fetcher_factory=mon.fetcher,
        )
        lines[threads] = [r.to_json() for r in results]
    assert lines["0"] == lines["2"]
    got = lines["2"]
    assert [Path(r["source"]).name for r in got] == [*sorted(p.name for p in folder.iterdir()), "missing.jpg"]
    assert [r["status"] for r in got] == ["ok"] * 4 + ["error"] * 3 + ["ok", "error"]
    assert all(r["matches"] for r in got[:4]) and got[7]["matches"][0]["verdict"] == "partial"
    assert "no such file" in got[8]["error"]


def encode_crop(path: Path) -> bytes:
    import io

    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        out = io.BytesIO()
        im.convert("RGB").crop((w // 4, h // 5, w * 3 // 4, h * 4 // 5)).save(out, "JPEG", quality=80)
    return out.getvalue()
