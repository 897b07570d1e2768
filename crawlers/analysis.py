"""Embedded mode's analyses (no Redis): in a child process of the crawl, or in the crawl itself.

A crawl without a broker analyses its candidates as it stores them. Done on a thread of the
crawl's own process, the matcher's Python holds the GIL the Scrapy reactor needs, so the crawl
fetches and parses more slowly (on two CPUs, about half of bare Scrapy's page rate). Done in a
child process (:class:`EmbeddedAnalysis` with ``process=True``, the default), the analyses run
beside the crawl as a worker would: the reactor keeps its lock, and on a machine with more
cores the analyses use one of their own.

The child is started with ``spawn`` (the crawl already runs threads, which ``fork`` would copy
half-way), at the niceness of a worker (``discovery.worker_nice``), ignoring Ctrl-C (the crawl
stops gracefully, and that waits for the analyses in hand), with its standard output sent to
standard error (the crawl's ``--json`` output stays JSON), and it exits as soon as the crawl's
process is gone, even killed. It opens the same home and builds
its own matcher while the crawl starts. Both ways run the same function,
:func:`analyse_batch`: the analyses (:func:`monitor.discovery.analyse_candidates`, idempotent)
and the alert of each finding.

Nothing is lost if the child dies (killed, out of memory): the batch it held is analysed again
here, and so is every later batch; the candidates were stored before their analysis was
asked for, and an analysis done twice is done once (the database's claims and unique keys).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from monitor.discovery import AnalysisOutcome, analyse_candidates
from monitor.errors import MonitorError

if TYPE_CHECKING:
    from monitor.app import Monitor
    from monitor.settings import Settings

log = logging.getLogger(__name__)

PROCESS = "process"
THREAD = "thread"


@dataclass
class EmbeddedBatch:
    """What :func:`analyse_batch` did: the outcomes by candidate id, how many findings they
    hold, how many alerts were created, and the warnings met (a child's logging is its own,
    so they travel back with the batch and the crawl logs them)."""

    outcomes: dict[str, AnalysisOutcome] = field(default_factory=dict)
    findings: int = 0
    alerts: int = 0
    warnings: list[str] = field(default_factory=list)


def analyse_batch(monitor: Monitor, candidate_ids: list[str], *, take_over: bool = False) -> EmbeddedBatch:
    """Analyse these stored candidates together and alert their findings (idempotent: a finding
    already alerted is a ``duplicate``). Candidates whose analysis cannot be done now (a busy
    or unreachable database; their bytes being analysed elsewhere) are left ``pending``.

    ``take_over``: the analyses of these candidates' bytes that someone still holds are taken
    over at once, not after ``discovery.analysis_lease`` (for a batch whose analysis process
    died holding them; if another process is in fact analysing the same bytes, the result it
    finishes first is kept)."""
    done = EmbeddedBatch()
    if not candidate_ids:
        return done
    services = monitor.analysis_services()
    if take_over:
        settings = services.settings
        discovery = settings.discovery.model_copy(update={"analysis_lease": 0.0})
        services = replace(services, settings=settings.model_copy(update={"discovery": discovery}))
    try:
        batch = analyse_candidates(candidate_ids, services)
    except MonitorError as exc:
        done.warnings.append(f"analysis of {len(candidate_ids)} candidate(s) deferred: {exc}")
        return done
    if batch.busy:
        done.warnings.append(
            f"analysis of {len(batch.busy)} candidate(s) deferred: their bytes are being analysed"
        )
    done.outcomes = batch.outcomes
    for outcome in batch.outcomes.values():
        done.findings += len(outcome.findings)
        for finding in outcome.findings:
            created, warning = raise_alert(monitor, finding.id)
            done.alerts += created
            if warning is not None:
                done.warnings.append(warning)
    return done


def raise_alert(monitor: Monitor, finding_id: str) -> tuple[bool, str | None]:
    """Raise (and deliver) a finding's alert now, as the alert task would (idempotent: a
    finding already alerted is a ``duplicate``): whether an alert was created, and the warning
    when it could not be raised now (left for the catch-up at the end of the crawl)."""
    try:
        alerted = monitor.alert_finding(finding_id)
    except MonitorError as exc:
        return False, f"alert of finding {finding_id} deferred: {exc}"
    return alerted.status == "created", None


class EmbeddedAnalysis:
    """Runs :func:`analyse_batch` for a crawl: in one child process (``process=True``) or
    here, on the caller's thread. :meth:`start` when the crawl opens (the child builds its
    matcher meanwhile), :meth:`analyse` for each batch, :meth:`close` when the crawl is over.
    ``mode`` says where the analyses run now; ``lost`` is set when the child died and the
    analyses came back here."""

    def __init__(self, monitor: Monitor, *, process: bool = True) -> None:
        self.monitor = monitor
        self.mode = PROCESS if process else THREAD
        self.lost: str | None = None
        self.pid: int | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future[int] | None = None
        self._lock = threading.Lock()  # one batch at a time, either way

    def start(self) -> None:
        """Start the child (and its matcher) now; in thread mode, build the matcher here."""
        if self.mode == THREAD:
            _ = self.monitor.matcher
            return
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_child_start,
            initargs=(self.monitor.settings,),
        )
        self._ready = self._pool.submit(_child_ready)

    def analyse(self, candidate_ids: list[str]) -> EmbeddedBatch:
        with self._lock:
            if self.mode == PROCESS:
                try:
                    return self._in_child(candidate_ids)
                except BrokenProcessPool as exc:
                    self._child_lost(exc)
                    return analyse_batch(self.monitor, candidate_ids, take_over=True)
            return analyse_batch(self.monitor, candidate_ids)

    def _in_child(self, candidate_ids: list[str]) -> EmbeddedBatch:
        if self._pool is None:
            self.start()
        assert self._pool is not None and self._ready is not None
        if self.pid is None:
            self.pid = self._ready.result()
        return self._pool.submit(analyse_in_child, candidate_ids).result()

    def _child_lost(self, exc: BaseException) -> None:
        self.lost = f"the analysis process ended: {exc or type(exc).__name__}"
        log.error("%s: analysing in the crawl's own process from now on", self.lost)
        self.mode = THREAD
        self._shutdown()

    def close(self) -> None:
        """Wait for the child to finish what it holds, and end it."""
        with self._lock:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# ---------------------------------------------------------------------- in the child process

_child_monitor: Monitor | None = None


def _child_start(settings: Settings) -> None:
    """The child's initializer: priority, signals, output, and its own monitor."""
    global _child_monitor
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with_parent()
    os.dup2(2, 1)  # nothing of the child's may reach the crawl's JSON on stdout
    if settings.discovery.worker_nice and hasattr(os, "nice"):
        with contextlib.suppress(OSError):  # not allowed here: the normal priority
            os.nice(settings.discovery.worker_nice)
    from monitor.app import open_monitor

    _child_monitor = open_monitor(settings)


def _end_with_parent() -> None:
    """Exit when the crawl's process is gone, however it ended (``kill -9`` included): the
    pool's queues would otherwise keep an orphan waiting for work forever."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _child_ready() -> int:
    """Build the child's matcher; its pid."""
    assert _child_monitor is not None, "the analysis process was not started"
    _ = _child_monitor.matcher
    return os.getpid()


def analyse_in_child(candidate_ids: list[str]) -> EmbeddedBatch:
    assert _child_monitor is not None, "the analysis process was not started"
    return analyse_batch(_child_monitor, candidate_ids)
