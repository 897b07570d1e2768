"""The side-by-side picture: both images, the region, the mark box, keypoints; deterministic."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from monitor.comparison import GREEN, RED, matched_keypoints, render_comparison
from tests.monitor.evidence_fakes import CHINA, jpeg

WORK = CHINA.read_bytes()  # 384x257


def _candidate() -> tuple[bytes, list[list[float]]]:
    with Image.open(CHINA) as img:
        crop = img.convert("RGB").crop((40, 20, 340, 220)).resize((240, 160))
    s = 0.8
    return jpeg(crop), [[s, 0.0, -40 * s], [0.0, s, -20 * s]]


def test_the_picture_shows_both_images_and_the_boxes() -> None:
    cand, t = _candidate()
    png = render_comparison(WORK, cand, transform=t, region=(0, 0, 240, 160), mark_box=(100, 60, 80, 40))
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert img.shape[1] > 384 + 240  # side by side
    colours = {tuple(int(c) for c in px) for px in img.reshape(-1, 3)[::3]}
    assert GREEN in colours and RED in colours
    again = render_comparison(WORK, cand, transform=t, region=(0, 0, 240, 160), mark_box=(100, 60, 80, 40))
    assert again == png  # deterministic bytes


def test_keypoints_agree_with_the_transform() -> None:
    cand, t = _candidate()
    with Image.open(CHINA) as a, Image.open(io.BytesIO(cand)) as b:
        w, c = np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB"))
    p1, p2 = matched_keypoints(w, c, np.asarray(t), limit=30)
    assert 10 <= len(p1) <= 30
    mapped = p1 @ np.asarray(t)[:, :2].T + np.asarray(t)[:, 2]
    assert np.all(np.linalg.norm(mapped - p2, axis=1) <= 6)
    # without a transform, RANSAC finds the same geometry
    q1, q2 = matched_keypoints(w, c, None, limit=30)
    assert len(q1) >= 10
    assert np.median(np.linalg.norm(q1 @ np.asarray(t)[:, :2].T + np.asarray(t)[:, 2] - q2, axis=1)) <= 3


def test_unrelated_images_get_few_or_no_lines() -> None:
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (160, 240, 3), dtype=np.uint8))
    with Image.open(CHINA) as a:
        w = np.asarray(a.convert("RGB"))
    p1, _ = matched_keypoints(w, np.asarray(noise), np.eye(2, 3), limit=40)
    assert len(p1) <= 3
