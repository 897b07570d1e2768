"""The ``monitor`` command line.

Stable contract (other tools drive it):

* ``monitor register PATH... [--title T] [--owner O] [--json]``
* ``monitor scan TARGET... [--json]`` (files, directories, http(s) image or page URLs)
* ``monitor works [--json]``
* ``monitor mark-check IMAGE... [--json]`` (blind watermark reading)
* ``monitor dossier WORK_ID [--json] [--verify]`` (``--verify`` exits 1 when the chain is broken)
* ``monitor demo``
* ``monitor crawl URL... [--spider site|sitemap|feed|urls] [--depth N] [--max-pages N] [--json]``
* ``monitor findings [--work ID] [--limit N] [--json]``
* ``monitor watch add URL [--spider S] [--every 6h]``, ``monitor watch list [--json]``
* ``monitor worker [--queues crawl,analyse,alert] [--concurrency N]``, ``monitor beat``
* ``monitor serve [--host H] [--port P]`` (API and dashboard)
* ``monitor account create NAME [--json]`` (prints the API key once), ``monitor account list [--json]``

With ``--json`` stdout carries one JSON object per line and nothing else. Exit codes: 0 when
the command ran (whatever it found, and with per-item errors reported in their lines), 2 on
usage errors, 1 when the command itself failed (message on stderr, never a traceback).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
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


def _note_empty_dirs(targets: Iterable[Path | str]) -> None:
    """On stderr, each directory given that holds no image file (which the command then passes
    over without a line), so an empty or mistyped folder is not taken for "no match"."""
    from monitor.services import IMAGE_SUFFIXES, expand_paths, is_url

    for target in targets:
        path = Path(target)
        if (isinstance(target, str) and is_url(target)) or not path.is_dir():
            continue
        if next(iter(expand_paths([path])), None) is None:
            kinds = ", ".join(sorted(IMAGE_SUFFIXES))
            err.print(
                f"note: no image files in {escape(str(path))} (looked for {kinds}, in every subfolder)",
                soft_wrap=True,
            )


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
        _note_empty_dirs(paths)

        def show(r: RegisterResult) -> None:
            if json_out:
                _emit_json(r.to_json())
            elif r.status == "ok":
                state = "registered" if r.created else "already registered"
                out.print(f"[green]{state}[/] {r.work_id}  {escape(r.path)}")
                marked = r.extra.get("copies") or (
                    [{"channel": None, "copy_id": r.extra["copy_id"], "marked_path": r.extra["marked_path"]}]
                    if r.extra.get("copy_id")
                    else []
                )
                for c in marked:
                    channel = f" ({escape(c['channel'])})" if c["channel"] else ""
                    out.print(f"      marked copy {c['copy_id']}{channel}: {escape(str(c['marked_path']))}")
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
        _note_empty_dirs(targets)

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
                mark = m.reports.get("watermark")
                if mark and mark.get("expected"):
                    state = {True: "[green]present[/]", False: "[red]missing[/]", None: "[dim]unreadable[/]"}
                    copy = f" copy {mark['copy_id']} ({mark.get('channel')})" if mark.get("copy_id") else ""
                    why = f" — {escape(mark['reason'])}" if mark.get("reason") and not mark["found"] else ""
                    out.print(f"      watermark {state[mark['found']]}{copy}{why}")

        results = scan_targets(
            targets,
            matcher=mon.matcher,
            registry=mon.registry,
            settings=mon.settings,
            fetcher_factory=mon.fetcher,
            inspectors=mon.inspectors,
        )
        _track(results, "scanning", json_out, show)


@app.command("mark-check")
def mark_check(
    images: Annotated[list[Path], typer.Argument(help="Image files or directories (searched recursively).")],
    json_out: JsonOption = False,
) -> None:
    """Is an invisible mark of this installation in these images? (No original needed.)"""
    from monitor.services import expand_paths, read_file
    from monitor.watermark import blind_codebook, check_image, key_from_settings

    with _failures():
        mon = _open()
        key = key_from_settings(mon.settings)
        codebook = blind_codebook(key, mon.copies)
        _note_empty_dirs(images)

        def checks() -> Iterator[dict[str, Any]]:
            for path in expand_paths(images):
                line: dict[str, Any] = {"path": str(path), "status": "ok", "error": None}
                try:
                    data = read_file(path, mon.settings.intake.max_bytes)
                    found = check_image(
                        data, key, mon.copies, max_pixels=mon.settings.intake.max_pixels, codebook=codebook
                    )
                    line.update(found.to_json())
                except MonitorError as exc:
                    line.update(status="error", error=f"{exc.code}: {exc.message}", found=None)
                yield line

        def show(line: dict[str, Any]) -> None:
            if json_out:
                _emit_json(line)
            elif line["status"] != "ok":
                out.print(f"[red]error[/] {escape(line['path'])}: {escape(line['error'] or '')}")
            elif line["found"]:
                whose = f"work {line['work_id']} ({line['channel']})" if line["work_id"] else "unknown work"
                how = "decoded" if line["method"] == "decoded" else f"recognised, z={line['z']:.1f}"
                out.print(
                    f"[bold green]MARKED[/] {escape(line['path'])}: copy {line['copy_id']}, {whose}, "
                    f"{how}, p-value {line['p_value']:.1e}"
                )
            else:
                out.print(f"[dim]no mark[/] {escape(line['path'])}")

        _track(checks(), "checking", json_out, show)


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
def dossier(
    work_id: Annotated[str, typer.Argument(help="The work whose authorship dossier to show.")],
    verify: Annotated[
        bool, typer.Option("--verify", help="Re-check the hash chain and time-stamps (exit 1 if broken).")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Show a work's authorship dossier, or verify its hash chain."""
    from monitor.dossier import load_trusted_tsa, verify_chain

    with _failures():
        mon = _open()
        work = mon.registry.get(work_id)
        entries = mon.dossiers.entries(work.id)
        if verify:
            report = verify_chain(work.id, entries, trusted_tsa=load_trusted_tsa(mon.settings))
            if json_out:
                _emit_json(report.to_json())
            elif report.ok:
                stamped = sum(t["status"] == "valid" for t in report.timestamps)
                out.print(
                    f"[green]dossier intact[/] {work.id}: {report.entries} entries, "
                    f"{stamped} valid time-stamp(s), head {report.head_hash or '-'}"
                )
            else:
                out.print(f"[bold red]dossier BROKEN[/] {work.id}:")
                for problem in report.problems:
                    out.print(f"  entry {problem['seq']}: {escape(str(problem['problem']))}")
            if not report.ok:
                raise typer.Exit(1)
            return
        if json_out:
            for entry in entries:
                _emit_json(entry.to_json())
            return
        out.print(f"[bold]dossier of {work.id}[/] {escape(work.title or '')} ({len(entries)} entries)")
        for entry in entries:
            when = f"{entry.created_at:%Y-%m-%d %H:%M:%S} UTC"
            out.print(f"#{entry.seq} {when}  {entry.kind}  {entry.entry_hash[:16]}…")
            for line in _dossier_lines(entry.kind, entry.payload):
                out.print(f"    {escape(line)}")
            if entry.timestamp is not None:
                state = "token stored" if entry.timestamp.token else f"no token ({entry.timestamp.error})"
                out.print(f"    time-stamp: {escape(entry.timestamp.tsa_url)}: {escape(state)}")


def _dossier_lines(kind: str, payload: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if kind == "registered":
        prov = payload.get("provenance") or {}
        gen = prov.get("generation")
        if gen:
            lines.append(f"generator {gen.get('tool')}: {str(gen.get('prompt', ''))[:100]}")
            params = {k: gen[k] for k in ("steps", "sampler", "cfg_scale", "seed", "model") if k in gen}
            if params:
                lines.append(", ".join(f"{k} {v}" for k, v in params.items()))
        sources = sorted(prov.get("sources") or {})
        lines.append(f"metadata: {', '.join(sources) if sources else 'none'}")
        lines.extend(f"warning: {w}" for w in prov.get("warnings") or [])
    elif kind == "process":
        summary = payload.get("summary") or {}
        lines.append(
            f"generation log {payload.get('source')}: {summary.get('items')} items, "
            f"{summary.get('images')} images, chosen {summary.get('chosen') or '-'}"
        )
    elif kind == "published_copy":
        mark = payload.get("visible_mark")
        if mark:
            lines.append(f"visible mark {mark.get('box')} ({mark.get('source')})")
        lines.append(f"CMI: {', '.join(sorted(payload.get('cmi') or {})) or 'none'}")
    return lines


# ------------------------------------------------------------------ alerts, evidence, rechecks (issue 6)

alerts_app = typer.Typer(help="The alert inbox: list alerts, acknowledge them, send the digest.")
app.add_typer(alerts_app, name="alerts")


def _parse_since(value: str | None) -> Any:
    """``--since``: an ISO date or time (UTC when no zone is given), or an age such as 30m, 24h, 7d."""
    import re
    from datetime import UTC, datetime, timedelta

    if value is None:
        return None
    age = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", value)
    if age:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[age.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(age.group(1))})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            "use an ISO date/time or an age like 24h or 7d", param_hint="--since"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@alerts_app.callback(invoke_without_command=True)
def alerts(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option(help="Only alerts seen since: ISO date/time or an age (24h, 7d).")
    ] = None,
    unacked: Annotated[bool, typer.Option("--unacked", help="Only alerts not yet acknowledged.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many.", min=1)] = 200,
    json_out: JsonOption = False,
) -> None:
    """List alerts, newest sighting first."""
    if ctx.invoked_subcommand is not None:
        return
    moment = _parse_since(since)
    with _failures():
        mon = _open()
        items = mon.alert_store.list(since=moment, unacked=unacked, limit=limit)
        if json_out:
            for a in items:
                _emit_json(a.to_json())
            return
        if not items:
            out.print("no alerts")
            return
        table = Table("alert id", "severity", "work", "where", "seen", "last seen", "ack")
        for a in items:
            table.add_row(
                a.id,
                a.severity,
                a.work_id,
                escape(a.page_url or a.image_url),
                str(a.occurrences),
                a.last_seen_at.strftime("%Y-%m-%d %H:%M"),
                "yes" if a.acked_at else "",
            )
        out.print(table)


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(help="The alert to acknowledge.")],
    json_out: JsonOption = False,
) -> None:
    """Acknowledge an alert (it leaves the --unacked list until it gets worse)."""
    from datetime import UTC, datetime

    with _failures():
        mon = _open()
        alert = mon.alert_store.ack(alert_id, at=datetime.now(UTC))
        if json_out:
            _emit_json(alert.to_json())
        else:
            out.print(f"[green]acknowledged[/] {alert.id}  {escape(alert.summary)}")


@alerts_app.command("digest")
def alerts_digest(json_out: JsonOption = False) -> None:
    """Email the digest of the alerts not yet in one (for cron or the beat schedule)."""
    from monitor.alerts import email_channel_from_settings, send_digest

    with _failures():
        mon = _open()
        channel = email_channel_from_settings(mon.settings.alerts)
        if channel is None:
            from monitor.errors import ConfigError

            raise ConfigError("no email channel: set alerts.email.host, sender and to")
        deliveries = send_digest(mon.alert_store, channel)
        ok = bool(deliveries) and deliveries[-1].ok
        alerts_sent = len({d.alert_id for d in deliveries})
        if json_out:
            _emit_json(
                {
                    "alerts": alerts_sent,
                    "ok": ok if deliveries else None,
                    "deliveries": [d.to_json() for d in deliveries],
                }
            )
        elif not deliveries:
            out.print("nothing to digest")
        else:
            state = "[green]sent[/]" if ok else f"[red]failed[/] ({escape(deliveries[-1].error or '')})"
            out.print(f"digest of {alerts_sent} alert(s) {state}")
        if deliveries and not ok:
            raise typer.Exit(1)


@app.command()
def export(
    finding_id: Annotated[str, typer.Argument(help="The finding to export.")],
    out_file: Annotated[Path, typer.Option("--out", help="The zip file to write.")],
    json_out: JsonOption = False,
) -> None:
    """Write the signed evidence bundle of a finding."""
    from monitor.evidence import export_evidence

    with _failures():
        mon = _open()
        result = export_evidence(finding_id, out_file, mon.evidence_sources(), log=mon.alert_store)
        if json_out:
            _emit_json(result.to_json())
        else:
            out.print(
                f"[green]exported[/] {escape(str(result.path))}: {len(result.members) + 2} files, "
                f"manifest sha256 {result.manifest_sha256}, key {result.key_sha256[:16]}"
            )


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="An evidence bundle (zip).")],
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="A trusted signer key fingerprint (SHA-256 hex); repeatable."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Check every file of an evidence bundle and its signature. Exit 1 when anything is wrong."""
    from monitor.evidence import verify_bundle

    with _failures():
        result = verify_bundle(bundle, trusted_keys=tuple(k.lower() for k in key or ()))
        if json_out:
            _emit_json(result.to_json())
        elif result.ok:
            out.print(
                f"[green]intact[/] {escape(str(bundle))}: {result.members} files match the manifest; "
                f"signature valid (key {result.key_sha256})"
            )
        else:
            out.print(f"[bold red]NOT INTACT[/] {escape(str(bundle))}")
            for label, names in (
                ("changed", result.changed),
                ("added", result.added),
                ("missing", result.missing),
                ("unsafe", result.unsafe),
            ):
                for name in names:
                    out.print(f"  {label}: {escape(name)}")
            for problem in result.problems:
                out.print(f"  {escape(problem)}")
        if not result.ok:
            raise typer.Exit(1)


@app.command()
def recheck(
    finding_id: Annotated[str, typer.Argument(help="The finding whose page and image to visit again.")],
    json_out: JsonOption = False,
) -> None:
    """Fetch the infringing page and image again; record online or removed; show the history."""
    with _failures():
        mon = _open()
        outcome = mon.recheck(finding_id)
        if json_out:
            _emit_json(outcome.to_json())
            return
        state = "[yellow]still online[/]" if outcome.recheck.online else "[green]removed[/]"
        out.print(f"{state}  {escape(outcome.finding.page_url or outcome.finding.image_url)}")
        for r in outcome.history:
            label = "online " if r.online else "removed"
            out.print(
                f"  {r.checked_at.strftime('%Y-%m-%d %H:%M:%S')}  {label}  page {r.page_status}  "
                f"image {r.image_status}  {escape(r.note or '')}"
            )


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="Use MONITOR_HOME instead of a temporary home.")] = False,
) -> None:
    """Register bundled works and scan bundled reuse cases, including a blog page served locally."""
    from monitor.demo import run_demo

    with _failures():
        run_demo(out, use_settings_home=keep)


# ------------------------------------------------------------------ discovery (issue 5)

SpiderOption = Annotated[
    str, typer.Option("--spider", help="site (follow links), sitemap, feed (RSS/Atom) or urls (just these).")
]


@app.command()
def crawl(
    urls: Annotated[list[str], typer.Argument(help="Start URLs (pages, sitemaps, feeds or images).")],
    spider: SpiderOption = "site",
    depth: Annotated[int | None, typer.Option(help="Links followed from the start pages (site).")] = None,
    max_pages: Annotated[int | None, typer.Option("--max-pages", help="Pages fetched at most.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Crawl pages for images and analyse them (queued to the workers when MONITOR_REDIS_URL is set)."""
    from monitor.discovery import SPIDERS, AnalysisOutcome
    from monitor.findings import Candidate

    if spider not in SPIDERS:
        raise typer.BadParameter(f"use one of {', '.join(SPIDERS)}", param_hint="--spider")
    with _failures():
        from crawlers.runner import run_crawl
        from monitor.settings import load_settings

        settings = load_settings()

        def listener(candidate: Candidate, outcome: AnalysisOutcome | None, created: bool) -> None:
            findings = outcome.findings if outcome is not None else []
            if json_out:
                line = outcome.to_json() if outcome is not None else AnalysisOutcome(candidate, []).to_json()
                _emit_json({"type": "candidate", "new": created, **line})
                return
            where = f" on {escape(candidate.page.url)}" if candidate.page else ""
            if candidate.error:
                out.print(f"[red]error[/] {escape(candidate.image_url)}{where}: {escape(candidate.error)}")
            elif findings:
                for f in findings:
                    flags = ", ".join(f.flags) or "-"
                    out.print(
                        f"[bold yellow]FINDING[/] {escape(candidate.image_url)}{where}\n"
                        f"      work {f.work_id}  {f.verdict}  similarity {f.similarity:.2f}  flags: {flags}"
                    )
            elif candidate.status == "pending":
                out.print(f"[cyan]queued[/] {escape(candidate.image_url)}{where}")
            else:
                out.print(f"[dim]no match[/] {escape(candidate.image_url)}{where}")

        summary = run_crawl(
            settings, urls, spider=spider, depth=depth, max_pages=max_pages, listener=listener
        )
        if json_out:
            _emit_json(summary.to_json())
        else:
            stats = summary.stats
            out.print(
                f"crawl {summary.crawl_id} ({summary.mode}): {summary.pages} page(s), "
                f"{stats.get('candidates', 0)} image(s), {stats.get('findings', 0)} finding(s)"
                + (f", {stats.get('queued', 0)} queued for analysis" if summary.mode == "queued" else "")
            )


@app.command()
def findings(
    work: Annotated[
        list[str] | None, typer.Option("--work", help="Only findings of this work (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Newest first, at most this many.")] = 100,
    json_out: JsonOption = False,
) -> None:
    """List findings: registered works found on crawled pages, newest first."""
    if limit < 0:
        raise typer.BadParameter("must be >= 0", param_hint="--limit")
    with _failures():
        mon = _open()
        items = mon.discovery.list_findings(work_ids=work or None, limit=limit)
        candidates = mon.discovery.candidates([f.candidate_id for f in items])
        if json_out:
            for f in items:
                c = candidates.get(f.candidate_id)
                page = c.page if c is not None else None
                body = f.to_json()
                body["page"] = asdict(page) if page is not None else None
                body["warc_path"] = c.warc_path if c is not None else None
                _emit_json(body)
            return
        if not items:
            out.print("no findings yet: [bold]monitor crawl URL[/]")
            return
        table = Table("finding", "work", "verdict", "similarity", "page", "found")
        for f in items:
            when = f.created_at.strftime("%Y-%m-%d %H:%M")
            page_url = escape(f.page_url or f.image_url)
            table.add_row(f.id, f.work_id, f.verdict, f"{f.similarity:.2f}", page_url, when)
        out.print(table)


watch_app = typer.Typer(
    help="Watched sources, re-crawled on schedule by `monitor beat`.", no_args_is_help=True
)
app.add_typer(watch_app, name="watch")


@watch_app.command("add")
def watch_add(
    url: Annotated[str, typer.Argument(help="The page, sitemap or feed to watch.")],
    spider: SpiderOption = "site",
    every: Annotated[str, typer.Option(help="How often: 30m, 6h, 1d...")] = "6h",
    depth: Annotated[int | None, typer.Option(help="Links followed (site).")] = None,
    max_pages: Annotated[int | None, typer.Option("--max-pages", help="Pages per crawl.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Watch a source: beat crawls it now and then every --every."""
    from monitor.discovery import SPIDERS, parse_every, watch_source

    if spider not in SPIDERS:
        raise typer.BadParameter(f"use one of {', '.join(SPIDERS)}", param_hint="--spider")
    try:
        parse_every(every)
    except MonitorError as exc:
        raise typer.BadParameter(exc.message, param_hint="--every") from None
    with _failures():
        mon = _open()
        source, created = watch_source(
            mon.discovery, url, spider=spider, every=every, depth=depth, max_pages=max_pages
        )
        if json_out:
            _emit_json({**source.to_json(), "created": created})
        else:
            state = "watching" if created else "already watched"
            out.print(f"[green]{state}[/] {source.id}  {escape(source.url)} ({source.spider}, every {every})")


@watch_app.command("list")
def watch_list(json_out: JsonOption = False) -> None:
    """List watched sources."""
    with _failures():
        mon = _open()
        sources = mon.discovery.list_sources()
        if json_out:
            for s in sources:
                _emit_json(s.to_json())
            return
        if not sources:
            out.print("no watched sources: [bold]monitor watch add URL[/]")
            return
        table = Table("source", "url", "spider", "every", "next crawl", "last crawl")
        for s in sources:
            last = s.last_crawl_at.strftime("%Y-%m-%d %H:%M") if s.last_crawl_at else "-"
            every = f"{s.every_seconds // 60} min"
            due = s.next_crawl_at.strftime("%Y-%m-%d %H:%M")
            table.add_row(s.id, escape(s.url), s.spider, every, due, last)
        out.print(table)


def _celery_app() -> Any:
    from monitor.errors import ConfigError
    from monitor.settings import load_settings
    from workers.app import create_celery

    settings = load_settings()
    if not settings.redis_url:
        raise ConfigError("set MONITOR_REDIS_URL (e.g. redis://127.0.0.1:6379/0): workers need a broker")
    return create_celery(settings)


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="Queues to consume, comma-separated.")] = "crawl,analyse,alert",
    concurrency: Annotated[int | None, typer.Option(help="Worker processes (default: CPU count).")] = None,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Run a Celery worker (the same as `celery -A workers worker`)."""
    with _failures():
        celery = _celery_app()
        argv = ["worker", "-Q", queues, f"--loglevel={loglevel}"]
        if concurrency is not None:
            argv.append(f"--concurrency={concurrency}")
        celery.worker_main(argv)


@app.command()
def beat(loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO") -> None:
    """Run Celery beat: crawls watched sources when due and sweeps stuck candidates."""
    with _failures():
        celery = _celery_app()
        celery.start(["beat", f"--loglevel={loglevel}"])


# ------------------------------------------------------------------ API, dashboard and accounts (issue 7)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: api.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: api.port).", min=1, max=65535)] = None,
) -> None:
    """Run the HTTP API and the dashboard (uvicorn)."""
    with _failures():
        import uvicorn

        from monitor.api import create_app
        from monitor.settings import load_settings

        settings = load_settings()
        api = create_app(settings)
        uvicorn.run(
            api,
            host=host or settings.api.host,
            port=port or settings.api.port,
            log_level="info",
            proxy_headers=True,
            server_header=False,
        )


account_app = typer.Typer(help="Accounts of the API and dashboard, and their API keys.", no_args_is_help=True)
app.add_typer(account_app, name="account")


@account_app.command("create")
def account_create(
    name: Annotated[str, typer.Argument(help="The account's name (unique).")],
    json_out: JsonOption = False,
) -> None:
    """Create an account and print its API key (shown this once; only its hash is kept)."""
    from monitor.accounts import create_account

    with _failures():
        mon = _open()
        account, key = create_account(mon.accounts, name)
        if json_out:
            _emit_json({**account.to_json(), "api_key": key})
        else:
            out.print(f"[green]created[/] account {account.id} ({escape(account.name)})")
            out.print(f"API key (shown once, keep it safe): [bold]{key}[/]")


@account_app.command("key")
def account_key(
    name: Annotated[str, typer.Argument(help="The account to issue one more key for.")],
    json_out: JsonOption = False,
) -> None:
    """Issue another API key for an account (printed once)."""
    from monitor.accounts import add_key
    from monitor.errors import NotFound

    with _failures():
        mon = _open()
        account = mon.accounts.find_account(name)
        if account is None:
            raise NotFound(f"no account is named {name!r}")
        key = add_key(mon.accounts, account.id)
        if json_out:
            _emit_json({**account.to_json(), "api_key": key})
        else:
            out.print(f"API key for {escape(account.name)} (shown once): [bold]{key}[/]")


@account_app.command("list")
def account_list(json_out: JsonOption = False) -> None:
    """List accounts (names, ids, how many works; never keys)."""
    with _failures():
        mon = _open()
        accounts = mon.accounts.list_accounts()
        if json_out:
            for a in accounts:
                _emit_json({**a.to_json(), "works": len(mon.accounts.work_ids(a.id))})
            return
        if not accounts:
            out.print("no accounts: [bold]monitor account create NAME[/]")
            return
        table = Table("account id", "name", "works", "created")
        for a in accounts:
            works_count = str(len(mon.accounts.work_ids(a.id)))
            table.add_row(a.id, escape(a.name), works_count, a.created_at.strftime("%Y-%m-%d %H:%M"))
        out.print(table)


def main() -> None:
    """Entry point: usage errors exit 2 (click's convention), failures 1, never a traceback."""
    try:
        app()
    except MonitorError as exc:  # raised outside a command body (settings)
        err.print(f"[bold red]error:[/] {escape(exc.message)}")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
