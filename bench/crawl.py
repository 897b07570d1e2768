"""Crawl benchmark: our pipeline against a bare Scrapy crawl of the same loopback site, same run.

    python bench/crawl.py [--pages 1000] [--workers 1] [--images 40] [--image-size 96x64] [--worker-nice N]
                          [--repeats R]

Generates a site of ``--pages`` pages (one image each, ``--images`` distinct photos of
``--image-size``, plus a cropped and recompressed copy of a registered work on every 50th
page), serves it on 127.0.0.1, then crawls it five times, each in its own process with the
same Scrapy settings (AutoThrottle off for all of them, since the server is local; the
monitor's defaults keep it on, with robots.txt obeyed):

* ``bare``: a plain Scrapy spider that follows the same links and downloads the same images,
  with no pipeline, no middleware of ours, no WARC, no database;
* ``embedded``: ``monitor crawl`` without Redis (capture, WARC, database; the analyses in the
  crawl's child process, ``discovery.analysis_process``, the default);
* ``embedded, analyses on a thread``: the same with ``discovery.analysis_process = false``
  (the analyses on a thread of the crawl's own process, as before that setting);
* ``queued``: ``monitor crawl`` with Redis: candidates are queued to ``--workers`` Celery
  workers (real processes) running beside the crawler on the same CPUs, and the end-to-end
  delay from the image fetch to its finding is measured on the findings;
* ``queued, workers elsewhere``: the same crawl with no worker running during it, as when the
  workers are on other machines (the README's scaled-out layout); the workers are started
  after the crawl and drain the queue, so the findings are checked all the same.

Every crawl is timed the same way, from its spider's opening to its closing (the window
``monitor crawl`` reports as ``elapsed_seconds``; an embedded crawl closes once every analysis
is done): process start-up, imports and shutdown are left out on both sides. So is its CPU
time, of the whole process and of the reactor thread (``cpu_seconds``,
``reactor_cpu_seconds``), plus that of the analysis process (``analysis_cpu_seconds``).

Prints a Markdown table (seconds, CPU seconds, pages/s, candidates/s, ratio to bare) and the
delays. With ``--repeats R`` the five crawls run R times in turn; each crawl's ratio is taken
against the bare crawl of its own round, and the table gives every round's figures and the
median ratio (a single 3,000-page crawl on two busy CPUs swings by ±20 %).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _bare_child(url: str) -> None:
    import scrapy
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess
    from scrapy.linkextractors import LinkExtractor

    from crawlers.config import DNS_RESOLVER_SETTING, scrapy_settings
    from monitor.settings import load_settings

    class BareSpider(scrapy.Spider):
        name = "bare"
        start_urls: list[str] = [url]  # noqa: RUF012 (an instance attribute of scrapy.Spider)
        pages = 0
        images = 0

        def parse(self, response: Any) -> Any:
            self.pages += 1
            for src in response.css("img::attr(src)").getall():
                yield response.follow(src, callback=self.image)
            for link in LinkExtractor(allow_domains=[]).extract_links(response):
                yield scrapy.Request(link.url, callback=self.parse)

        def image(self, response: Any) -> None:
            self.images += 1

    values = scrapy_settings(load_settings(), LOG_LEVEL="WARNING")
    for key in ("ITEM_PIPELINES", "DOWNLOADER_MIDDLEWARES", "EXTENSIONS"):
        values[key] = {}
    values.pop(DNS_RESOLVER_SETTING)  # Scrapy's own resolver
    process = CrawlerProcess(values)
    crawler = process.create_crawler(BareSpider)
    # Timed like ``monitor crawl`` times itself (crawlers.session): from the spider's opening
    # to its closing, so neither side counts its start-up or shutdown.
    marks: dict[str, float] = {}

    def opened(spider: Any) -> None:
        marks["opened"] = time.monotonic()
        marks["opened_cpu"] = time.process_time()
        marks["opened_reactor_cpu"] = time.thread_time()

    def closed(spider: Any, reason: str) -> None:
        marks["closed"] = time.monotonic()
        marks["closed_cpu"] = time.process_time()
        marks["closed_reactor_cpu"] = time.thread_time()

    crawler.signals.connect(opened, signals.spider_opened)
    crawler.signals.connect(closed, signals.spider_closed)
    process.crawl(crawler)
    process.start()
    spider = crawler.spider
    assert isinstance(spider, BareSpider)
    result: dict[str, float] = {"pages": spider.pages, "candidates": spider.images}
    for key in ("", "cpu", "reactor_cpu"):
        name = f"{key}_seconds" if key else "elapsed_seconds"
        suffix = f"_{key}" if key else ""
        result[name] = marks[f"closed{suffix}"] - marks[f"opened{suffix}"]
    print(json.dumps(result))


def _ours_child(url: str) -> None:
    from crawlers.runner import run_crawl
    from monitor.settings import load_settings

    summary = run_crawl(load_settings(), [url], spider="site", depth=100_000, max_pages=1_000_000)
    print(json.dumps(summary.to_json()))


def _run_child(kind: str, url: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--url", url],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} crawl failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def _database(server: str | None) -> Iterator[str | None]:
    """A fresh PostgreSQL database on ``server``, dropped afterwards; ``None`` (SQLite in the
    crawl's home) without a server."""
    if server is None:
        yield None
        return
    from tests.fixtures.services import fresh_postgres_database

    with fresh_postgres_database(server, "bench_crawl") as url:
        yield url


def _with_database(settings: dict[str, Any], url: str | None) -> dict[str, Any]:
    return {**settings, "database_url": url} if url else settings


def _queued_crawl(
    root: Path,
    name: str,
    work: bytes,
    start: str,
    common: dict[str, Any],
    workers: int,
    *,
    during: bool = True,
) -> tuple[dict[str, Any], list[float], int, float]:
    """``monitor crawl`` with its own Redis, home (and database) and ``workers`` Celery workers
    started with the crawl (``during``) or once it is over (workers on other machines). Returns
    the crawl's result, the delays from fetch to finding, the findings, and the seconds from
    the crawl's start to the drained queue."""
    from monitor.findings import PENDING
    from tests.fixtures.services import RedisServer, WorkerProcess, monitor_env, open_home, register, wait_for

    database_url = common.get("database_url")
    redis = RedisServer(root / f"redis-{name}")
    redis.start()
    home = root / f"{name}-home"
    register(home, work, "work", database_url)
    env = monitor_env(home, redis.url, **common)
    procs: list[Any] = []
    try:
        if during:
            procs = [WorkerProcess(env, f"{name}{i}", root).start() for i in range(workers)]
        t0 = time.monotonic()
        result = _run_child("ours", start, env)
        if not during:
            procs = [WorkerProcess(env, f"{name}{i}", root).start() for i in range(workers)]
        store = open_home(home, database_url).discovery
        wait_for(lambda: store.count_candidates(status=PENDING) == 0, 600, "the workers")
        drained = time.monotonic() - t0
        findings = store.list_findings()
        by_candidate = store.candidates([f.candidate_id for f in findings])
    finally:
        for w in procs:
            w.stop()
        redis.stop()
    delays = []
    for f in findings:
        fetched = by_candidate[f.candidate_id].fetched_at
        if fetched is not None:
            delays.append((f.created_at - fetched).total_seconds())
    return result, delays, len(findings), drained


def _crawl_round(
    here: Path, start: str, work: bytes, common: dict[str, Any], workers: int, database: str | None
) -> tuple[dict[str, dict[str, Any]], list[float], float, int]:
    """The five crawls, in ``here`` (each of ours with its own database on ``database``, if
    given): their results, the queued crawl's delays from fetch to finding, the seconds until
    its queue was drained, and the findings of the crawl whose workers ran only after it."""
    from tests.fixtures.services import monitor_env, register

    results: dict[str, dict[str, Any]] = {}
    results["bare"] = _run_child("bare", start, monitor_env(here / "bare-home", None, **common))
    for name, extra in (
        ("embedded", {}),
        ("embedded, analyses on a thread", {"discovery__analysis_process": False}),
    ):
        with _database(database) as url:
            home = here / f"{name.replace(' ', '-').replace(',', '')}-home"
            register(home, work, "work", url)
            results[name] = _run_child(
                "ours", start, monitor_env(home, None, **_with_database({**common, **extra}, url))
            )
    with _database(database) as url:
        settings = _with_database(common, url)
        results["queued"], delays, _, drained = _queued_crawl(here, "queued", work, start, settings, workers)
    with _database(database) as url:  # no worker during the crawl: they are started once it is over
        settings = _with_database(common, url)
        results["queued, workers elsewhere"], _, apart, _ = _queued_crawl(
            here, "apart", work, start, settings, workers, during=False
        )
    return results, delays, drained, apart


def _add_copies(root: Path, pages: int, work: bytes) -> int:
    from PIL import Image

    from tests.fixtures.site import cropped_copy

    copies = 0
    base = Image.open(io.BytesIO(cropped_copy(work))).convert("RGB")
    for n in range(0, pages, 50):
        buf = io.BytesIO()
        base.save(buf, "JPEG", quality=60 + (n // 50) % 30)
        (root / "img" / f"copy{n}.jpg").write_bytes(buf.getvalue())
        page = root / "p" / f"{n}.html"
        page.write_text(page.read_text().replace("</body>", f"<img src='/img/copy{n}.jpg'></body>"))
        copies += 1
    return copies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--images", type=int, default=40, help="distinct images on the site (default 40; at most one a page)"
    )
    parser.add_argument("--image-size", default="96x64", help="their size, WxH (default 96x64)")
    parser.add_argument(
        "--worker-nice",
        type=int,
        help="discovery.worker_nice of the queued crawls' workers (default: the settings' default)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="rounds of the five crawls; each ratio is taken against its own round's bare crawl, "
        "and the median of the rounds is printed (the machine's load drifts between crawls)",
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="a PostgreSQL server (SQLAlchemy URL of a user who may create databases, e.g. "
        "postgresql+psycopg://postgres@127.0.0.1/test): each of our crawls gets a fresh database "
        "there, dropped afterwards, instead of SQLite in its home",
    )
    parser.add_argument("--child", choices=["bare", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.child == "bare":
        return _bare_child(args.url)
    if args.child == "ours":
        return _ours_child(args.url)

    from tests.fixtures.site import build_generated_site, registered_work, serve

    with tempfile.TemporaryDirectory(prefix="bench-crawl-") as tmp:
        root = Path(tmp)
        width, height = (int(v) for v in args.image_size.lower().split("x"))
        build_generated_site(root / "site", args.pages, images=args.images, size=(width, height))
        work = registered_work()
        copies = _add_copies(root / "site", args.pages, work)
        rounds: list[dict[str, dict[str, Any]]] = []
        delays: list[float] = []
        drained, apart_findings = 0.0, 0
        with serve(root / "site") as (base, _):
            start = base + "p/0.html"
            common: dict[str, Any] = {"discovery__concurrency": 16, "discovery__concurrency_per_domain": 16}
            if args.worker_nice is not None:
                common["discovery__worker_nice"] = args.worker_nice
            for n in range(args.repeats):
                here = root / f"round{n}"
                here.mkdir()
                results, round_delays, drained, apart_findings = _crawl_round(
                    here, start, work, common, args.workers, args.database
                )
                delays.extend(round_delays)
                rounds.append(results)
                if args.repeats > 1:
                    bare = _rate(results["bare"])
                    shares = ", ".join(
                        f"{k} {_rate(r) / bare:.2f}×" for k, r in results.items() if k != "bare"
                    )
                    print(f"round {n + 1}/{args.repeats}: {shares}", flush=True)

    from monitor.settings import DiscoverySettings

    nice = DiscoverySettings().worker_nice if args.worker_nice is None else args.worker_nice
    print(
        f"\nsite: {args.pages} pages, 1 image each ({args.images} distinct, {args.image_size}) "
        f"+ {copies} copies of a registered work; "
        f"{os.cpu_count()} CPUs; the same Scrapy settings for all five crawls: AutoThrottle off "
        f"(the defaults keep it on), 16 requests in flight, CONCURRENT_ITEMS 16; workers at niceness {nice}; "
        f"registry: {'a fresh PostgreSQL database per crawl' if args.database else 'SQLite in each home'}; "
        f"{args.repeats} round(s), each crawl's ratio taken against the bare crawl of its own round\n"
    )
    print("\n".join(table(rounds)))
    if delays:
        print(
            f"\nqueued, {args.workers} worker(s): {len(delays)} findings over {len(rounds)} round(s); all "
            f"candidates analysed {drained:.1f} s after the crawl started (last round). "
            f"Delay fetch → finding: median {statistics.median(delays):.2f} s, max {max(delays):.2f} s. "
            "Workers elsewhere: "
            f"{apart_findings} findings once the queue was drained (last round)"
        )
    else:
        print("\nno findings in the queued run")


def table(rounds: list[dict[str, dict[str, Any]]]) -> list[str]:
    """The Markdown table of the rounds: every round's figures, each crawl's ratio against the
    bare crawl of its own round, and the median ratio when there are several rounds."""
    lines = [
        "| crawl | pages | candidates | seconds | CPU s (process / reactor thread) | pages/s | candidates/s "
        "| vs bare (pages/s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in rounds[0]:
        runs = [r[name] for r in rounds]
        elapsed = [float(r["elapsed_seconds"]) for r in runs]
        ratios = [_rate(r[name]) / _rate(r["bare"]) for r in rounds]
        cpu = ", ".join(
            f"{r.get('cpu_seconds', 0):.1f} / {r.get('reactor_cpu_seconds', 0):.1f}"
            + (f" + {r['analysis_cpu_seconds']:.1f}" if "analysis_cpu_seconds" in r else "")
            for r in runs
        )
        ratio = " / ".join(f"{x:.2f}×" for x in ratios)
        if len(ratios) > 1:
            ratio += f" (median **{statistics.median(ratios):.2f}×**)"
        seconds = " / ".join(f"{e:.1f}" for e in elapsed)
        pages = " / ".join(f"{_rate(r):.0f}" for r in runs)
        candidates = " / ".join(f"{r['candidates'] / e:.0f}" for r, e in zip(runs, elapsed, strict=True))
        lines.append(
            f"| {name} | {runs[-1]['pages']} | {runs[-1]['candidates']} | {seconds} | {cpu} | {pages} | "
            f"{candidates} | {ratio} |"
        )
    return lines


def _rate(result: dict[str, Any]) -> float:
    return float(result["pages"]) / float(result["elapsed_seconds"])


if __name__ == "__main__":
    main()
