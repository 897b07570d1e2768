"""Behaviour of :mod:`monitor.fingerprints`: serialized form, global hashes, local features."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

import monitor.fingerprints as fp_module
from bench.attacks import encode
from monitor.errors import FingerprintError
from monitor.fingerprints import (
    CHROMA_SIDE,
    DIHEDRAL,
    FORMAT_VERSION,
    MIRRORING,
    PDQ_BYTES,
    PHASH_BYTES,
    ROUND_RIM,
    THUMB_SIDE,
    GlobalHashes,
    LocalFeatures,
    WorkFingerprint,
    centred_cuts,
    cut_hashes,
    fingerprint_candidate,
    global_hashes,
    hamming,
    parse_hex_hash,
    pdq_hashes,
    round_filled,
    upscaled_by,
)
from monitor.images import decode_image
from monitor.matching import ratio_matches
from monitor.settings import MatchSettings
from tests.monitor.helpers import (
    CHINA,
    ELARUN,
    FIXTURES,
    PAINTING,
    RETINA,
    SAPIN,
    THUG,
    fixture_bytes,
    fixture_image,
    flat,
    gradient,
    manifest,
    noise,
    textured,
    work_fingerprint,
)

# Pixel-array versions of the dihedral transforms, as DIHEDRAL names them (x right, y down).
TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda a: a,
    "rot90ccw": lambda a: np.rot90(a, 1),
    "rot180": lambda a: np.rot90(a, 2),
    "rot90cw": lambda a: np.rot90(a, -1),
    "flip_v": lambda a: a[::-1],
    "flip_h": lambda a: a[:, ::-1],
    "transpose": lambda a: a.transpose(1, 0, 2),
    "antitranspose": lambda a: np.rot90(a, 2).transpose(1, 0, 2),
}


def pixels(name: str) -> np.ndarray:
    return decode_image(fixture_bytes(name)).pixels


def quadrant_shares(points: np.ndarray, width: int, height: int) -> list[float]:
    left = points[:, 0] < width / 2
    top = points[:, 1] < height / 2
    return [float(np.mean(left & top)), float(np.mean(~left & top)), float(np.mean(left & ~top)),
            float(np.mean(~left & ~top))]  # fmt: skip


@pytest.fixture(scope="module")
def china_fp() -> WorkFingerprint:
    return work_fingerprint(fixture_bytes(CHINA))


@pytest.fixture(scope="module")
def big_fp() -> WorkFingerprint:
    """A 1600x1200 textured JPEG decoded with a 512-px working copy (scale 0.32)."""
    return work_fingerprint(encode(textured(1600, 1200, seed=2), "JPEG", 90), work_side=512)


def test_fixtures_are_the_ones_in_the_manifest() -> None:
    rows = manifest()
    assert {p.name for p in FIXTURES.iterdir() if p.suffix != ".csv"} == set(rows)
    for name, row in rows.items():
        assert row["license"].strip()
        decoded = decode_image(fixture_bytes(name))
        assert decoded.sha256 == row["sha256"]
        assert (decoded.width, decoded.height) == (int(row["width"]), int(row["height"]))


# --------------------------------------------------------------------------- serialized form


def fields_of(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {key: z[key] for key in z.files}


def rewritten(data: bytes, **changes: Any) -> bytes:
    """``to_bytes`` output with some arrays replaced (or removed, for ``None``)."""
    fields: dict[str, Any] = fields_of(data)
    for key, value in changes.items():
        if value is None:
            del fields[key]
        else:
            fields[key] = value
    buf = io.BytesIO()
    np.savez_compressed(buf, **fields)
    return buf.getvalue()


def assert_same_fingerprint(a: WorkFingerprint, b: WorkFingerprint) -> None:
    assert (a.width, a.height, a.is_grayscale) == (b.width, b.height, b.is_grayscale)
    assert (a.hashes.pdq, a.hashes.pdq_quality, a.hashes.phash) == (
        b.hashes.pdq,
        b.hashes.pdq_quality,
        b.hashes.phash,
    )
    for mine, theirs in ((a.features, b.features), (a.mirrored, b.mirrored)):
        assert mine.points.dtype == theirs.points.dtype == np.float32
        assert mine.descriptors.dtype == theirs.descriptors.dtype == np.uint8
        np.testing.assert_array_equal(mine.points, theirs.points)
        np.testing.assert_array_equal(mine.descriptors, theirs.descriptors)
        assert (mine.shapes is None) == (theirs.shapes is None)
        if mine.shapes is not None and theirs.shapes is not None:  # stored at half precision
            assert mine.shapes.dtype == theirs.shapes.dtype == np.float32
            np.testing.assert_allclose(mine.shapes, theirs.shapes, rtol=2e-3, atol=0.2)
    assert a.thumb.dtype == b.thumb.dtype == np.uint8
    np.testing.assert_array_equal(a.thumb, b.thumb)
    assert (a.chroma is None) == (b.chroma is None)
    if a.chroma is not None and b.chroma is not None:
        assert a.chroma.dtype == b.chroma.dtype == np.int8
        np.testing.assert_array_equal(a.chroma, b.chroma)


def test_round_trip_keeps_every_field(china_fp: WorkFingerprint) -> None:
    assert len(china_fp.features) > 0 and len(china_fp.mirrored) > 0
    assert_same_fingerprint(WorkFingerprint.from_bytes(china_fp.to_bytes()), china_fp)


def test_a_colour_work_keeps_its_chroma_at_the_colour_thumbnail_size(china_fp: WorkFingerprint) -> None:
    chroma = china_fp.chroma
    assert chroma is not None and chroma.dtype == np.int8 and chroma.shape[2] == 2
    assert max(chroma.shape[:2]) == CHROMA_SIDE
    assert chroma.shape[1] / chroma.shape[0] == pytest.approx(china_fp.width / china_fp.height, rel=0.02)
    assert np.abs(chroma.astype(np.int16)).max() > 20  # the photo has colour


def test_a_fingerprint_stored_before_the_colour_thumbnail_still_reads(china_fp: WorkFingerprint) -> None:
    back = WorkFingerprint.from_bytes(rewritten(china_fp.to_bytes(), chroma=None))
    assert back.chroma is None and back.hashes.pdq == china_fp.hashes.pdq


def test_a_fingerprint_stored_before_keypoint_shapes_still_reads(china_fp: WorkFingerprint) -> None:
    back = WorkFingerprint.from_bytes(rewritten(china_fp.to_bytes(), shapes=None, m_shapes=None))
    assert back.features.shapes is None and back.mirrored.shapes is None
    np.testing.assert_array_equal(back.features.points, china_fp.features.points)


def test_keypoint_shapes_follow_the_picture_as_it_turns_and_scales() -> None:
    # the same corner found in a copy turned a quarter and shrunk to 0.6: its orientation is
    # 90 degrees off and its size 0.6 times (ORB's pyramid steps are 1.2 apart)
    china = fixture_image(CHINA)
    work = work_fingerprint(china).features
    small = china.resize((round(china.width * 0.6), round(china.height * 0.6)), Image.Resampling.LANCZOS)
    turned = small.transpose(Image.Transpose.ROTATE_90)
    cand = work_fingerprint(turned).features
    assert work.shapes is not None and cand.shapes is not None
    assert work.shapes.shape == work.points.shape and (work.shapes[:, 1] > 0).all()
    pairs = ratio_matches(work, cand, max_distance=40)
    assert len(pairs) > 100
    turn = np.mod(cand.shapes[pairs[:, 1], 0] - work.shapes[pairs[:, 0], 0], 360.0)
    scale = cand.shapes[pairs[:, 1], 1] / work.shapes[pairs[:, 0], 1]
    near = (np.abs(turn - 270.0) <= 20) & (np.abs(np.log2(scale / 0.6)) <= 0.3)
    assert near.mean() > 0.7, (np.median(turn), np.median(scale))


def test_round_trip_of_a_grayscale_work_keeps_the_flag() -> None:
    fp = work_fingerprint(fixture_image(THUG).convert("L"))
    assert fp.is_grayscale and fp.chroma is None
    assert_same_fingerprint(WorkFingerprint.from_bytes(fp.to_bytes()), fp)


def test_round_trip_of_a_featureless_work() -> None:
    fp = work_fingerprint(flat(120, 80, 90))
    assert len(fp.features) == len(fp.mirrored) == 0
    back = WorkFingerprint.from_bytes(fp.to_bytes())
    assert_same_fingerprint(back, fp)
    assert back.features.points.shape == (0, 2) and back.features.descriptors.shape == (0, 32)


def test_the_format_is_versioned(china_fp: WorkFingerprint) -> None:
    assert int(fields_of(china_fp.to_bytes())["version"][0]) == FORMAT_VERSION
    future = rewritten(china_fp.to_bytes(), version=np.array([FORMAT_VERSION + 1], np.int32))
    with pytest.raises(FingerprintError, match=f"format {FORMAT_VERSION + 1}"):
        WorkFingerprint.from_bytes(future)


def _npy_bytes() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    return buf.getvalue()


MALFORMED: dict[str, Callable[[bytes], bytes]] = {
    "text": lambda good: b"this is not a fingerprint",
    "a single npy array": lambda good: _npy_bytes(),
    "missing thumbnail": lambda good: rewritten(good, thumb=None),
    "missing version": lambda good: rewritten(good, version=None),
    "empty version": lambda good: rewritten(good, version=np.zeros(0, np.int32)),
    "three-value size": lambda good: rewritten(good, size=np.array([1, 2, 3], np.int64)),
    "points with 3 columns": lambda good: rewritten(good, points=np.zeros((5, 3), np.float32)),
    "points not 2-D": lambda good: rewritten(good, points=np.zeros(10, np.float32)),
    "fewer descriptors than points": lambda good: rewritten(
        good, points=np.zeros((5, 2), np.float32), descriptors=np.zeros((4, 32), np.uint8)
    ),
    "16-byte descriptors": lambda good: rewritten(
        good, points=np.zeros((5, 2), np.float32), descriptors=np.zeros((5, 16), np.uint8)
    ),
    "mirrored shapes disagree": lambda good: rewritten(good, m_points=np.zeros((7, 2), np.float32)),
    "31-byte PDQ": lambda good: rewritten(good, pdq=np.zeros(31, np.uint8)),
    "9-byte pHash": lambda good: rewritten(good, phash=np.zeros(9, np.uint8)),
    "chroma of 3 channels": lambda good: rewritten(good, chroma=np.zeros((4, 4, 3), np.int8)),
    "chroma not int8": lambda good: rewritten(good, chroma=np.zeros((4, 4, 2), np.float32)),
    "keypoint shapes of other features": lambda good: rewritten(good, shapes=np.zeros((3, 2), np.float16)),
    "keypoint shapes not finite": lambda good: rewritten(
        good, m_shapes=np.full(fields_of(good)["m_points"].shape, np.inf, np.float16)
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_bytes_raise_fingerprint_error(china_fp: WorkFingerprint, case: str) -> None:
    with pytest.raises(FingerprintError):
        WorkFingerprint.from_bytes(MALFORMED[case](china_fp.to_bytes()))


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda good: b"", id="empty"),
        pytest.param(lambda good: good[: len(good) // 2], id="half"),
        pytest.param(lambda good: good[:-1], id="last-byte"),
    ],
)  # fmt: skip
def test_truncated_bytes_raise_fingerprint_error(
    china_fp: WorkFingerprint, cut: Callable[[bytes], bytes]
) -> None:
    with pytest.raises(FingerprintError):
        WorkFingerprint.from_bytes(cut(china_fp.to_bytes()))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"thumb": np.zeros((4, 4, 3), np.uint8)}, id="rgb-thumbnail"),
        pytest.param({"thumb": np.zeros(16, np.uint8)}, id="1d-thumbnail"),
        pytest.param({"size": np.array([0, 257], np.int64)}, id="zero-width"),
    ],
)
def test_semantically_malformed_fields_are_refused(china_fp: WorkFingerprint, change: dict[str, Any]) -> None:
    with pytest.raises(FingerprintError):
        WorkFingerprint.from_bytes(rewritten(china_fp.to_bytes(), **change))


def test_global_hashes_check_their_lengths() -> None:
    GlobalHashes(pdq=bytes(PDQ_BYTES), pdq_quality=100, phash=bytes(PHASH_BYTES))
    with pytest.raises(FingerprintError):
        GlobalHashes(pdq=bytes(PDQ_BYTES - 1), pdq_quality=100, phash=bytes(PHASH_BYTES))
    with pytest.raises(FingerprintError):
        GlobalHashes(pdq=bytes(PDQ_BYTES), pdq_quality=100, phash=bytes(PHASH_BYTES + 1))


# --------------------------------------------------------------------------- hex hashes, hamming


def test_parse_hex_hash_round_trips_a_real_hash(china_fp: WorkFingerprint) -> None:
    pdq = china_fp.hashes.pdq
    assert parse_hex_hash(pdq.hex(), PDQ_BYTES) == pdq
    assert parse_hex_hash(pdq.hex().upper(), PDQ_BYTES) == pdq
    assert parse_hex_hash(china_fp.hashes.phash.hex(), PHASH_BYTES) == china_fp.hashes.phash


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ab" * 31, "expected a 256-bit hash, got 248 bits"),
        ("ab" * 33, "expected a 256-bit hash, got 264 bits"),
        ("", "expected a 256-bit hash, got 0 bits"),
        ("zz" * 32, "not a hex hash"),
        ("a" * 63, "not a hex hash"),
        ("0x" + "ab" * 31, "not a hex hash"),
    ],
)
def test_parse_hex_hash_refuses_bad_text(text: str, message: str) -> None:
    with pytest.raises(FingerprintError, match=message):
        parse_hex_hash(text, PDQ_BYTES)


def test_hamming_counts_differing_bits() -> None:
    assert hamming(b"", b"") == 0
    assert hamming(b"\x00\x00", b"\x00\x00") == 0
    assert hamming(b"\x00", b"\xff") == 8
    assert hamming(b"\x0f\x01", b"\x00\x00") == 5
    assert hamming(bytes(32), b"\xff" * 32) == 256
    a, b = b"\x12\x34\x56", b"\xab\xcd\xef"
    assert hamming(a, b) == hamming(b, a) == sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))


def test_hamming_refuses_hashes_of_different_lengths() -> None:
    with pytest.raises(ValueError):
        hamming(bytes(32), bytes(8))


# --------------------------------------------------------------------------- global hashes


def test_dihedral_names_cover_the_eight_symmetries() -> None:
    assert sorted(DIHEDRAL) == sorted(TRANSFORMS)
    assert {"flip_v", "flip_h", "transpose", "antitranspose"} == MIRRORING


@pytest.mark.parametrize("name", [CHINA, THUG])
def test_each_pdq_variant_is_the_hash_of_that_transform(name: str) -> None:
    """``pdq_hashes(img)[i]`` ≈ ``pdq(T_i(img))``; the other variants are far.

    Measured on these pictures: 0-30 bits to the right variant, 90+ to the others.
    """
    rgb = pixels(name)
    variants, quality = pdq_hashes(rgb)
    assert quality >= 50
    for i, transform in enumerate(DIHEDRAL):
        (own, *_), _ = pdq_hashes(np.ascontiguousarray(TRANSFORMS[transform](rgb)))
        distances = [hamming(own, v) for v in variants]
        assert distances[i] <= 40, (transform, distances)
        assert min(d for j, d in enumerate(distances) if j != i) > 90, (transform, distances)


def test_pdq_variants_are_within_the_pdq_match_threshold_on_a_smooth_photo() -> None:
    rgb = pixels(RETINA)
    variants, _ = pdq_hashes(rgb)
    distances = {
        transform: hamming(pdq_hashes(np.ascontiguousarray(TRANSFORMS[transform](rgb)))[0][0], variants[i])
        for i, transform in enumerate(DIHEDRAL)
    }
    assert max(distances.values()) <= 31, distances


def _hashes(img: Image.Image) -> GlobalHashes:
    return global_hashes(decode_image(encode(img, "PNG")))


@pytest.fixture(scope="module")
def fixture_hashes() -> dict[str, GlobalHashes]:
    return {name: _hashes(fixture_image(name)) for name in (RETINA, CHINA, THUG, PAINTING)}


@pytest.mark.parametrize("name", [RETINA, CHINA, THUG, PAINTING])
def test_a_one_degree_rotation_stays_close(name: str, fixture_hashes: dict[str, GlobalHashes]) -> None:
    """Measured: PDQ 14-28 bits, pHash 0-8 bits."""
    rotated = _hashes(fixture_image(name).rotate(1, resample=Image.Resampling.BICUBIC))
    original = fixture_hashes[name]
    assert hamming(rotated.pdq, original.pdq) <= 40
    assert hamming(rotated.phash, original.phash) <= 12


def test_unrelated_pictures_are_far(fixture_hashes: dict[str, GlobalHashes]) -> None:
    """Measured: PDQ 128-142 bits, pHash 28-36 bits between the fixtures."""
    names = list(fixture_hashes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert hamming(fixture_hashes[a].pdq, fixture_hashes[b].pdq) > 90, (a, b)
            assert hamming(fixture_hashes[a].phash, fixture_hashes[b].phash) > 20, (a, b)


@pytest.mark.parametrize(
    "img",
    [flat(200, 150, 0), flat(200, 150, 128), flat(64, 300, 255), gradient(256, 256)],
    ids=["black", "gray", "white", "gradient"],
)
def test_flat_pictures_have_low_pdq_quality(img: Image.Image) -> None:
    assert _hashes(img).pdq_quality < 50


def test_textured_pictures_have_high_pdq_quality(fixture_hashes: dict[str, GlobalHashes]) -> None:
    assert all(h.pdq_quality >= 50 for h in fixture_hashes.values())
    assert _hashes(noise(200, 200)).pdq_quality >= 50


# --------------------------------------------------------------------------- local features, work fingerprint


def test_work_fingerprint_describes_the_full_size_picture(big_fp: WorkFingerprint) -> None:
    assert (big_fp.width, big_fp.height) == (1600, 1200)
    assert big_fp.thumb.dtype == np.uint8 and big_fp.thumb.shape == (192, THUMB_SIDE)
    assert not big_fp.is_grayscale
    assert 0 < len(big_fp.features) <= 1500 and 0 < len(big_fp.mirrored) <= 1500
    assert big_fp.features.descriptors.shape == (len(big_fp.features), 32)
    assert big_fp.features.descriptors.dtype == np.uint8


def test_small_thumbnails_are_not_enlarged() -> None:
    fp = work_fingerprint(textured(120, 90))
    assert fp.thumb.shape == (90, 120)


def test_feature_points_are_in_original_pixels(big_fp: WorkFingerprint) -> None:
    """Found on the 512-px working copy, reported in the 1600x1200 original's pixels."""
    for points in (big_fp.features.points, big_fp.mirrored.points):
        xs, ys = points[:, 0], points[:, 1]
        assert xs.min() >= 0 and ys.min() >= 0 and xs.max() <= 1600 and ys.max() <= 1200
        assert xs.min() < 160 and xs.max() > 1440, (xs.min(), xs.max())
        assert ys.min() < 120 and ys.max() > 1080, (ys.min(), ys.max())


def test_small_pictures_are_enlarged_for_orb_but_points_stay_in_their_pixels() -> None:
    fp = work_fingerprint(textured(200, 150, seed=1))
    points = fp.features.points
    assert len(fp.features) > 100
    assert points.min() >= 0 and points[:, 0].max() <= 200 and points[:, 1].max() <= 150
    assert points[:, 0].max() > 160 and points[:, 1].max() > 120


def test_features_are_spread_over_every_quadrant(big_fp: WorkFingerprint, china_fp: WorkFingerprint) -> None:
    assert min(quadrant_shares(big_fp.features.points, 1600, 1200)) > 0.15
    # china.jpg: a pagoda and trees below, sky in the top right; every quadrant still has features
    assert min(quadrant_shares(china_fp.features.points, china_fp.width, china_fp.height)) > 0.03


def test_a_prefix_of_the_features_visits_most_occupied_cells(china_fp: WorkFingerprint) -> None:
    """Ordered by spread first: the first k features lie in (nearly) k cells of the 8x8 grid.

    Strongest-first, the first 45 ORB corners of this picture lie in 9 cells.
    """
    points = china_fp.features.points
    cells = np.minimum((points * 8 / [china_fp.width, china_fp.height]).astype(int), 7)
    occupied = len({tuple(c) for c in cells.tolist()})
    assert occupied >= 32
    assert len({tuple(c) for c in cells[:occupied].tolist()}) >= 0.85 * occupied


def test_mirrored_features_are_those_of_the_mirrored_picture(china_fp: WorkFingerprint) -> None:
    plain = china_fp.features.points
    unmirrored = china_fp.mirrored.points * [-1, 1] + [china_fp.width, 0]
    nearest = np.sqrt(((unmirrored[:, None, :] - plain[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
    assert np.mean(nearest <= 2.0) > 0.9


def test_the_indexed_prefix_spans_every_scale() -> None:
    """ORB's finest level finds corners on whole pixels; coarser levels report them scaled (x 1.2^k).

    At scale 1 (a 1024-px work, no enlargement) a whole-pixel position marks a finest-level
    keypoint: 43% of all 1500 features here. Measured, with index_features=1000: 64% of the
    indexed prefix and 0% of the 500 left out (in spread order they would be 46% and 36%).
    """
    n = MatchSettings().index_features
    fp = work_fingerprint(textured(1024, 768, seed=3))
    assert len(fp.features) > n
    whole = np.all(fp.features.points == np.round(fp.features.points), axis=1)
    assert 0.2 < whole.mean() < 0.8
    assert abs(whole[:n].mean() - whole.mean()) < 0.12
    assert whole[n:].mean() > 0.1


def test_busy_texture_in_one_half_does_not_take_every_feature() -> None:
    painting = fixture_image(PAINTING)
    w, h = painting.size
    work = Image.new("RGB", (2 * w, h))
    work.paste(textured(w, h, seed=5).convert("L").convert("RGB"), (0, 0))
    work.paste(painting, (w, 0))
    fp = work_fingerprint(work)
    # ORB keeps (nearly) every corner and the grid spread chooses: the texture cannot starve the painting
    assert len(work_fingerprint(painting).features) > 500
    assert np.mean(fp.features.points[:, 0] >= w) > 0.1


def test_a_smooth_picture_takes_its_faint_corners_too(
    china_fp: WorkFingerprint, monkeypatch: pytest.MonkeyPatch
) -> None:
    img = fixture_image(ELARUN)  # a gradient wallpaper: 85 corners of the usual contrast
    wallpaper = work_fingerprint(img).features
    monkeypatch.setattr(fp_module, "_FAINT_FAST_THRESHOLD", fp_module._FAST_THRESHOLD)
    strong = work_fingerprint(img).features
    assert len(strong) < 200
    # its soft curves' faint corners fill the places left, after the strong ones, as they were
    assert len(wallpaper) > 1000
    assert np.array_equal(wallpaper.points[: len(strong)], strong.points)
    assert np.array_equal(wallpaper.descriptors[: len(strong)], strong.descriptors)
    # and each feature says which it is: the matcher trusts a faint one less
    assert strong.faint is None and wallpaper.faint is not None
    assert not wallpaper.faint[: len(strong)].any() and wallpaper.faint[len(strong) :].all()
    assert wallpaper.shapes is not None  # no corner twice (a place at one pyramid level)
    places = np.column_stack([wallpaper.points, wallpaper.shapes[:, 1]]).round(1)
    assert len(np.unique(places, axis=0)) == len(wallpaper)
    assert min(quadrant_shares(wallpaper.points, img.width, img.height)) > 0.05
    assert (wallpaper.points >= 0).all() and (wallpaper.points <= [img.width, img.height]).all()
    # a textured picture has corners enough of the usual contrast: its features are the same either way
    assert_same_fingerprint(work_fingerprint(fixture_bytes(CHINA)), china_fp)
    assert china_fp.features.faint is None


def test_joining_no_features_keeps_the_others_as_they_are() -> None:
    """A candidate whose copy at its own size has no corners (only its enlarged copy has) kept
    its features' orientations and sizes only once joining an empty side gave them back."""
    feats = work_fingerprint(fixture_image(CHINA)).features
    assert feats.shapes is not None and LocalFeatures.empty().shapes is None
    for joined in (feats.joined(LocalFeatures.empty()), LocalFeatures.empty().joined(feats)):
        assert joined is feats


def test_joined_features_keep_which_are_faint() -> None:
    def features(n: int, faint: list[bool] | None) -> LocalFeatures:
        mask = None if faint is None else np.array(faint)
        return LocalFeatures(np.zeros((n, 2), np.float32), np.zeros((n, 32), np.uint8), None, mask)

    both = features(2, None).joined(features(3, [False, True, True]))
    assert both.faint is not None and both.faint.tolist() == [False, False, False, True, True]
    assert features(2, None).joined(features(1, None)).faint is None
    assert features(2, None).faint_mask().tolist() == [False, False]


def test_line_art_takes_no_faint_corners_along_its_strokes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Thick anti-aliased strokes on white have few corners; the steps along their edges pass a
    # faint threshold, but they are alike on every stroke of every drawing: none is kept
    big = Image.new("RGB", (1600, 1200), "white")
    draw = ImageDraw.Draw(big)
    draw.line([(100, 1100), (700, 200), (1500, 150)], fill="black", width=40)
    draw.arc((300, 300, 1300, 1100), 20, 250, fill="black", width=30)
    drawing = big.resize((400, 300), Image.Resampling.LANCZOS)
    kept = len(work_fingerprint(drawing).features)
    monkeypatch.setattr(fp_module, "_FAINT_FAST_THRESHOLD", fp_module._FAST_THRESHOLD)
    strong = len(work_fingerprint(drawing).features)
    monkeypatch.setattr(fp_module, "_FAINT_FAST_THRESHOLD", 2)
    monkeypatch.setattr(fp_module, "_FAINT_MAX_RANGE", 256)
    unfiltered = len(work_fingerprint(drawing).features)
    assert strong <= kept < 1.05 * strong
    assert unfiltered > 2 * strong


def test_candidate_features_from_a_smaller_copy_keep_original_coordinates() -> None:
    img = fixture_image(PAINTING)
    big = img.resize((img.width * 3, img.height * 3), Image.Resampling.LANCZOS)
    decoded = decode_image(encode(big, "JPEG", 92), work_side=4096)
    full = fingerprint_candidate(decoded)
    capped = fingerprint_candidate(decoded, feature_side=400)
    assert len(capped.features) > 200
    for fp in (full, capped):
        xs, ys = fp.features.points[:, 0], fp.features.points[:, 1]
        assert xs.min() >= 0 and xs.max() <= big.width and ys.min() >= 0 and ys.max() <= big.height
        # spread over the whole picture, in the candidate's own pixels, not the small copy's
        assert xs.max() > 0.8 * big.width and ys.max() > 0.8 * big.height
    # the rest of the fingerprint does not depend on where the features came from
    assert capped.pdq_variants == full.pdq_variants and capped.phash == full.phash


def test_a_capped_candidate_still_matches_its_work() -> None:
    from monitor.matching import Matcher

    img = fixture_image(PAINTING)
    work = work_fingerprint(img)
    matcher = Matcher(MatchSettings(), lambda ids: {i: work for i in ids})
    matcher.add("w", work)
    big = img.resize((img.width * 3, img.height * 3), Image.Resampling.LANCZOS)
    cand = fingerprint_candidate(decode_image(encode(big, "JPEG", 90), work_side=4096), feature_side=400)
    found = matcher.match(cand)
    assert [m.work_id for m in found] == ["w"]
    assert abs(found[0].details["scale"] - 3.0) < 0.1


def _gray_of(img: Image.Image) -> np.ndarray:
    return decode_image(encode(img, "JPEG", 90), work_side=4096).gray()


def test_an_enlarged_picture_is_told_by_how_much() -> None:
    img = fixture_image(CHINA)
    assert upscaled_by(_gray_of(img)) == 1.0
    # the search never overstates; it may understate (an enlargement of exactly 2 reads as 1)
    for factor, least in ((2.5, 2.0), (4.0, 2.5)):
        big = img.resize((round(img.width * factor), round(img.height * factor)), Image.Resampling.BICUBIC)
        assert least <= upscaled_by(_gray_of(big)) <= min(factor, 3.0)


@pytest.mark.parametrize("name", [SAPIN, THUG, PAINTING])
def test_sharp_drawings_and_pictures_are_not_taken_for_enlarged(name: str) -> None:
    # a drawing's outlines on a flat ground: the flat ground alone would survive any shrinking
    assert upscaled_by(_gray_of(fixture_image(name))) == 1.0


@pytest.mark.parametrize("img", [flat(400, 300, 128), gradient(400, 300)], ids=["flat", "gradient"])
def test_a_picture_without_edges_is_not_judged(img: Image.Image) -> None:
    assert upscaled_by(_gray_of(img)) == 1.0


def test_an_enlarged_candidate_also_takes_features_from_a_copy_shrunk_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # corners of the usual contrast only: faint ones are found again less often, at any size
    monkeypatch.setattr(fp_module, "_FAINT_FAST_THRESHOLD", fp_module._FAST_THRESHOLD)
    img = fixture_image(PAINTING)
    detail = img.crop((128, 0, 384, img.height))  # 256 px wide: enlarged 3x, still under the 800 px cap
    big = detail.resize((detail.width * 3, detail.height * 3), Image.Resampling.BICUBIC)
    decoded = decode_image(encode(big, "JPEG", 92), work_side=4096)
    undone = fingerprint_candidate(decoded, 1000, 800)
    kept = fingerprint_candidate(decoded, 1000, 800, undo_upscaling=False)
    assert upscaled_by(decoded.gray()) >= 2.0
    # the features are the detail's own: where it has them, with the same descriptors
    own = fingerprint_candidate(decode_image(encode(detail, "JPEG", 92)), 1000, 800)
    popcount = np.array([bin(i).count("1") for i in range(256)], np.uint8)

    def share_of_own(points: np.ndarray, descriptors: np.ndarray) -> float:
        apart = np.linalg.norm(points[:, None] / 3.0 - own.features.points[None], axis=2)
        bits = popcount[descriptors[:, None] ^ own.features.descriptors[None]].sum(axis=2)
        return float(((apart < 3) & (bits <= 48)).any(axis=1).mean())

    # looked at both ways: the shrunk copy's features first, then those of the picture as it is
    # (a smooth picture looks enlarged too: it keeps what it had)
    head = len(undone.features) - len(kept.features)
    assert head > 0
    assert np.array_equal(undone.features.points[head:], kept.features.points)
    assert share_of_own(undone.features.points[:head], undone.features.descriptors[:head]) > 0.85
    assert share_of_own(kept.features.points, kept.features.descriptors) < 0.7
    # the shrunk copy's features are in the enlarged copy's pixels, spread over all of it
    xs, ys = undone.features.points[:head, 0], undone.features.points[:head, 1]
    assert xs.max() > 0.8 * big.width and ys.max() > 0.8 * big.height
    assert xs.max() <= big.width and ys.max() <= big.height
    # the rest of the fingerprint does not depend on where the features came from
    assert undone.pdq_variants == kept.pdq_variants and undone.phash == kept.phash


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        # a 16:9 landscape: its square and 4:5 portrait; its own 16:9 is the whole picture
        ((1600, 900), [(350, 0, 900, 900), (440, 0, 720, 900)]),
        # a portrait: the square, and the 16:9 band across its middle; 4:5 leaves out 30 %
        ((900, 1600), [(0, 350, 900, 900), (0, 237, 900, 1125), (0, 547, 900, 506)]),
        # a square picture: its square is itself; 4:5 leaves out exactly 20 %
        ((1000, 1000), [(100, 0, 800, 1000), (0, 219, 1000, 562)]),
        # nearly 4:5: that cut would leave out under 10 %, so only the square and 16:9
        ((840, 1000), [(0, 80, 840, 840), (0, 264, 840, 472)]),
    ],
)
def test_centred_cuts_are_the_largest_rectangles_of_each_shape_in_the_middle(
    size: tuple[int, int], expected: list[tuple[int, int, int, int]]
) -> None:
    assert centred_cuts(*size, [1.0, 0.8, 1.7778], 0.1) == expected
    assert centred_cuts(*size, [], 0.1) == []


def test_a_cuts_pdq_from_the_thumbnail_is_near_the_same_cut_hashed_at_full_size() -> None:
    """The cuts are hashed from the work's grey thumbnail when it is indexed; a copy cut to that
    shape at full size hashes near it (the same PDQ a scanned square gets), and far from the
    whole picture's."""
    img = fixture_image(CHINA)
    work = work_fingerprint(img)
    [(box, code, quality)] = cut_hashes(work, [1.0], 0.1)
    x, y, w, h = box
    assert (w, h) == (work.height, work.height) and x == (work.width - w) // 2 and y == 0
    full, _ = pdq_hashes(np.asarray(img.crop((x, y, x + w, y + h))))
    assert hamming(code, full[0]) <= 16
    assert hamming(code, work.hashes.pdq) > 64
    assert quality >= MatchSettings().pdq_min_quality


def test_round_filled_keeps_the_disk_and_fills_the_rest_with_its_mean_level() -> None:
    """A profile picture's corners are white, black or a page's colour; filled with the disk's
    own mean level, a work's square and its avatar hash alike whatever the corners were."""
    rng = np.random.default_rng(4)
    square = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    out = round_filled(square)
    yy, xx = np.ogrid[0:64, 0:64]
    r = np.hypot((xx - 31.5) / 32, (yy - 31.5) / 32)
    inside = r <= ROUND_RIM
    assert np.array_equal(out[inside], square[inside])
    assert set(np.unique(out[~inside])) == {round(float(square[inside].mean()))}
    white, black = square.copy(), square.copy()
    white[r > 1.0], black[r > 1.0] = 255, 0
    assert np.array_equal(round_filled(white), round_filled(black))
