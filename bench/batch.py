"""Batch throughput: `monitor register DIR` and `monitor scan DIR` one image at a time, and with
threads decoding and fingerprinting the next images while one is matched or stored.

    python bench/batch.py [CORPUS_DIR] [--limit N] [--repeats R] [--threads T]

Half of the images (by a hash of the file name, as in the other benches) are the works; every
image re-encoded as a web JPEG (q90, 4:2:0) is a candidate. Each repeat times, with
``intake.prefetch_threads`` = 0 and then = T (which goes first alternates between repeats):

* **register**: ``register_paths`` over the works' directory into a fresh ``MONITOR_HOME``
  (SQLite, blob store; what `monitor register DIR` does, without the CLI's printing);
* **scan**: ``scan_targets`` over the candidates' directory, the matcher loaded beforehand
  (what `monitor scan DIR` does once the index is loaded).

One untimed round of each comes first (imports, first database, libraries' first calls).

The figure is the median over repeats; the results of both ways must be the same (the lines
of register but the work ids, which each fresh registry draws anew; every scan JSON line, both
ways against the same registry), or the bench stops. Both ways share the machine, so the ratio
is the number to read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.attacks import encode
from bench.common import DEFAULT_CORPUS, corpus_files, limit_files, median, split, table
from monitor.app import open_monitor
from monitor.services import load_matcher, register_paths, scan_targets
from monitor.settings import Settings, load_settings


def with_threads(settings: Settings, threads: int) -> Settings:
    intake = settings.intake.model_copy(update={"prefetch_threads": threads})
    return settings.model_copy(update={"intake": intake})


def register_once(works: Path, home: Path, threads: int) -> tuple[float, list[Any]]:
    shutil.rmtree(home, ignore_errors=True)
    settings = with_threads(load_settings(home=home), threads)
    mon = open_monitor(settings)
    t0 = time.perf_counter()
    results = list(register_paths([works], registry=mon.registry, blobs=mon.blobs, settings=settings))
    seconds = time.perf_counter() - t0
    return seconds, [(Path(r.path).name, r.status, r.sha256) for r in results]


def scan_once(
    candidates: Path, settings: Settings, threads: int, matcher: Any, mon: Any
) -> tuple[float, list[Any]]:
    settings = with_threads(settings, threads)
    t0 = time.perf_counter()
    results = list(
        scan_targets(
            [str(candidates)],
            matcher=matcher,
            registry=mon.registry,
            settings=settings,
            fetcher_factory=mon.fetcher,
        )
    )
    seconds = time.perf_counter() - t0
    return seconds, [r.to_json() for r in results]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--limit", type=int, default=0, help="use at most N corpus images")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="intake.prefetch_threads to compare with 0")
    args = ap.parse_args()

    files = limit_files(corpus_files(args.corpus), args.limit)
    works, _ = split(files)
    tmp = Path(tempfile.mkdtemp(prefix="monitor-batch-"))
    try:
        work_dir, cand_dir = tmp / "works", tmp / "candidates"
        work_dir.mkdir()
        cand_dir.mkdir()
        for p in works:
            shutil.copyfile(p, work_dir / p.name)
        for p in files:
            with Image.open(p) as im:
                rgb = im.convert("RGB")
            (cand_dir / f"{p.stem}.jpg").write_bytes(encode(rgb, "JPEG", 90))
        cand_bytes = sum(f.stat().st_size for f in cand_dir.iterdir())
        print(
            f"corpus {args.corpus}: {len(works)} works, {len(files)} candidates "
            f"({cand_bytes / 2**20:.1f} MiB); repeats {args.repeats}; cores {os.cpu_count()}",
            flush=True,
        )

        # warm-up, not timed: imports, the first database, the libraries' first calls
        register_once(work_dir, tmp / "home-warm", args.threads)
        warm = load_settings(home=tmp / "home-warm")
        warm_mon = open_monitor(warm)
        scan_once(
            cand_dir, warm, args.threads, load_matcher(warm_mon.registry, warm, persist=False), warm_mon
        )

        times: dict[tuple[str, int], list[float]] = {}
        reference: dict[str, Any] = {}
        for rep in range(args.repeats):
            order = [0, args.threads] if rep % 2 == 0 else [args.threads, 0]
            for threads in order:
                seconds, out = register_once(work_dir, tmp / f"home-{threads}", threads)
                times.setdefault(("register", threads), []).append(seconds)
                if reference.setdefault("register", out) != out:
                    raise SystemExit("register gave different results with and without prefetch threads")
            # scan against the registry the last register run left (the same works either way)
            settings = load_settings(home=tmp / f"home-{order[-1]}")
            mon = open_monitor(settings)
            matcher = load_matcher(mon.registry, settings, persist=False)
            reference.pop("scan", None)  # work ids are the registry's own: compare within a repeat
            for threads in order:
                seconds, out = scan_once(cand_dir, settings, threads, matcher, mon)
                times.setdefault(("scan", threads), []).append(seconds)
                if reference.setdefault("scan", out) != out:
                    for a, b in zip(reference["scan"], out, strict=True):
                        if a != b:
                            print(f"first difference:\n  {a}\n  {b}", file=sys.stderr)
                            break
                    raise SystemExit("scan gave different results with and without prefetch threads")
            print(
                f"  repeat {rep + 1}: "
                + ", ".join(f"{k[0]} ({k[1]} threads) {v[-1]:.1f}s" for k, v in sorted(times.items())),
                flush=True,
            )

        matched = sum(1 for r in reference["scan"] if r["matches"])
        rows = []
        for job, n in (("register", len(works)), ("scan", len(files))):
            serial, ahead = median(times[(job, 0)]), median(times[(job, args.threads)])
            rows.append(
                [
                    f"`{job}` of a directory",
                    n,
                    f"{serial:.2f}",
                    f"{ahead:.2f}",
                    f"{n / serial:.1f}",
                    f"{n / ahead:.1f}",
                    f"**{serial / ahead:.2f}×**",
                ]
            )
        print()
        print(
            table(
                [
                    "batch",
                    "images",
                    "one at a time s",
                    f"{args.threads} prefetch thread(s) s",
                    "images/s before",
                    "images/s after",
                    "speed-up",
                ],
                rows,
            )
        )
        print(f"\nscan: {matched} of {len(files)} candidates matched; results identical both ways.")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
