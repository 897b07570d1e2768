"""Use cases: register works, analyse candidates, scan targets. Ports are passed in.

The services know the registry only as a :class:`~monitor.works.WorkRegistry`, blobs as a
:class:`~monitor.blobs.BlobStore` and the network as a :class:`Fetcher`; the CLI, the API
and the workers build those adapters from settings (``monitor.app``) and call these
functions. Every per-item failure becomes a result with ``status="error"``; the batch goes on.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from monitor.blobs import BlobStore
from monitor.errors import FetchError, ImageError, ImageTooLarge, MonitorError, describe
from monitor.fingerprints import (
    CandidateFingerprint,
    WorkFingerprint,
    fingerprint_candidate,
    fingerprint_work,
)
from monitor.images import DecodedImage, decode_full_pixels, decode_image, pixel_digest, sha256_hex
from monitor.index import set_library_threads
from monitor.matching import EXACT, Match, Matcher
from monitor.prefetch import prefetch
from monitor.settings import Settings
from monitor.works import NewWork, Work, WorkRegistry

if TYPE_CHECKING:
    from monitor.fetching import FetchedResource

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".gif",
        ".webp",
        ".bmp",
        ".tif",
        ".tiff",
        ".avif",
        ".heic",
        ".heif",
        ".ico",
    }
)
MATCHER_SNAPSHOT_FORMAT = 2


class Fetcher(Protocol):
    def fetch(self, url: str) -> FetchedResource: ...


# ------------------------------------------------------------------ extension points


@dataclass(frozen=True)
class RegisterOptions:
    """What the owner asked for at registration beyond fingerprinting (CLI flags, API fields).

    Each registration step reads the options it owns and ignores the rest.
    """

    watermark: bool = False
    channels: tuple[str, ...] = ()
    out_dir: Path | None = None
    process: Path | None = None
    visible_mark: tuple[int, int, int, int] | None = None
    add_visible_mark: str | None = None
    visible_mark_corner: str = "br"


@dataclass
class Registration:
    """One registered work as the registration steps see it.

    ``published`` starts as the original bytes; a step that changes what the owner publishes
    (a visible mark stamped on it) replaces it, and later steps (the invisible watermark) work
    from the replaced bytes. ``extra`` is merged into the register JSON line.
    """

    work: Work
    data: bytes
    image: DecodedImage
    path: str
    options: RegisterOptions
    created: bool
    published: bytes
    extra: dict[str, Any] = field(default_factory=dict)


class RegistrationStep(Protocol):
    """Runs after a work is stored (also for an already registered work: steps decide).
    A :class:`MonitorError` marks the line as an error; the work itself stays registered."""

    def __call__(self, registration: Registration) -> None: ...


@dataclass(frozen=True)
class PageContext:
    """Where a candidate was seen: the page and the text around the image."""

    url: str
    title: str | None = None
    text: str | None = None
    alt: str | None = None
    caption: str | None = None


@dataclass
class CandidateContext:
    """A candidate image as the match inspectors see it: exact bytes, decoded pixels, page."""

    data: bytes
    image: DecodedImage
    source: str
    page: PageContext | None = None


class MatchInspector(Protocol):
    """Looks closer at one verified match (watermark, visible mark, metadata) and adds flags,
    ``details`` and ``reports`` to it. A :class:`MonitorError` is recorded on the match under
    ``details["inspection_errors"]``; the scan goes on."""

    name: str

    def __call__(self, candidate: CandidateContext, work: Work, match: Match) -> None: ...


# ------------------------------------------------------------------ results


@dataclass
class RegisterResult:
    path: str
    status: str  # "ok" | "error"
    work_id: str | None = None
    sha256: str | None = None
    error: str | None = None
    created: bool = False
    work: Work | None = field(default=None, repr=False)
    #: Fields added by registration steps (e.g. ``marked_path``, ``copy_id``).
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body = {
            "work_id": self.work_id,
            "path": self.path,
            "sha256": self.sha256,
            "status": self.status,
            "error": self.error,
        }
        for key, value in self.extra.items():
            body.setdefault(key, value)
        return body


@dataclass
class ScanResult:
    source: str
    status: str
    page_url: str | None = None
    sha256: str | None = None
    error: str | None = None
    matches: list[Match] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "page_url": self.page_url,
            "sha256": self.sha256,
            "status": self.status,
            "error": self.error,
            "matches": [m.to_json() for m in self.matches],
        }


# ------------------------------------------------------------------ inputs


def expand_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Files as given; directories walked recursively for image files, in a stable order.
    A path that does not exist is yielded as is (its item then fails with a clear error)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            yield path


def read_file(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageTooLarge(f"the file is {size:,} bytes; the limit is {max_bytes:,}")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageError(f"no such file: {path}") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{path} is a directory") from exc
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _decode(data: bytes, settings: Settings) -> DecodedImage:
    limits = settings.intake
    return decode_image(
        data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels, work_side=limits.work_side
    )


# ------------------------------------------------------------------ registration


@dataclass
class PreparedWork:
    """A work's bytes decoded and, unless it was already registered, fingerprinted (with the
    digest of its full pixels), or why that failed (``error``): the part of a registration
    that needs nothing but the image, so it can run ahead on another thread."""

    data: bytes
    image: DecodedImage | None = None
    fingerprint: WorkFingerprint | None = None
    pixel_sha256: str | None = None
    error: str | None = None


def prepare_work(data: bytes, settings: Settings, *, fingerprint: bool = True) -> PreparedWork:
    try:
        image = _decode(data, settings)
    except MonitorError as exc:
        return PreparedWork(data, error=describe(exc))
    if not fingerprint:
        return PreparedWork(data, image)
    try:
        fp, digest = _fingerprint_work(data, image, settings)
    except MonitorError as exc:
        return PreparedWork(data, image, error=describe(exc))
    return PreparedWork(data, image, fp, digest)


def _fingerprint_work(data: bytes, image: DecodedImage, settings: Settings) -> tuple[WorkFingerprint, str]:
    pixels = image.pixels if image.scale == 1.0 else decode_full_pixels(data)
    return fingerprint_work(image, settings.match.work_max_features), pixel_digest(pixels)


def _registered(registry: WorkRegistry, data: bytes) -> bool:
    """Are these bytes a work already? (Unknown on a registry error: the store reports it.)"""
    try:
        return registry.find_by_sha256(sha256_hex(data)) is not None
    except MonitorError:
        return False


def register_bytes(
    data: bytes,
    *,
    path: str,
    registry: WorkRegistry,
    blobs: BlobStore,
    settings: Settings,
    title: str | None = None,
    owner: str | None = None,
    options: RegisterOptions | None = None,
    steps: Sequence[RegistrationStep] = (),
) -> RegisterResult:
    """Register one image. The same bytes twice give the same work (``created=False``).
    Then each of ``steps`` runs on it in order (watermarked copies, dossier, visible mark)."""
    return register_prepared(
        prepare_work(data, settings, fingerprint=not _registered(registry, data)),
        path=path,
        registry=registry,
        blobs=blobs,
        settings=settings,
        title=title,
        owner=owner,
        options=options,
        steps=steps,
    )


def register_prepared(
    prepared: PreparedWork,
    *,
    path: str,
    registry: WorkRegistry,
    blobs: BlobStore,
    settings: Settings,
    title: str | None = None,
    owner: str | None = None,
    options: RegisterOptions | None = None,
    steps: Sequence[RegistrationStep] = (),
) -> RegisterResult:
    """:func:`register_bytes` for a work :func:`prepare_work` has decoded and fingerprinted."""
    image = prepared.image
    if image is None:
        return RegisterResult(path, "error", error=prepared.error)
    result = _store_work(
        prepared,
        image,
        path=path,
        registry=registry,
        blobs=blobs,
        settings=settings,
        title=title,
        owner=owner,
    )
    if result.status != "ok" or not steps or result.work is None:
        return result
    registration = Registration(
        work=result.work,
        data=prepared.data,
        image=image,
        path=path,
        options=options or RegisterOptions(),
        created=result.created,
        published=prepared.data,
    )
    for step in steps:
        try:
            step(registration)
        except MonitorError as exc:
            result.status, result.error = "error", describe(exc)
            break
    result.extra = registration.extra
    return result


def _store_work(
    prepared: PreparedWork,
    image: DecodedImage,
    *,
    path: str,
    registry: WorkRegistry,
    blobs: BlobStore,
    settings: Settings,
    title: str | None,
    owner: str | None,
) -> RegisterResult:
    try:
        existing = registry.find_by_sha256(image.sha256)
        if existing is not None:
            return RegisterResult(path, "ok", existing.id, existing.sha256, created=False, work=existing)
        if prepared.error is not None:
            return RegisterResult(path, "error", error=prepared.error)
        fp, digest = prepared.fingerprint, prepared.pixel_sha256
        if fp is None or digest is None:  # prepared as a known work that is not there any more
            fp, digest = _fingerprint_work(prepared.data, image, settings)
        blobs.put(prepared.data)  # the original is kept before anything refers to it
        new = NewWork(
            sha256=image.sha256,
            pixel_sha256=digest,
            format=image.format,
            width=image.width,
            height=image.height,
            frames=image.frames,
            size_bytes=image.size_bytes,
            title=title if title is not None else Path(path).stem,
            owner=owner,
            source_path=path,
        )
        work, created = registry.add(new, fp)
        return RegisterResult(path, "ok", work.id, work.sha256, created=created, work=work)
    except MonitorError as exc:
        return RegisterResult(path, "error", error=describe(exc))


def register_paths(
    paths: Sequence[Path],
    *,
    registry: WorkRegistry,
    blobs: BlobStore,
    settings: Settings,
    title: str | None = None,
    owner: str | None = None,
    options: RegisterOptions | None = None,
    steps: Sequence[RegistrationStep] = (),
) -> Iterator[RegisterResult]:
    """:func:`register_bytes` for each file (directories walked), in order; the next files are
    decoded and fingerprinted on ``intake.prefetch_threads`` threads while one is stored."""

    def files() -> Iterator[tuple[Path, bytes | str, bool]]:  # read here: the registry is this thread's
        for path in expand_paths(paths):
            try:
                data = read_file(path, settings.intake.max_bytes)
            except MonitorError as exc:
                yield path, describe(exc), False
                continue
            yield path, data, not _registered(registry, data)

    def prepare(item: tuple[Path, bytes | str, bool]) -> tuple[Path, PreparedWork | str]:
        path, data, new = item
        return path, data if isinstance(data, str) else prepare_work(data, settings, fingerprint=new)

    for path, prepared in prefetch(files(), prepare, threads=settings.intake.prefetch_threads):
        if isinstance(prepared, str):
            yield RegisterResult(str(path), "error", error=prepared)
            continue
        yield register_prepared(
            prepared,
            path=str(path),
            registry=registry,
            blobs=blobs,
            settings=settings,
            title=title,
            owner=owner,
            options=options,
            steps=steps,
        )


# ------------------------------------------------------------------ the matcher

#: The snapshot is rewritten once the works it lacks reach this share of the works it holds
#: (at least one): replaying a work from the registry costs about as much as writing 1 % of
#: a snapshot's works, so a process that loads the matcher neither rewrites gigabytes for one
#: new work nor replays more than it would have cost to write.
SNAPSHOT_STALE_SHARE = 0.01


class LiveMatcher:
    """The matcher over every registered work, kept up to date for a long-running process.

    The first :meth:`get` builds it from the snapshot under ``settings.index_dir`` and the works
    registered after the snapshot's checkpoint (the registry's ``seq``); later calls add only
    the works registered since the previous call, in memory, instead of reading the whole
    index again. The snapshot is rewritten when the works it lacks reach
    :data:`SNAPSHOT_STALE_SHARE` of the works it holds, or when adding them retrained the
    feature index (a retraining is paid once, not by every process that loads the snapshot:
    processes of one home build and bring up to date their matchers one at a time, and one
    that finds a snapshot retrained at a later checkpoint loads it instead of retraining).
    """

    def __init__(self, registry: WorkRegistry, settings: Settings, *, persist: bool = True) -> None:
        self._registry = registry
        self._settings = settings
        self._persist = persist
        self._snapshot = settings.index_dir / "matcher"
        self._signature = {
            "format": MATCHER_SNAPSHOT_FORMAT,
            "index_features": settings.match.index_features,
            "cut_aspects": settings.match.cut_aspects,
            "cut_min_share": settings.match.cut_min_share,
            "round_cut": settings.match.round_cut,
        }
        self._matcher: Matcher | None = None
        self._seq = 0  # the registry's seq of the last work in the matcher
        self._saved_works = -1  # works in the snapshot on disk (-1: none this process can use)
        self._lock = threading.Lock()

    def get(self) -> Matcher:
        with self._lock:
            if self._matcher is None:
                set_library_threads(self._settings.match.threads)
                with self._index_lock(shared=True):
                    self._matcher = self._open()
                if self._saved_works < 0 or self._registry.max_seq() != self._seq:
                    with self._index_lock():
                        if self._saved_works < 0:  # another process may have saved one meanwhile
                            self._matcher = self._open()
                        else:
                            self._matcher = self._retrained_elsewhere() or self._matcher
                        self._catch_up(self._matcher)
            elif self._registry.max_seq() != self._seq:
                with self._index_lock():
                    self._matcher = self._retrained_elsewhere() or self._matcher
                    self._catch_up(self._matcher)
            return self._matcher

    @contextmanager
    def _index_lock(self, *, shared: bool = False) -> Iterator[None]:
        """Processes of one home read the snapshot together (``shared``) but build, retrain and
        save the index one at a time, so when several workers need the same retraining one
        does it and the others load its snapshot (:meth:`_retrained_elsewhere`); ``flock`` on
        ``index_dir/.matcher.lock``, or no lock where the platform or the directory allows none."""
        if not self._persist:
            yield
            return
        try:
            import fcntl

            self._snapshot.parent.mkdir(parents=True, exist_ok=True)
            handle = (self._snapshot.parent / ".matcher.lock").open("a+b")
        except (ImportError, OSError) as exc:
            log.debug("the match index is not locked across processes: %s", exc)
            yield
            return
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            except OSError as exc:  # e.g. ENOLCK: a shared home on NFS mounted without locking
                log.warning("the match index is not locked across processes: %s", exc)
                yield
                return
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _retrained_elsewhere(self) -> Matcher | None:
        """The snapshot another process saved after retraining the feature index at a later
        checkpoint than ours (the retraining we are about to need), or None."""
        assert self._matcher is not None
        trained = self._matcher.index_trained_at
        matcher = self._load_snapshot(
            lambda meta: int(meta["seq"]) > self._seq and meta.get("trained_at") != trained
        )
        if matcher is not None:
            log.info("loaded the match index another process retrained (%d works)", len(matcher))
        return matcher

    def _loader(self, ids: Sequence[str]) -> dict[str, Any]:
        return self._registry.fingerprints(ids)

    def _open(self) -> Matcher:
        """The matcher from the snapshot, or an empty one (checkpoint 0) when there is none usable."""
        matcher = self._load_snapshot(lambda meta: int(meta["seq"]) <= self._registry.max_seq())
        if matcher is None:
            self._seq, self._saved_works = 0, -1
            matcher = Matcher(self._settings.match, self._loader)
        return matcher

    def _load_snapshot(self, accept: Callable[[dict[str, Any]], bool]) -> Matcher | None:
        """The snapshot on disk when it was made with these settings and ``accept`` takes its
        meta (its checkpoint becomes ours), else None; one that cannot be read is logged."""
        meta_path = self._snapshot / "snapshot.json"
        if not self._persist or not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("signature") != self._signature or not accept(meta):
                return None
            matcher = Matcher.load(self._snapshot, self._settings.match, self._loader)
        except (OSError, ValueError, KeyError, MonitorError) as exc:
            log.warning("the match index snapshot could not be read (%s): building from the registry", exc)
            return None
        self._seq, self._saved_works = int(meta["seq"]), len(matcher)
        return matcher

    def _catch_up(self, matcher: Matcher) -> None:
        trained = matcher.index_trained_at
        for work, fp in self._registry.iter_fingerprints(after_seq=self._seq):
            matcher.add(work.id, fp)
            self._seq = work.seq
        if not self._persist:
            return
        lacking = len(matcher) - max(self._saved_works, 0)
        if (
            self._saved_works < 0
            or matcher.index_trained_at != trained
            or lacking >= max(1.0, SNAPSHOT_STALE_SHARE * self._saved_works)
        ):
            meta = {
                "signature": self._signature,
                "seq": self._seq,
                "works": len(matcher),
                "trained_at": matcher.index_trained_at,
            }
            if _save_snapshot(matcher, self._snapshot, meta):
                self._saved_works = len(matcher)


def load_matcher(registry: WorkRegistry, settings: Settings, *, persist: bool = True) -> Matcher:
    """The matcher over every registered work, once (see :class:`LiveMatcher`)."""
    return LiveMatcher(registry, settings, persist=persist).get()


def _save_snapshot(matcher: Matcher, snapshot: Path, meta: dict[str, Any]) -> bool:
    """Write the snapshot beside the old one and swap them; a failure costs time, not data
    (the snapshot is a cache of the registry), so it is logged and ``False`` returned."""
    import shutil
    import tempfile

    tmp: Path | None = None
    old: Path | None = None
    try:
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=snapshot.parent, prefix=".matcher-"))
        matcher.save(tmp)
        (tmp / "snapshot.json").write_text(json.dumps(meta))
        old = Path(tempfile.mkdtemp(dir=snapshot.parent, prefix=".matcher-old-"))
        if snapshot.exists():
            snapshot.rename(old / snapshot.name)
        tmp.rename(snapshot)
        tmp = None
        return True
    except OSError as exc:  # e.g. another process swapped its own snapshot in first
        log.warning("could not save the match index snapshot: %s", exc)
        return False
    finally:
        for leftover in (tmp, old):
            if leftover is not None:
                shutil.rmtree(leftover, ignore_errors=True)


# ------------------------------------------------------------------ analysis


@dataclass
class PreparedCandidate:
    """A candidate's bytes decoded and fingerprinted, or why that failed (``error``): the part
    of an analysis that needs nothing but the image, so it can run ahead on another thread."""

    data: bytes
    image: DecodedImage | None = None
    fingerprint: CandidateFingerprint | None = None
    error: str | None = None


def prepare_candidate(data: bytes, settings: Settings) -> PreparedCandidate:
    try:
        image = _decode(data, settings)
    except MonitorError as exc:
        return PreparedCandidate(data, error=describe(exc))
    try:
        fp = fingerprint_candidate(
            image,
            settings.match.local_max_features,
            settings.match.candidate_feature_side,
            undo_upscaling=settings.match.undo_upscaling,
        )
    except MonitorError as exc:
        return PreparedCandidate(data, image, error=describe(exc))
    return PreparedCandidate(data, image, fp)


def analyse_bytes(
    data: bytes,
    *,
    source: str,
    matcher: Matcher,
    registry: WorkRegistry,
    settings: Settings,
    page_url: str | None = None,
    page: PageContext | None = None,
    inspectors: Sequence[MatchInspector] = (),
) -> ScanResult:
    """Analyse one candidate image against every registered work, then let each inspector look
    closer at each match (watermark, visible mark, metadata)."""
    return analyse_prepared(
        prepare_candidate(data, settings),
        source=source,
        matcher=matcher,
        registry=registry,
        page_url=page_url,
        page=page,
        inspectors=inspectors,
    )


def analyse_prepared(
    prepared: PreparedCandidate,
    *,
    source: str,
    matcher: Matcher,
    registry: WorkRegistry,
    page_url: str | None = None,
    page: PageContext | None = None,
    inspectors: Sequence[MatchInspector] = (),
) -> ScanResult:
    """:func:`analyse_bytes` for a candidate :func:`prepare_candidate` has decoded and
    fingerprinted: match, settle exactness, inspect."""
    if page is not None and page_url is None:
        page_url = page.url
    image = prepared.image
    if image is None:
        return ScanResult(source, "error", page_url=page_url, error=prepared.error)
    if prepared.fingerprint is None:
        return ScanResult(source, "error", page_url=page_url, sha256=image.sha256, error=prepared.error)
    try:
        matches = matcher.match(prepared.fingerprint)
        matches = _settle_exactness(prepared.data, image, matches, registry)
    except MonitorError as exc:
        return ScanResult(source, "error", page_url=page_url, sha256=image.sha256, error=describe(exc))
    if inspectors and matches:
        if page is None and page_url is not None:
            page = PageContext(url=page_url)
        _inspect(CandidateContext(prepared.data, image, source, page), matches, registry, inspectors)
    return ScanResult(source, "ok", page_url=page_url, sha256=image.sha256, matches=matches)


def _inspect(
    candidate: CandidateContext,
    matches: Sequence[Match],
    registry: WorkRegistry,
    inspectors: Sequence[MatchInspector],
) -> None:
    for match in matches:
        try:
            work = registry.get(match.work_id)
        except MonitorError as exc:
            match.details.setdefault("inspection_errors", {})["registry"] = describe(exc)
            continue
        for inspector in inspectors:
            try:
                inspector(candidate, work, match)
            except MonitorError as exc:
                match.details.setdefault("inspection_errors", {})[inspector.name] = describe(exc)


def _settle_exactness(
    data: bytes, image: DecodedImage, matches: list[Match], registry: WorkRegistry
) -> list[Match]:
    """Upgrade to ``exact`` what has the same bytes or the same pixels as a work, add
    ``recompressed`` to lossy copies that are not exact."""
    exact_ids: set[str] = set()
    same_bytes = registry.find_by_sha256(image.sha256)
    if same_bytes is not None:
        exact_ids.add(same_bytes.id)
    digest: str | None = None
    by_id = {m.work_id: m for m in matches}
    same_size = [m for m in matches if _same_size(m, image)]
    if image.scale == 1.0 or same_size:
        pixels = image.pixels if image.scale == 1.0 else decode_full_pixels(data)
        digest = pixel_digest(pixels)
        exact_ids.update(w.id for w in registry.find_by_pixel_sha256(digest))
    out = []
    for work_id in sorted(exact_ids):
        m = by_id.get(work_id)
        details: dict[str, Any] = dict(m.details) if m else {"method": "exact"}
        details["same_bytes"] = same_bytes is not None and same_bytes.id == work_id
        details["same_pixels"] = True
        transform = m.transform if m else np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        out.append(Match(work_id, EXACT, 1.0, [], (0, 0, image.width, image.height), transform, details))
    for m in matches:
        if m.work_id in exact_ids:
            continue
        if image.is_lossy and "recompressed" not in m.flags:
            m.flags.append("recompressed")
        out.append(m)
    out.sort(key=lambda m: (m.verdict != EXACT, -m.similarity))
    return out


def _same_size(m: Match, image: DecodedImage) -> bool:
    """Could the candidate hold the very pixels of this work? (Only then is a full decode worth it.)"""
    return m.verdict != "partial" and abs(float(m.details.get("scale", 0)) - 1.0) < 0.01


# ------------------------------------------------------------------ scanning targets


def is_url(target: str) -> bool:
    return target.lower().startswith(("http://", "https://"))


def scan_targets(
    targets: Sequence[str],
    *,
    matcher: Matcher,
    registry: WorkRegistry,
    settings: Settings,
    fetcher_factory: Callable[[], Fetcher],
    inspectors: Sequence[MatchInspector] = (),
) -> Iterator[ScanResult]:
    """Scan files, directories (recursively) and http(s) URLs of images or HTML pages. The next
    files are read, decoded and fingerprinted on ``intake.prefetch_threads`` threads while one is
    matched; results come in the order of the files."""

    def prepare(path: Path) -> tuple[Path, PreparedCandidate | str]:
        try:
            data = read_file(path, settings.intake.max_bytes)
        except MonitorError as exc:
            return path, describe(exc)
        return path, prepare_candidate(data, settings)

    fetcher: Fetcher | None = None
    for target in targets:
        if is_url(target):
            if fetcher is None:
                fetcher = fetcher_factory()
            yield from _scan_url(
                target, fetcher, matcher=matcher, registry=registry, settings=settings, inspectors=inspectors
            )
            continue
        files = expand_paths([Path(target)])
        for path, prepared in prefetch(files, prepare, threads=settings.intake.prefetch_threads):
            if isinstance(prepared, str):
                yield ScanResult(str(path), "error", error=prepared)
                continue
            yield analyse_prepared(
                prepared, source=str(path), matcher=matcher, registry=registry, inspectors=inspectors
            )


def _scan_url(
    url: str,
    fetcher: Fetcher,
    *,
    matcher: Matcher,
    registry: WorkRegistry,
    settings: Settings,
    inspectors: Sequence[MatchInspector],
) -> Iterator[ScanResult]:
    from monitor.fetching import decode_html, is_html
    from monitor.pages import extract_images, page_text, page_title

    try:
        resource = fetcher.fetch(url)
    except FetchError as exc:
        yield ScanResult(url, "error", error=describe(exc))
        return
    if not is_html(resource):
        yield analyse_bytes(
            resource.body,
            source=resource.url,
            matcher=matcher,
            registry=registry,
            settings=settings,
            inspectors=inspectors,
        )
        return
    page_url = resource.url
    html = decode_html(resource)
    images = extract_images(html, page_url)
    title, text = page_title(html), page_text(html)
    seen: set[str] = set()
    for img in images:
        if img.url in seen:
            continue
        seen.add(img.url)
        try:
            fetched = fetcher.fetch(img.url)
        except FetchError as exc:
            yield ScanResult(img.url, "error", page_url=page_url, error=describe(exc))
            continue
        yield analyse_bytes(
            fetched.body,
            source=fetched.url,
            page=PageContext(page_url, title=title, text=text, alt=img.alt, caption=img.caption),
            matcher=matcher,
            registry=registry,
            settings=settings,
            inspectors=inspectors,
        )
