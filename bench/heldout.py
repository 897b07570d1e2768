"""Build a check set from Debian packages the development corpus does not use.

    python bench/heldout.py DEST [--packages mate-backgrounds,pingus-data,desktop-base]
                                 [--cap N] [--jobs J]

The corpus README says the monitor is judged on images from other sources. This builds such a
set to run ``bench/accuracy.py DEST/clean`` on, so a change can be checked on pictures no tuning
has looked at. Each package is fetched with ``apt-get download`` and unpacked with
``dpkg-deb -x`` (no root needed). Its PNG, JPEG, GIF and WebP pictures (icons and boot-splash
frames left out) are flattened on white, kept by the corpus's own rules (:func:`convert`: at
least ``--min-side`` px, not near-blank), shrunk to at most 2048 px and written as JPEG q92 to
``DEST/clean/<package>/``, at most ``--cap`` per package (a deterministic pick by a hash of the
path). Near-copies are left out: first by pHash (distance 8 or less), then every picture that
the matcher itself matches whole to one already kept (the same picture in two folders or sizes
would otherwise count as a false positive or a free hit).
Nothing here is copied into the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.fingerprints import (
    CandidateFingerprint,
    WorkFingerprint,
    fingerprint_candidate,
    fingerprint_work,
)
from monitor.images import decode_image
from monitor.matching import Match, Matcher
from monitor.settings import Settings

DEFAULT_PACKAGES = "mate-backgrounds,pingus-data,desktop-base"
SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
SKIP = re.compile(r"/(icons?|plymouth|pixmaps/hicolor|cursors?)/", re.IGNORECASE)


def unpack(package: str, dest: Path) -> Path:
    """``dest/x/<package>``, downloaded and unpacked once."""
    out = dest / "x" / package
    if out.is_dir():
        return out
    debs = dest / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "-q", package], cwd=debs, check=True, capture_output=True)
    deb = max(debs.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    tmp = out.with_suffix(".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    tmp.rename(out)
    return out


def convert(job: tuple[str, str, int]) -> tuple[str, str | None]:
    """(target, phash hex) after writing ``target``, or (target, None) when the picture is left out.

    The development corpus's own rules: transparent margins cut off (2 % kept), at least
    ``min_side`` px after that, at least 5 % opaque, sides at most 4:1, and not near-blank
    (luminance standard deviation 10 or more, histogram entropy 1 bit or more)."""
    source, target, min_side = job
    try:
        with Image.open(source) as im:
            im.seek(0)
            rgba = im.convert("RGBA")
        alpha = rgba.getchannel("A")
        box = alpha.point(lambda v: 255 if v > 16 else 0).getbbox()
        if box is None:
            return target, None
        mx, my = int((box[2] - box[0]) * 0.02), int((box[3] - box[1]) * 0.02)
        box = (
            max(0, box[0] - mx),
            max(0, box[1] - my),
            min(rgba.width, box[2] + mx),
            min(rgba.height, box[3] + my),
        )
        rgba = rgba.crop(box)
        w, h = rgba.size
        if min(w, h) < min_side or max(w, h) > 4 * min(w, h):
            return target, None
        opaque = np.asarray(rgba.getchannel("A")) > 16
        if opaque.mean() < 0.05:
            return target, None
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        gray = flat.convert("L")
        gray.thumbnail((256, 256), Image.Resampling.BILINEAR)
        g = np.asarray(gray)
        hist = np.bincount(g.ravel(), minlength=256) / g.size
        entropy = float(-(hist[hist > 0] * np.log2(hist[hist > 0])).sum())
        if g.std() < 10 or entropy < 1:
            return target, None
        flat.thumbnail((2048, 2048), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        flat.save(buf, "JPEG", quality=92)
        Path(target).write_bytes(buf.getvalue())
        return target, str(imagehash.phash(flat))
    except Exception:
        return target, None


def fingerprints(path: str) -> tuple[str, WorkFingerprint, CandidateFingerprint]:
    """The picture as a work and as a candidate, from one decode (neither changes the image)."""
    settings = Settings()
    image = decode_image(Path(path).read_bytes(), work_side=settings.intake.work_side)
    work = fingerprint_work(image, settings.match.work_max_features)
    cand = fingerprint_candidate(
        image,
        settings.match.local_max_features,
        settings.match.candidate_feature_side,
        undo_upscaling=settings.match.undo_upscaling,
    )
    return path, work, cand


def _whole(m: Match) -> bool:
    """The match shows the whole work as the whole picture (or most of both)."""
    if m.verdict in ("exact", "near_duplicate"):
        return True
    return min(float(m.details.get("coverage_work", 0)), float(m.details.get("coverage_candidate", 0))) >= 0.8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--packages", default=DEFAULT_PACKAGES)
    ap.add_argument("--cap", type=int, default=150, help="at most N pictures per package")
    ap.add_argument("--min-side", type=int, default=256)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    clean = args.dest / "clean"
    if clean.is_dir():
        shutil.rmtree(clean)  # rebuilt whole: a picture left from another run is not checked
    jobs: list[tuple[str, str, int]] = []
    names: set[str] = set()
    for package in args.packages.split(","):
        root = unpack(package, args.dest)
        found = sorted(
            p
            for p in root.rglob("*")
            if p.suffix.lower() in SUFFIXES and p.is_file() and not SKIP.search(str(p.relative_to(root)))
        )
        found.sort(key=lambda p: hashlib.sha256(str(p.relative_to(root)).encode()).hexdigest())
        (clean / package).mkdir(parents=True, exist_ok=True)
        for p in found:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(p.relative_to(root).with_suffix("")))[-120:]
            target = clean / package / f"{name}.jpg"
            for n in range(2, 1000):
                if str(target) not in names:
                    break
                target = clean / package / f"{name}-{n}.jpg"  # foo.png and foo.jpg, or a cut name
            names.add(str(target))
            jobs.append((str(p), str(target), args.min_side))

    kept: list[tuple[str, imagehash.ImageHash]] = []
    per_package: dict[str, int] = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        for target, ph in pool.map(convert, jobs, chunksize=4):
            package = Path(target).parent.name
            if ph is None or per_package.get(package, 0) >= args.cap:
                Path(target).unlink(missing_ok=True)
                continue
            h = imagehash.hex_to_hash(ph)
            if any(h - other <= 8 for _, other in kept):
                Path(target).unlink()
                continue
            kept.append((target, h))
            per_package[package] = per_package.get(package, 0) + 1
        print(f"{len(kept)} pictures after the pHash check: {per_package}")

        settings = Settings()
        works: dict[str, WorkFingerprint] = {}
        matcher = Matcher(settings.match, lambda ids: {i: works[i] for i in ids if i in works})
        dropped = 0
        for path, work, cand in pool.map(fingerprints, [t for t, _ in kept], chunksize=4):
            if any(_whole(m) for m in matcher.match(cand)):
                Path(path).unlink()
                dropped += 1
                continue
            works[path] = work
            matcher.add(path, work)
    print(f"{len(works)} pictures in {clean} ({dropped} left out as matched whole to another)")


if __name__ == "__main__":
    main()
