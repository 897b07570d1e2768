"""Shared helpers for the fingerprint, index and matcher tests.

Real pictures come from ``tests/fixtures/images`` (licences in its ``manifest.csv``); the
rest is generated here with numpy, so every test runs offline and deterministically.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import cv2
import faiss
import numpy as np
from PIL import Image

from bench.attacks import encode
from monitor.fingerprints import (
    CandidateFingerprint,
    GlobalHashes,
    LocalFeatures,
    WorkFingerprint,
    fingerprint_candidate,
    fingerprint_work,
)
from monitor.images import decode_image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "images"
RETINA = "pypi-scikit-image__retina.jpg"  # photo, smooth with fine vessels
CHINA = "pypi-scikit-learn__china.jpg"  # photo, textured everywhere
THUG = "wesnoth-1.16-data__portraits__humans__thug.jpg"  # illustration on white
PAINTING = "stellarium-skyculture-art__egyptian_dendera__himmelskuh_sirius.jpg"  # flat-coloured painting
GLOBE = "openclipart-png__geography__svg_globe_blue.png"  # clip art: a blue disk, lighter continents
BLUE_GIRL = "openclipart-png__people__blue_girl_dirk_struve.png"  # clip art: blue hair with black lines
BEACH_BALL = "openclipart-png__recreation__toys__beach_ball_01.png"  # clip art: flat colours, outlines
SAPIN = "openclipart-png__decorations__sapin_01.png"  # clip art: a fir tree on white
ELARUN = "plasma-workspace-wallpapers__Elarun__2560x1600.jpg"  # gradient wallpaper, few corners
CUPS = "plasma-workspace-wallpapers__ColorfulCups__2560x1600.jpg"  # rows of alike cups: repetitive
WOOD = "gnome-backgrounds__wood-d.jpg"  # vertical stripes under a light: no corner at all
GALAXY = "stellarium-nebulae__m100.jpg"  # a spiral galaxy's bright core among stars
#: two small copies of another object's photo, a globular cluster (a bright core among stars)
CLUSTER_THUMBNAILS = ("stellarium-nebulae__m13__thumbnail_jpeg.jpg", "stellarium-nebulae__m13__tiny.jpg")
SPRITES = "pingus-data__traps__tut.jpg"  # a game's animation strip: six alike frames in a row
GUITAR = "openclipart-png__recreation__music__guitar_jarno_vasamaa1.png"  # clip art: a guitar, outlines
#: one drawing registered twice: its black-and-white outline and its coloured original
BASEBALL_BW = "openclipart-png__recreation__sports__baseball_bw_ganson.png"
BASEBALL_COLOUR = "openclipart-png__recreation__sports__basebalm_ganson.png"
#: the bench's crop_zoom of the beach ball: a piece of it enlarged, smooth, few usual corners
BEACH_BALL_ZOOMED = "openclipart-png__recreation__toys__beach_ball_01__crop_zoom.jpg"


def manifest() -> dict[str, dict[str, str]]:
    with (FIXTURES / "manifest.csv").open(newline="") as fh:
        return {row["file"]: row for row in csv.DictReader(fh)}


@cache
def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_image(name: str) -> Image.Image:
    """A fixture picture as a fresh RGB Pillow image."""
    with Image.open(io.BytesIO(fixture_bytes(name))) as img:
        return img.convert("RGB")


def textured(width: int, height: int, seed: int = 0) -> Image.Image:
    """Multi-scale smooth noise: corners at every scale, nothing repeats."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((height, width, 3))
    for step in (2, 4, 8, 16, 32):
        coarse = rng.normal(0.0, 1.0, (height // step + 2, width // step + 2, 3))
        acc += cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    acc = (acc - acc.mean()) / acc.std()
    return Image.fromarray(np.clip(128 + 70 * acc, 0, 255).astype(np.uint8))


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    """Independent random pixels."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def flat(width: int, height: int, level: int) -> Image.Image:
    return Image.new("RGB", (width, height), (level, level, level))


def gradient(width: int, height: int) -> Image.Image:
    row = np.linspace(0, 255, width).astype(np.uint8)
    return Image.fromarray(np.repeat(np.tile(row, (height, 1))[..., None], 3, axis=2))


def sky(
    width: int,
    height: int,
    sun: tuple[float, float],
    arc: tuple[float, float],
) -> Image.Image:
    """A smooth sky: a vertical blue-to-orange ramp with a soft sun glow at ``sun`` and a faint
    ring (6 levels) centred at ``arc`` (both as shares of the width and height): a PDQ quality
    near 10 and almost no ORB corner, like a game's or a desktop theme's background."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (y / (height - 1))[..., None]
    img = np.array([50, 40, 130], np.float32) * (1 - t) + np.array([235, 160, 60], np.float32) * t
    glow = np.hypot(x - sun[0] * width, y - sun[1] * height) / (0.35 * min(width, height))
    img += (40 * np.exp(-glow * glow))[..., None] * np.array([1.0, 0.9, 0.5], np.float32)
    ring = np.hypot(x - arc[0] * width, y - arc[1] * height) / min(width, height)
    img += (6 * np.exp(-(((ring - 0.5) / 0.03) ** 2)))[..., None]
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def work_fingerprint(img: Image.Image | bytes, *, work_side: int = 1024) -> WorkFingerprint:
    """Register-side fingerprint of a picture (Pillow images are stored losslessly)."""
    data = img if isinstance(img, bytes) else encode(img, "PNG")
    return fingerprint_work(decode_image(data, work_side=work_side))


def candidate_fingerprint(
    img: Image.Image | bytes, *, fmt: str = "JPEG", quality: int = 90, work_side: int = 1024
) -> CandidateFingerprint:
    """Scan-side fingerprint; by default saved as a web JPEG first, as found copies are."""
    data = img if isinstance(img, bytes) else encode(img, fmt, quality)
    return fingerprint_candidate(decode_image(data, work_side=work_side))


def stub_work(width: int, height: int) -> WorkFingerprint:
    """A featureless work of a given size, for pure geometry."""
    return WorkFingerprint(
        width=width,
        height=height,
        hashes=GlobalHashes(pdq=bytes(32), pdq_quality=0, phash=bytes(8)),
        features=LocalFeatures.empty(),
        mirrored=LocalFeatures.empty(),
        thumb=np.zeros((1, 1), np.uint8),
    )


def stub_candidate(width: int, height: int) -> CandidateFingerprint:
    return CandidateFingerprint(
        width=width,
        height=height,
        pdq_variants=(bytes(32),) * 8,
        pdq_quality=0,
        phash=bytes(8),
        phash_mirrored=bytes(8),
        features=LocalFeatures.empty(),
        thumb=np.zeros((1, 1), np.uint8),
    )


def random_descriptors(n: int, seed: int, nbytes: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, nbytes), dtype=np.uint8)


def flip_bits(codes: np.ndarray, nbits: int, seed: int) -> np.ndarray:
    """A copy of ``codes`` with exactly ``nbits`` distinct bits flipped in every row."""
    rng = np.random.default_rng(seed)
    bits = np.unpackbits(codes, axis=1)
    for row in bits:
        row[rng.choice(row.size, size=nbits, replace=False)] ^= 1
    return np.packbits(bits, axis=1)


@contextmanager
def one_faiss_thread() -> Iterator[None]:
    """Run faiss on one OpenMP thread: the test indexes are tiny, and on a busy machine
    OpenMP's spinning worker threads make each search wait for a core (10x slower measured)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
