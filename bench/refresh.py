"""Bringing a running process's matcher up to date after one registration.

    python bench/refresh.py [CORPUS_DIR] [--works N] [--repeats R]

Registers ``--works`` images of the corpus into a fresh ``MONITOR_HOME`` (SQLite, as the
CLI does), builds the matcher once (the snapshot is written), then, ``--repeats`` times,
registers one more work and times three ways of having a matcher that knows it, interleaved:

* **reload and rewrite** (what a worker did before :class:`~monitor.services.LiveMatcher`):
  read the whole snapshot again, add the works it lacks, write the whole snapshot again;
* **reload** (a new process now, e.g. ``monitor scan``): read the snapshot and add the
  works it lacks from the registry; the snapshot is rewritten only once it lacks
  ``SNAPSHOT_STALE_SHARE`` (1 %) of its works;
* **live** (a worker, the API, an embedded crawl now): add the new work to the matcher the
  process already holds.

Prints the medians (ms) and the snapshot's size. The three ways run on the same machine in
the same run, so their ratios are the numbers to read.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DEFAULT_CORPUS, corpus_files, limit_files, median, table
from monitor import services
from monitor.app import open_monitor
from monitor.services import LiveMatcher, register_paths
from monitor.settings import load_settings


def _mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--works", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    files = limit_files(corpus_files(args.corpus), args.works + args.repeats)
    if len(files) < args.works + args.repeats:
        raise SystemExit(
            f"the corpus has {len(files)} images; {args.works} works + {args.repeats} repeats needed"
        )
    works, extra = files[: args.works], files[args.works :]
    with tempfile.TemporaryDirectory(prefix="bench-refresh-") as tmp:
        settings = load_settings(home=Path(tmp) / "home")
        mon = open_monitor(settings)
        t0 = time.perf_counter()
        registered = [
            r
            for r in register_paths(works, registry=mon.registry, blobs=mon.blobs, settings=settings)
            if r.status == "ok"
        ]
        print(f"registered {len(registered)} works in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        live = LiveMatcher(mon.registry, settings)
        t0 = time.perf_counter()
        matcher = live.get()
        print(f"first build: {time.perf_counter() - t0:.1f} s, {len(matcher)} works", file=sys.stderr)
        snapshot = settings.index_dir / "matcher"
        timings: dict[str, list[float]] = {"reload and rewrite": [], "reload": [], "live": []}
        share = services.SNAPSHOT_STALE_SHARE
        for i, path in enumerate(extra):
            [result] = register_paths([path], registry=mon.registry, blobs=mon.blobs, settings=settings)
            if result.status != "ok" or not result.created:
                raise SystemExit(f"{path}: {result.error}")
            order = ["reload and rewrite", "reload", "live"]
            if i % 2:
                order.reverse()
            for way in order:
                t0 = time.perf_counter()
                if way == "live":
                    got = live.get()
                else:
                    # "reload and rewrite": a share of 0 rewrites the snapshot whenever a work was added
                    services.SNAPSHOT_STALE_SHARE = 0.0 if way == "reload and rewrite" else share
                    try:
                        got = LiveMatcher(mon.registry, settings).get()
                    finally:
                        services.SNAPSHOT_STALE_SHARE = share
                timings[way].append(time.perf_counter() - t0)
                if result.work_id not in got:
                    raise SystemExit(f"{way}: the new work is not in the matcher")
        size = _mib(snapshot)
    live_ms = median(timings["live"]) * 1000
    rows = [
        [name, len(values), f"{median(values) * 1000:.0f}", f"{median(values) * 1000 / live_ms:.0f}×"]
        for name, values in timings.items()
    ]
    print(
        f"\n{args.works} works registered, snapshot {size:.0f} MiB; one more work registered, then "
        f"(median of {args.repeats}, interleaved):\n"
    )
    print(table(["way", "n", "ms", "vs live"], rows, "lrrr"))


if __name__ == "__main__":
    main()
