"""The ``monitor`` command line.

Stable contract (other tools drive it):

* ``monitor register PATH... [--title T] [--owner O] [--json]``
* ``monitor scan TARGET... [--json]`` (files, directories, http(s) image or page URLs)
* ``monitor works [--json]``
* ``monitor demo``

With ``--json`` stdout carries one JSON object per line and nothing else. Exit codes: 0 when
the command ran (whatever it found, and with per-item errors reported in their lines), 2 on
usage errors, 1 when the command itself failed (message on stderr, never a traceback).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from monitor.errors import MonitorError

app = typer.Typer(
    name="monitor",
    help="Register your images, find their reuse, and keep the evidence.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

_T = TypeVar("_T")
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line on stdout, nothing else.")]


def _emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@contextmanager
def _failures() -> Iterator[None]:
    """Turn a failure of the command itself into a message and exit code 1."""
    try:
        yield
    except MonitorError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.message)}")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not enabled,
        transient=True,
    )


def _track(items: Iterator[_T], label: str, json_mode: bool, show: Callable[[_T], None]) -> int:
    """Consume ``items``, printing each; a progress bar on the terminal. Returns the count."""
    count = 0
    with _progress(not json_mode and err.is_terminal) as progress:
        task = progress.add_task(label, total=None)
        for item in items:
            count += 1
            show(item)
            progress.advance(task)
    return count


def _parse_box(value: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in value.split(","))
    except ValueError:
        raise typer.BadParameter("expected four integers x,y,w,h", param_hint="--visible-mark") from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise typer.BadParameter("x and y must be >= 0, w and h > 0", param_hint="--visible-mark")
    return x, y, w, h


def _open() -> Any:
    from monitor.app import open_monitor
    from monitor.settings import load_settings

    return open_monitor(load_settings())


@app.command()
def register(
    paths: Annotated[list[Path], typer.Argument(help="Image files or directories (searched recursively).")],
    title: Annotated[str | None, typer.Option(help="Title of the work(s); default: the file name.")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner / rights holder.")] = None,
    watermark: Annotated[
        bool, typer.Option("--watermark", help="Write an invisibly watermarked publication copy.")
    ] = False,
    channel: Annotated[
        list[str] | None,
        typer.Option("--channel", help="Where the marked copy is published (one copy id each; repeatable)."),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the marked copies (default: beside each original)."),
    ] = None,
    process: Annotated[
        Path | None,
        typer.Option("--process", help="Generation log to attach: a folder of iterations or one file."),
    ] = None,
    visible_mark: Annotated[
        str | None,
        typer.Option("--visible-mark", help="Box x,y,w,h of the visible mark on the published copy."),
    ] = None,
    add_visible_mark: Annotated[
        str | None, typer.Option("--add-visible-mark", help="Stamp this text as a visible mark.")
    ] = None,
    corner: Annotated[
        str, typer.Option("--corner", help="Corner for --add-visible-mark: br, bl, tr or tl.")
    ] = "br",
    json_out: JsonOption = False,
) -> None:
    """Register protected images: fingerprint them and keep the originals."""
    from monitor.services import RegisterOptions, RegisterResult, register_paths

    box = _parse_box(visible_mark) if visible_mark is not None else None
    if corner not in ("br", "bl", "tr", "tl"):
        raise typer.BadParameter("use br, bl, tr or tl", param_hint="--corner")
    options = RegisterOptions(
        watermark=watermark,
        channels=tuple(channel or ()),
        out_dir=out_dir,
        process=process,
        visible_mark=box,
        add_visible_mark=add_visible_mark,
        visible_mark_corner=corner,
    )
    with _failures():
        mon = _open()

        def show(r: RegisterResult) -> None:
            if json_out:
                _emit_json(r.to_json())
            elif r.status == "ok":
                state = "registered" if r.created else "already registered"
                out.print(f"[green]{state}[/] {r.work_id}  {escape(r.path)}")
            else:
                out.print(f"[red]error[/] {escape(r.path)}: {escape(r.error or '')}")

        results = register_paths(
            paths,
            registry=mon.registry,
            blobs=mon.blobs,
            settings=mon.settings,
            title=title,
            owner=owner,
            options=options,
            steps=mon.registration_steps,
        )
        _track(results, "registering", json_out, show)


@app.command()
def scan(
    targets: Annotated[
        list[str], typer.Argument(help="Image files, directories, or http(s) URLs of images or pages.")
    ],
    json_out: JsonOption = False,
) -> None:
    """Look for registered works in candidate images."""
    from monitor.services import ScanResult, scan_targets

    with _failures():
        mon = _open()

        def show(r: ScanResult) -> None:
            if json_out:
                _emit_json(r.to_json())
                return
            where = f" (on {escape(r.page_url)})" if r.page_url else ""
            if r.status != "ok":
                out.print(f"[red]error[/] {escape(r.source)}{where}: {escape(r.error or '')}")
            elif not r.matches:
                out.print(f"[dim]no match[/] {escape(r.source)}{where}")
            for m in r.matches:
                flags = ", ".join(m.flags) or "-"
                x, y, w, h = m.region
                out.print(
                    f"[bold yellow]MATCH[/] {escape(r.source)}{where}\n"
                    f"      work {m.work_id}  {m.verdict}  similarity {m.similarity:.2f}  flags: {flags}  "
                    f"region {w}x{h}+{x}+{y}"
                )

        results = scan_targets(
            targets,
            matcher=mon.matcher,
            registry=mon.registry,
            settings=mon.settings,
            fetcher_factory=mon.fetcher,
            inspectors=mon.inspectors,
        )
        _track(results, "scanning", json_out, show)


@app.command()
def works(json_out: JsonOption = False) -> None:
    """List registered works."""
    with _failures():
        mon = _open()
        items = mon.registry.list()
        if json_out:
            for w in items:
                _emit_json(
                    {
                        "work_id": w.id,
                        "sha256": w.sha256,
                        "title": w.title,
                        "owner": w.owner,
                        "path": w.source_path,
                        "format": w.format,
                        "width": w.width,
                        "height": w.height,
                        "registered_at": w.created_at.isoformat() if w.created_at else None,
                    }
                )
            return
        if not items:
            out.print("no works registered yet: [bold]monitor register PATH[/]")
            return
        table = Table("work id", "title", "owner", "size", "registered")
        for w in items:
            table.add_row(
                w.id,
                escape(w.title or ""),
                escape(w.owner or ""),
                f"{w.width}x{w.height}",
                w.created_at.strftime("%Y-%m-%d %H:%M") if w.created_at else "",
            )
        out.print(table)


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="Use MONITOR_HOME instead of a temporary home.")] = False,
) -> None:
    """Register bundled works and scan bundled reuse cases, including a blog page served locally."""
    from monitor.demo import run_demo

    with _failures():
        run_demo(out, use_settings_home=keep)


def main() -> None:
    """Entry point: usage errors exit 2 (click's convention), failures 1, never a traceback."""
    try:
        app()
    except MonitorError as exc:  # raised outside a command body (settings)
        err.print(f"[bold red]error:[/] {escape(exc.message)}")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
