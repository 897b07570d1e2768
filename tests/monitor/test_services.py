"""Services over a real SQLite registry: registration, the persisted match index, blobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.app import open_monitor
from monitor.blobs import BlobStore
from monitor.demo import DATA
from monitor.errors import RegistryError
from monitor.services import analyse_bytes, load_matcher, register_paths
from monitor.settings import Settings, load_settings

WORKS = sorted((DATA / "works").iterdir())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home")


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
