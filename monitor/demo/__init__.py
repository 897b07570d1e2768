"""``monitor demo``: register the bundled works, then find them in bundled reuse cases.

The reuse cases include the motivating one: the artist publishes a work with a visible
signature stamped in a corner and an invisible watermark (``register --add-visible-mark ...
--watermark``); a blog illustrates a poem with that copy, the signature corner cropped away and
the picture recompressed. The page is served on a loopback port so the demo scans it by URL,
exactly as ``monitor scan URL`` would, and the findings show the crop, the removed signature and
the watermark that survived (which copy leaked).
Images and licences: ``data/manifest.csv`` (made by ``scripts/make_demo_assets.py``).
"""

from __future__ import annotations

import functools
import io
import shutil
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


#: The bundled work the blog reuses, and how its owner published it.
SIGNED_WORK = "thug.jpg"
SIGNATURE = "© J. Painter"


def _blog_illustration(published: Path) -> bytes:
    """What the blog did with the published copy: cut the signature corner away, recompress."""
    from PIL import Image

    with Image.open(published) as im:
        rgb = im.convert("RGB")
    w, h = rgb.size
    out = io.BytesIO()
    rgb.crop((0, 0, round(w * 0.8), round(h * 0.82))).save(out, "JPEG", quality=80)
    return out.getvalue()


def run_demo(console: Console, *, use_settings_home: bool = False) -> None:
    from monitor.app import open_monitor
    from monitor.services import RegisterOptions, register_paths, scan_targets
    from monitor.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as tmp:
        overrides: dict[str, Any] = {"allow_private_addresses": True}
        if not use_settings_home:
            overrides["home"] = Path(tmp)
        settings = load_settings(**overrides)
        mon = open_monitor(settings)
        console.print(f"[bold]1. Registering the bundled works[/] (home: {settings.home})")
        titles: dict[str, str] = {}
        published_dir = Path(tmp) / "published"
        signed = RegisterOptions(
            watermark=True,
            channels=("site",),
            out_dir=published_dir,
            add_visible_mark=SIGNATURE,
            visible_mark_corner="br",
        )
        published: Path | None = None
        for path in sorted((DATA / "works").iterdir()):
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            how = signed if path.name == SIGNED_WORK else None
            for r in register_paths(
                [path],
                registry=mon.registry,
                blobs=mon.blobs,
                settings=settings,
                options=how,
                steps=mon.registration_steps if how else (),
            ):
                note = ""
                if r.extra.get("marked_path"):
                    published = Path(str(r.extra["marked_path"]))
                    note = f"  published with a signature and an invisible mark: {published.name}"
                console.print(
                    f"   {r.work_id}  {path.name}  {r.status}" + (f" {r.error}" if r.error else "") + note
                )
                if r.work_id:
                    titles[r.work_id] = path.name
        site = Path(tmp) / "site"
        shutil.copytree(DATA / "site", site)
        if published is not None:  # the blog took the published copy, not the original
            (site / "illustration.jpg").write_bytes(_blog_illustration(published))
        with serve_directory(site) as base:
            page = base + "index.html"
            console.print(f"\n[bold]2. Scanning a blog page[/] {page}")
            results = list(
                scan_targets(
                    [page],
                    matcher=mon.matcher,
                    registry=mon.registry,
                    settings=settings,
                    fetcher_factory=mon.fetcher,
                    inspectors=mon.inspectors,
                )
            )
        for res in results:
            name = res.source.rsplit("/", 1)[-1]
            if res.status != "ok":
                console.print(f"   [red]error[/] {escape(name)}: {escape(res.error or '')}")
            elif not res.matches:
                console.print(f"   [dim]no registered work in {escape(name)}[/]")
            for m in res.matches:
                x, y, w, h = m.region
                work = escape(titles.get(m.work_id, m.work_id))
                console.print(
                    f"   [bold yellow]MATCH[/] {escape(name)} shows {work}: "
                    f"[bold]{m.verdict}[/], similarity {m.similarity:.2f}, region {w}x{h}+{x}+{y}\n"
                    f"         flags: {', '.join(m.flags) or '-'}\n"
                    f"         watermark: {_watermark_cell(m.reports.get('watermark'))}"
                )
        found = sum(bool(r.matches) for r in results)
        console.print(
            f"\n{found} of {len(results)} images on the page show a registered work. "
            "Try it on your own: [bold]monitor register PATH[/], "
            "then [bold]monitor scan URL_OR_PATH --json[/]."
        )


def _watermark_cell(report: Any) -> str:
    if not isinstance(report, dict) or not report.get("expected"):
        return "- (this work was not published with a mark)"
    if report.get("found"):
        return f"found, copy {report.get('copy_id')} (the one published to {report.get('channel') or '?'})"
    if report.get("found") is None:
        return f"not readable here ({report.get('reason') or '?'})"
    return "[red]expected but missing[/]"
