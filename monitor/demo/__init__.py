"""``monitor demo``: register the bundled works, then find them in bundled reuse cases.

The reuse cases include the motivating one: a blog page with a poem whose illustration is a
registered work with its signature corner cropped away and recompressed. The page is served
on a loopback port so the demo scans it by URL, exactly as ``monitor scan URL`` would.
Images and licences: ``data/manifest.csv`` (made by ``scripts/make_demo_assets.py``).
"""

from __future__ import annotations

import functools
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

DATA = Path(str(resources.files("monitor.demo") / "data"))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1 (a free port); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def run_demo(console: Console, *, use_settings_home: bool = False) -> None:
    from monitor.app import open_monitor
    from monitor.services import register_paths, scan_targets
    from monitor.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as tmp:
        overrides: dict[str, Any] = {"allow_private_addresses": True}
        if not use_settings_home:
            overrides["home"] = Path(tmp)
        settings = load_settings(**overrides)
        mon = open_monitor(settings)
        console.print(f"[bold]1. Registering the bundled works[/] (home: {settings.home})")
        titles: dict[str, str] = {}
        for r in register_paths([DATA / "works"], registry=mon.registry, blobs=mon.blobs, settings=settings):
            console.print(
                f"   {r.work_id}  {Path(r.path).name}  {r.status}" + (f" {r.error}" if r.error else "")
            )
            if r.work_id:
                titles[r.work_id] = Path(r.path).name
        with serve_directory(DATA / "site") as base:
            page = base + "index.html"
            console.print(f"\n[bold]2. Scanning a blog page[/] {page}")
            results = list(
                scan_targets(
                    [page],
                    matcher=mon.matcher,
                    registry=mon.registry,
                    settings=settings,
                    fetcher_factory=mon.fetcher,
                )
            )
        table = Table("candidate", "work", "verdict", "similarity", "flags", "region (x,y,w,h)")
        for res in results:
            name = res.source.rsplit("/", 1)[-1]
            if res.status != "ok":
                table.add_row(name, "-", f"[red]{escape(res.error or '')}[/]", "", "", "")
            elif not res.matches:
                table.add_row(name, "[dim]no registered work[/]", "", "", "", "")
            for m in res.matches:
                table.add_row(
                    name,
                    titles.get(m.work_id, m.work_id),
                    f"[bold yellow]{m.verdict}[/]",
                    f"{m.similarity:.2f}",
                    ", ".join(m.flags),
                    ",".join(str(v) for v in m.region),
                )
        console.print(table)
        found = sum(bool(r.matches) for r in results)
        console.print(
            f"\n{found} of {len(results)} images on the page show a registered work. "
            "Try it on your own: [bold]monitor register PATH[/], "
            "then [bold]monitor scan URL_OR_PATH --json[/]."
        )
