"""Helpers shared by the benchmarks: the corpus, its work/distractor split, stage timing, tables."""

from __future__ import annotations

import csv
import functools
import hashlib
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "sample"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def corpus_files(folder: Path) -> list[Path]:
    """The images listed in ``folder/manifest.csv`` (or every image under ``folder``).

    A manifest ``file`` is resolved against the folder (``images/x/y.jpg`` in the development
    corpus), then against its parent (``sample/y.jpg`` in the sample), then by name. A folder
    without images (or that does not exist) stops the benchmark with a message saying so.
    """
    manifest = folder / "manifest.csv"
    files: list[Path] = []
    if not manifest.is_file():
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        with manifest.open(newline="") as fh:
            names = [row["file"] for row in csv.DictReader(fh)]
        for name in names:
            for path in (folder / name, folder.parent / name, folder / Path(name).name):
                if path.is_file():
                    files.append(path)
                    break
    if not files:
        raise SystemExit(
            f"no images in {folder}: give a corpus folder (../shared/corpus/sample, or the development "
            "corpus that bash ../shared/corpus/build.sh DEST builds)"
        )
    return files


def _name_hash(path: Path) -> bytes:
    return hashlib.sha256(path.name.encode()).digest()


def limit_files(files: list[Path], limit: int) -> list[Path]:
    """A deterministic subset of ``limit`` files (all when ``limit`` is 0), as the accuracy bench picks."""
    if not limit:
        return files
    return sorted(files, key=lambda f: _name_hash(f).hex())[:limit]


def split(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(works, distractors): half the images, by a hash of the file name, are registered."""
    works: list[Path] = []
    distractors: list[Path] = []
    for f in files:
        (works if _name_hash(f)[0] % 2 == 0 else distractors).append(f)
    return works, distractors


def set_threads(n: int) -> None:
    """Thread count of OpenCV and faiss (OpenMP) in this process."""
    from monitor.index import set_library_threads

    set_library_threads(n)


class StageClock:
    """Accumulates wall time per stage name, by wrapping functions in place.

    ``with clock.patched([(module_or_class, "attr", "stage"), ...]):`` swaps each callable for
    a timed wrapper (names that do not exist are skipped) and restores it on exit. Callers look
    the names up at call time, so the real code runs unchanged, only timed.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def wrap(self, fn: Callable[..., Any], stage: str) -> Callable[..., Any]:
        seconds, calls = self.seconds, self.calls

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[stage] += time.perf_counter() - t0
                calls[stage] += 1

        return timed

    @contextmanager
    def patched(self, targets: Sequence[tuple[object, str, str]]) -> Iterator[None]:
        saved: list[tuple[object, str, Any]] = []
        try:
            for owner, attr, stage in targets:
                original = getattr(owner, attr, None)
                if not callable(original):
                    continue
                saved.append((owner, attr, original))
                setattr(owner, attr, self.wrap(original, stage))
            yield
        finally:
            for owner, attr, original in reversed(saved):
                setattr(owner, attr, original)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float, digits: int = 1) -> str:
    if seconds != seconds:  # NaN
        return "–"
    return f"{1000 * seconds:.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> str:
    """A Markdown table; ``align`` holds one of ``l``/``r`` per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
