"""Accuracy benchmark: recall per attack and false positives, against hash-only baselines.

    python bench/accuracy.py [CORPUS_DIR] [--limit N [--offset K]] [--attacks a,b] [--other]
                             [--seed S] [--jobs J] [--show-misses] [--dump FILE.csv]

Half of the corpus images (by a hash of the file name) are registered as works, the other half
are distractors that were never registered. Every image gets every attack; each variant is
scanned. A work variant is recalled when its work is among the matches; any match to another
work, or any match at all for a distractor variant, is a false positive.

The attacks are the issue's suite (``bench.attacks.SUITE``; its total is the **all** row) and
kinds of reuse it leaves out (``EXTRA``: a crop stretched to another aspect ratio, a
perspective view, the work small in a page), reported beside it with a second total; with
``--other``, more kinds of real reuse (``OTHER``: filters, blur, noise, WebP, thumbnails, a
square crop, memes, a GIF palette, someone else's tiled watermark, a negative, quarter turns,
sepia, a round profile picture, a story's blurred fill, turns of 20-45 degrees) with a total of
their own. ``--offset K`` takes the ``--limit`` images after the first
K of the same order: images no tuning has looked at.

The baselines (plain PDQ, plain pHash) use one distance threshold each, the largest that
gives zero false positives on this same run, so they are shown at their best.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.attacks import EXTRA, OTHER, SUITE, encode
from bench.common import DEFAULT_CORPUS, corpus_files
from monitor.fingerprints import CandidateFingerprint, fingerprint_candidate, fingerprint_work
from monitor.images import decode_image
from monitor.matching import Match, Matcher
from monitor.settings import Settings

ATTACKS = {**SUITE, **EXTRA, **OTHER}


DUMP_KEYS = (
    "method",
    "hue_disagreement",
    "model",
    "stretch",
    "inliers",
    "matches",
    "inlier_ratio",
    "ncc",
    "detail_ncc",
    "toned",
    "edge_agreement",
    "chance_inliers",
    "votes",
    "scale",
    "coverage_work",
    "coverage_candidate",
    "pdq_distance",
    "phash_distance",
    "hashes_agree",
)


def split(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(works, distractors) by a hash of each file's folder and name. :func:`bench.common.split`
    hashes the name alone; this one is kept so that runs stay comparable with the README's."""
    works: list[Path] = []
    distractors: list[Path] = []
    for f in files:
        key = f"{f.parent.name}/{f.name}"
        (works if hashlib.sha256(key.encode()).digest()[0] % 2 == 0 else distractors).append(f)
    return works, distractors


def _variant(job: tuple[str, str, int, int]) -> tuple[str, str, CandidateFingerprint | None, float]:
    path, attack, seed, side = job
    rng = random.Random(f"{seed}:{Path(path).name}:{attack}")
    with Image.open(path) as im:
        img = im.convert("RGB")
    out, _ = ATTACKS[attack](img, rng)
    data = encode(out, "JPEG", 90) if attack not in ("jpeg",) else encode(out, "PNG")
    t0 = time.perf_counter()
    try:
        match = Settings().match
        cand = fingerprint_candidate(
            decode_image(data, work_side=side),
            match.local_max_features,
            match.candidate_feature_side,
            undo_upscaling=match.undo_upscaling,
        )
    except Exception:
        return path, attack, None, 0.0
    return path, attack, cand, time.perf_counter() - t0


def _register(job: tuple[str, int]) -> tuple[str, object]:
    path, side = job
    image = decode_image(Path(path).read_bytes(), work_side=side)
    return path, fingerprint_work(image, Settings().match.work_max_features)


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) Hamming distances between packed codes a (n, k) and b (m, k)."""
    x = np.bitwise_xor(a[:, None, :], b[None, :, :])
    return np.unpackbits(x, axis=2).sum(axis=2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--limit", type=int, default=0, help="use at most N corpus images")
    ap.add_argument("--attacks", default="", help="comma-separated subset of: " + ", ".join(ATTACKS))
    ap.add_argument("--other", action="store_true", help="add the other kinds of reuse (bench.attacks.OTHER)")
    ap.add_argument("--offset", type=int, default=0, help="skip the first N images of that order")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--show-misses", action="store_true")
    ap.add_argument("--dump", type=Path, help="write one CSV row per match (and per miss) with its evidence")
    args = ap.parse_args()

    settings = Settings()
    files = corpus_files(args.corpus)
    if args.limit:
        files = sorted(files, key=lambda f: hashlib.sha256(f.name.encode()).hexdigest())
        files = files[args.offset : args.offset + args.limit]
    works, distractors = split(files)
    default = {**SUITE, **EXTRA, **(OTHER if args.other else {})}
    attacks = [a for a in (args.attacks.split(",") if args.attacks else default) if a]
    side = settings.intake.work_side
    print(f"corpus {args.corpus}: {len(works)} works, {len(distractors)} distractors, {len(attacks)} attacks")

    fps: dict[str, object] = {}
    matcher = Matcher(settings.match, lambda ids: {i: fps[i] for i in ids if i in fps})  # type: ignore[misc]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        for path, fp in pool.map(_register, [(str(p), side) for p in works], chunksize=4):
            fps[path] = fp
            matcher.add(path, fp)  # type: ignore[arg-type]
        print(f"registered {len(works)} works in {time.perf_counter() - t0:.1f}s")

        jobs = [(str(p), a, args.seed, side) for p in works + distractors for a in attacks]
        work_set = {str(p) for p in works}
        stats: dict[str, dict[str, int]] = {
            a: {"n": 0, "hit": 0, "fp": 0, "dn": 0, "dfp": 0} for a in attacks
        }
        records = []  # (attack, is_work, path, pdq variants, phash)
        dump_rows: list[dict[str, object]] = []
        match_time = 0.0
        fp_time = 0.0
        misses = []
        t1 = time.perf_counter()
        for path, attack, cand, dt in pool.map(_variant, jobs, chunksize=4):
            st = stats[attack]
            is_work = path in work_set
            if cand is None:
                if is_work:
                    st["n"] += 1
                    misses.append((attack, path, "decode failed"))
                continue
            fp_time += dt
            t = time.perf_counter()
            found = matcher.match(cand)
            match_time += time.perf_counter() - t
            ids = [m.work_id for m in found]
            shown: list[Match | None] = [*found] or [None]
            for m in shown:
                d = m.details if m else {}
                dump_rows.append(
                    {
                        "attack": attack,
                        "variant_of": Path(path).name,
                        "is_work": int(is_work),
                        "matched": Path(m.work_id).name if m else "",
                        "correct": int(m is not None and m.work_id == path),
                        "features": len(cand.features),
                        "pdq_quality": cand.pdq_quality,
                        **{k: d.get(k, "") for k in DUMP_KEYS},
                    }
                )
            if is_work:
                st["n"] += 1
                st["hit"] += path in ids
                st["fp"] += any(i != path for i in ids)
                if path not in ids:
                    misses.append((attack, path, ""))
            else:
                st["dn"] += 1
                st["dfp"] += bool(ids)
                if ids:
                    misses.append((attack, path, f"FALSE POSITIVE -> {ids}"))
            records.append((attack, is_work, path, cand.pdq_variants[0], cand.phash))
        scanned = len(records)
        print(
            f"scanned {scanned} variants in {time.perf_counter() - t1:.1f}s "
            f"(fingerprint {1000 * fp_time / max(1, scanned):.1f} ms, "
            f"match {1000 * match_time / max(1, scanned):.1f} ms each)"
        )

    if args.dump:
        with args.dump.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(dump_rows[0]) if dump_rows else ["attack"])
            writer.writeheader()
            writer.writerows(dump_rows)

    # ---- baselines: plain PDQ and plain pHash, threshold at zero false positives
    work_paths = [str(p) for p in works]
    wpdq = np.array([np.frombuffer(fps[p].hashes.pdq, np.uint8) for p in work_paths])  # type: ignore[attr-defined]
    wph = np.array([np.frombuffer(fps[p].hashes.phash, np.uint8) for p in work_paths])  # type: ignore[attr-defined]
    vpdq = np.array([np.frombuffer(r[3], np.uint8) for r in records])
    vph = np.array([np.frombuffer(r[4], np.uint8) for r in records])
    baseline: dict[str, dict[str, int]] = {}
    for name, wc, vc in (("pdq", wpdq, vpdq), ("phash", wph, vph)):
        dist = hamming_matrix(vc, wc)
        own = np.array([work_paths.index(r[2]) if r[1] else -1 for r in records])
        true_d = np.where(own >= 0, dist[np.arange(len(records)), np.clip(own, 0, None)], 10**6)
        other = dist.copy()
        other[np.arange(len(records))[own >= 0], own[own >= 0]] = 10**6
        threshold = int(other.min()) - 1  # largest threshold with no false positive
        baseline[name] = {"threshold": threshold}
        for a in attacks:
            sel = np.array([r[0] == a and r[1] for r in records])
            baseline[name][a] = int((true_d[sel] <= threshold).sum())

    print()
    print(
        f"| attack | variants | ours | PDQ only (≤{baseline['pdq']['threshold']}) | "
        f"pHash only (≤{baseline['phash']['threshold']}) | false positives (ours) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for a in attacks:
        st = stats[a]
        n = max(1, st["n"])
        print(
            f"| {a} | {st['n']} | {st['hit'] / n:.3f} | {baseline['pdq'][a] / n:.3f} | "
            f"{baseline['phash'][a] / n:.3f} | {st['fp'] + st['dfp']} |"
        )
    in_suite = [a for a in attacks if a in SUITE]
    groups = [("all", in_suite)] if in_suite else []
    if any(a in EXTRA for a in attacks):
        label = "all, with " + ", ".join(a for a in EXTRA if a in attacks)
        groups.append((label, [a for a in attacks if a not in OTHER]))
    if any(a in OTHER for a in attacks):
        groups.append(("other reuse", [a for a in attacks if a in OTHER]))
    for label, chosen in groups:
        tot = {k: sum(stats[a][k] for a in chosen) for k in ("n", "hit", "fp", "dn", "dfp")}
        pdq, phash = (sum(baseline[b][a] for a in chosen) for b in ("pdq", "phash"))
        n = max(1, tot["n"])
        print(
            f"| **{label}** | {tot['n']} | **{tot['hit'] / n:.3f}** | {pdq / n:.3f} | {phash / n:.3f} | "
            f"**{tot['fp'] + tot['dfp']}** |"
        )
    tot = {k: sum(stats[a][k] for a in attacks) for k in ("n", "fp", "dn", "dfp")}
    print(
        f"\nfalse positives: {tot['fp']} on {tot['n']} work variants (wrong work), "
        f"{tot['dfp']} on {tot['dn']} distractor variants"
    )
    if args.show_misses:
        for attack, path, why in misses:
            print(f"  miss {attack:22s} {Path(path).name} {why}")


if __name__ == "__main__":
    main()
