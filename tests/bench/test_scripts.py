"""The benchmark scripts start: each answers ``--help`` with its usage and exits 0 (a help
text argparse cannot format used to end in a traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.crawl import table

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = ["accuracy.py", "batch.py", "crawl.py", "heldout.py", "refresh.py", "speed.py", "watermark.py"]


def test_every_script_is_listed() -> None:
    found = {p.name for p in BENCH.glob("*.py")} - {"__init__.py", "attacks.py", "common.py"}
    assert found == set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:") and "Traceback" not in done.stderr


def _demo_pictures(into: Path, count: int | None = None) -> list[Path]:
    """The demo's bundled pictures (the first ``count``), copied into one directory."""
    import shutil

    demo = BENCH.parent / "monitor" / "demo" / "data"
    pictures = sorted(demo.glob("*/*.jpg"))[:count]
    for picture in pictures:
        shutil.copyfile(picture, into / picture.name)
    return pictures


def _bench(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=600
    )


def test_batch_bench_runs_both_ways_and_finds_the_same(tmp_path: Path) -> None:
    """A small run on the demo's bundled pictures: the bench itself checks that prefetching
    changes no result."""
    pictures = _demo_pictures(tmp_path)
    done = _bench("batch.py", str(tmp_path), "--repeats", "1", "--threads", "2")
    assert done.returncode == 0, done.stderr
    assert f"| `scan` of a directory | {len(pictures)} |" in done.stdout
    assert "results identical both ways" in done.stdout


@pytest.mark.parametrize("script", ["accuracy.py", "batch.py", "refresh.py", "speed.py", "watermark.py"])
def test_a_bench_refuses_an_empty_or_missing_corpus(script: str, tmp_path: Path) -> None:
    for corpus in (tmp_path, tmp_path / "missing"):
        done = subprocess.run(
            [sys.executable, str(BENCH / script), str(corpus)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode != 0 and f"no images in {corpus}" in done.stderr
        assert "Traceback" not in done.stderr


def test_refresh_bench_times_the_three_ways(tmp_path: Path) -> None:
    """Two works, then one more: each way must give a matcher that holds the new work (the
    bench stops otherwise)."""
    _demo_pictures(tmp_path, 3)
    done = _bench("refresh.py", str(tmp_path), "--works", "2", "--repeats", "1")
    assert done.returncode == 0, done.stderr
    for way in ("reload and rewrite", "reload", "live"):
        assert f"| {way} | 1 |" in done.stdout


def test_crawl_bench_takes_each_ratio_against_its_own_rounds_bare_crawl() -> None:
    def run(pages: int, seconds: float) -> dict[str, object]:
        return {"pages": pages, "candidates": pages, "elapsed_seconds": seconds, "cpu_seconds": 1.0}

    # the machine slows down in the second round: bare and ours alike
    rounds = [
        {"bare": run(1000, 2.0), "queued": run(1000, 2.5)},
        {"bare": run(1000, 4.0), "queued": run(1000, 4.4)},
        {"bare": run(1000, 3.0), "queued": run(1000, 3.0)},
    ]
    lines = table(rounds)
    queued = next(line for line in lines if line.startswith("| queued |"))
    assert "| 2.5 / 4.4 / 3.0 |" in queued
    assert "0.80× / 0.91× / 1.00× (median **0.91×**)" in queued
    bare = next(line for line in lines if line.startswith("| bare |"))
    assert "(median **1.00×**)" in bare
    # one round: no median
    assert "median" not in "".join(table(rounds[:1]))
    # the analysis process's CPU time is shown beside the crawl process's
    embedded = {**run(1000, 3.0), "reactor_cpu_seconds": 0.5, "analysis_cpu_seconds": 2.25}
    line = table([{"bare": run(1000, 2.0), "embedded": embedded}])[-1]
    assert "| 1.0 / 0.5 + 2.2 |" in line


def test_crawl_bench_gives_each_crawl_a_fresh_database_and_drops_it(postgres_database_url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from bench.crawl import _database

    with _database(None) as url:
        assert url is None  # SQLite in the crawl's home
    with _database(postgres_database_url) as first, _database(postgres_database_url) as second:
        assert first is not None and second is not None and first != second
        for url in (first, second):
            engine = create_engine(url)
            with engine.connect() as connection:  # it exists, and it is empty
                tables = text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                assert connection.execute(tables).scalar_one() == 0
            engine.dispose()
    admin = create_engine(postgres_database_url)
    names = {make_url(u).database for u in (first, second)}
    with admin.connect() as connection:
        left = connection.execute(text("SELECT datname FROM pg_database")).scalars().all()
    admin.dispose()
    assert not names & set(left)
