"""Behaviour of :mod:`monitor.index`: exact Hamming range search and feature voting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from monitor.errors import FingerprintError
from monitor.index import FeatureIndex, HammingIndex, Hit
from tests.monitor.helpers import flip_bits, one_faiss_thread, random_descriptors


@pytest.fixture(scope="module", autouse=True)
def _one_faiss_thread() -> Iterator[None]:
    with one_faiss_thread():
        yield


# --------------------------------------------------------------------------- HammingIndex


def code_at(distance: int, nbytes: int = 8) -> np.ndarray:
    """A code exactly ``distance`` bits away from the all-zero code."""
    bits = np.zeros(nbytes * 8, np.uint8)
    bits[:distance] = 1
    return np.packbits(bits)


@pytest.fixture
def hamming_index() -> HammingIndex:
    index = HammingIndex(8)
    # keys are the caller's, not positions: 1000 at distance 0, 7 at 3, 42 at 4, 5 at 64
    index.add([1000, 7, 42, 5], np.stack([code_at(0), code_at(3), code_at(4), code_at(64)]))
    return index


def hits(index: HammingIndex, code: np.ndarray, radius: int) -> set[Hit]:
    (found,) = index.search(code, radius)
    return set(found)


def test_radius_search_is_inclusive_at_the_boundary(hamming_index: HammingIndex) -> None:
    zero = code_at(0)
    assert hits(hamming_index, zero, 0) == {Hit(1000, 0)}
    assert hits(hamming_index, zero, 2) == {Hit(1000, 0)}
    assert hits(hamming_index, zero, 3) == {Hit(1000, 0), Hit(7, 3)}
    assert hits(hamming_index, zero, 4) == {Hit(1000, 0), Hit(7, 3), Hit(42, 4)}
    assert hits(hamming_index, zero, 63) == {Hit(1000, 0), Hit(7, 3), Hit(42, 4)}
    assert hits(hamming_index, zero, 64) == {Hit(1000, 0), Hit(7, 3), Hit(42, 4), Hit(5, 64)}


def test_each_query_gets_its_own_hits(hamming_index: HammingIndex) -> None:
    queries = np.stack([code_at(0), code_at(64), np.full(8, 0x0F, np.uint8)])
    found = [set(h) for h in hamming_index.search(queries, 1)]
    assert found == [{Hit(1000, 0)}, {Hit(5, 0)}, set()]


def test_an_empty_index_finds_nothing() -> None:
    index = HammingIndex(32)
    assert len(index) == 0
    assert index.search(np.zeros((3, 32), np.uint8), 256) == [[], [], []]


def test_adding_nothing_is_allowed() -> None:
    index = HammingIndex(8)
    index.add([], np.zeros((0, 8), np.uint8))
    assert len(index) == 0


@pytest.mark.parametrize(
    "codes",
    [np.zeros(7, np.uint8), np.zeros((2, 9), np.uint8), np.zeros((2, 2, 8), np.uint8), np.zeros(0, np.uint8)],
    ids=["7-bytes", "9-byte-rows", "3-d", "empty-1d"],
)
def test_wrong_shape_codes_raise_fingerprint_error(hamming_index: HammingIndex, codes: np.ndarray) -> None:
    with pytest.raises(FingerprintError, match="8 bytes"):
        hamming_index.search(codes, 3)
    with pytest.raises(FingerprintError, match="8 bytes"):
        hamming_index.add([1] * max(1, codes.shape[0]), codes)


def test_one_key_per_code() -> None:
    with pytest.raises(ValueError, match="one key per code"):
        HammingIndex(8).add([1, 2], np.zeros((3, 8), np.uint8))


def test_hamming_index_save_load_round_trip(hamming_index: HammingIndex, tmp_path: Path) -> None:
    hamming_index.save(tmp_path / "pdq")
    loaded = HammingIndex.load(tmp_path / "pdq", 8)
    assert len(loaded) == len(hamming_index) == 4
    queries = np.stack([code_at(0), code_at(64), code_at(10)])
    for radius in (0, 3, 64):
        assert [set(h) for h in loaded.search(queries, radius)] == [
            set(h) for h in hamming_index.search(queries, radius)
        ]


def test_hamming_index_load_checks_width_and_keys(hamming_index: HammingIndex, tmp_path: Path) -> None:
    hamming_index.save(tmp_path / "pdq")
    with pytest.raises(FingerprintError, match="inconsistent"):
        HammingIndex.load(tmp_path / "pdq", 32)
    np.save(tmp_path / "pdq.keys.npy", np.arange(3, dtype=np.int64), allow_pickle=False)
    with pytest.raises(FingerprintError, match="inconsistent"):
        HammingIndex.load(tmp_path / "pdq", 8)


# --------------------------------------------------------------------------- FeatureIndex


@pytest.fixture(scope="module")
def collections() -> dict[int, np.ndarray]:
    """Three works' random descriptors, 300 each."""
    return {key: random_descriptors(300, seed=key) for key in (3, 8, 11)}


def feature_index(collections: dict[int, np.ndarray], **kwargs: int) -> FeatureIndex:
    index = FeatureIndex(**kwargs)
    for key, descriptors in collections.items():
        index.add(key, descriptors)
    return index


def test_votes_go_to_the_key_whose_descriptors_were_added(collections: dict[int, np.ndarray]) -> None:
    index = feature_index(collections)
    assert len(index) == 900 and index.kind == "flat"
    for key, descriptors in collections.items():
        assert index.vote(descriptors) == {key: 300}
        # 20 bits of 256 changed: still the nearest by far (others are ~128 bits away)
        assert index.vote(flip_bits(descriptors, 20, seed=key)) == {key: 300}


def test_far_descriptors_do_not_vote(collections: dict[int, np.ndarray]) -> None:
    index = feature_index(collections)
    assert index.vote(random_descriptors(200, seed=99)) == {}
    assert index.vote(flip_bits(collections[8], 70, seed=1), max_distance=64) == {}
    assert index.vote(flip_bits(collections[8], 70, seed=1), max_distance=70) == {8: 300}


def test_an_empty_index_or_query_gives_no_votes(collections: dict[int, np.ndarray]) -> None:
    assert FeatureIndex().vote(collections[3]) == {}
    assert feature_index(collections).vote(np.zeros((0, 32), np.uint8)) == {}


def test_descriptors_of_two_keys_do_not_vote() -> None:
    shared = random_descriptors(100, seed=1)
    index = FeatureIndex()
    index.add(10, np.vstack([shared, random_descriptors(100, seed=2)]))
    index.add(20, np.vstack([shared, random_descriptors(100, seed=3)]))
    assert index.vote(flip_bits(shared, 8, seed=4)) == {}
    own = random_descriptors(100, seed=2)
    assert index.vote(np.vstack([flip_bits(shared, 8, seed=4), own])) == {10: 100}


def test_exact_copies_of_descriptors_of_two_keys_do_not_vote() -> None:
    shared = random_descriptors(100, seed=1)
    index = FeatureIndex()
    index.add(10, shared)
    index.add(20, shared)
    assert index.vote(shared) == {}  # measured: {10: 100}


def test_group_shift_makes_keys_2k_and_2k1_one_owner() -> None:
    """A work's plain and mirrored features (keys 2k, 2k+1) may coincide; that is no ambiguity."""
    symmetric = random_descriptors(100, seed=5)
    index = FeatureIndex()
    index.add(6, np.vstack([symmetric, random_descriptors(50, seed=6)]))  # work 3, plain
    index.add(7, np.vstack([symmetric, random_descriptors(50, seed=7)]))  # work 3, mirrored
    index.add(8, random_descriptors(100, seed=8))  # work 4
    query = flip_bits(symmetric, 8, seed=9)
    assert index.vote(query) == {}
    votes = index.vote(query, group_shift=1)
    assert sum(votes.values()) == 100 and set(votes) <= {6, 7}
    # keys 7 and 8 are different owners even after the shift
    index.add(8, symmetric)
    assert index.vote(query, group_shift=1) == {}


def test_add_many_gives_each_descriptor_its_key() -> None:
    a, b = random_descriptors(50, seed=1), random_descriptors(50, seed=2)
    index = FeatureIndex()
    index.add_many(np.array([1] * 50 + [2] * 50), np.vstack([a, b]))
    assert index.vote(a) == {1: 50} and index.vote(b) == {2: 50}


def test_add_many_refuses_a_key_count_that_does_not_match() -> None:
    index = FeatureIndex()
    with pytest.raises(ValueError):
        index.add_many(np.array([1, 2]), random_descriptors(5, seed=1))


def test_feature_index_refuses_wrong_shape_descriptors() -> None:
    index = FeatureIndex()
    with pytest.raises(FingerprintError):
        index.add(1, np.zeros((4, 16), np.uint8))
    with pytest.raises(FingerprintError):
        index.vote(np.zeros((4, 33), np.uint8))


IVF_THRESHOLD = 5000


@pytest.fixture(scope="module")
def big_collections() -> dict[int, np.ndarray]:
    """Three keys of 2000 random descriptors: the third add crosses ``IVF_THRESHOLD``."""
    return {key: random_descriptors(2000, seed=100 + key) for key in (1, 2, 3)}


@pytest.fixture(scope="module")
def ivf_index(big_collections: dict[int, np.ndarray]) -> FeatureIndex:
    index = FeatureIndex(ivf_threshold=IVF_THRESHOLD)
    kinds = []
    for key, descriptors in big_collections.items():
        index.add(key, descriptors)
        kinds.append(index.kind)
    assert kinds == ["flat", "flat", "ivf"]
    return index


def assert_votes_correct(index: FeatureIndex, collections: dict[int, np.ndarray]) -> None:
    """Near copies vote for their own key and never another (the IVF probes 12 lists: measured
    recall is 94-100% on random descriptors, which have no cluster structure to help it)."""
    for key, descriptors in collections.items():
        queries = flip_bits(descriptors[:300], 12, seed=key)
        votes = index.vote(queries)
        assert votes.get(key, 0) >= 0.9 * 300, (key, votes)
        assert sum(v for k, v in votes.items() if k != key) == 0, (key, votes)


def test_the_inverted_file_keeps_votes_correct(
    ivf_index: FeatureIndex, big_collections: dict[int, np.ndarray]
) -> None:
    assert len(ivf_index) == 6000
    assert_votes_correct(ivf_index, big_collections)


def test_adding_to_the_inverted_file_keeps_old_and_new_votes(big_collections: dict[int, np.ndarray]) -> None:
    index = FeatureIndex(ivf_threshold=IVF_THRESHOLD)
    for key, descriptors in big_collections.items():
        index.add(key, descriptors)
    extra = {4: random_descriptors(2000, seed=104)}
    index.add(4, extra[4])
    assert index.kind == "ivf" and len(index) == 8000
    assert_votes_correct(index, {**big_collections, **extra})


def test_correspondences_name_each_descriptor_by_its_place_in_its_key() -> None:
    """Keys added out of order, one of them twice: a pair is (query row, position among that
    key's descriptors in the order they were added), which verification looks up."""
    parts = [(11, random_descriptors(40, seed=1)), (3, random_descriptors(30, seed=2))]
    index = FeatureIndex()
    for key, descriptors in parts:
        index.add(key, descriptors)
    index.add(3, random_descriptors(20, seed=3))  # a second run of key 3: not indexed by ordinal
    query = np.vstack([parts[1][1][[29, 0]], parts[0][1][[7]]])
    pairs = index.correspondences(query)
    assert pairs[3].tolist() == [[0, 29], [1, 0]]
    assert pairs[11].tolist() == [[2, 7]]


def test_a_grown_inverted_file_is_retrained_and_keeps_every_position(
    big_collections: dict[int, np.ndarray],
) -> None:
    """Growing 4x past the last training rebuilds the inverted file from the stored codes (list
    by list, without a full copy) plus the new ones; positions, and so the pairs verification
    starts from, are the same as an exact index's."""
    index = FeatureIndex(ivf_threshold=IVF_THRESHOLD)
    exact = FeatureIndex(ivf_threshold=10**9)
    data = dict(big_collections)
    for key, descriptors in big_collections.items():
        index.add(key, descriptors)
        exact.add(key, descriptors)
    first_lists = index._index.nlist
    many = np.repeat(np.arange(20, 29), 2000)
    extra = np.vstack([random_descriptors(2000, seed=200 + k) for k in range(9)])
    index.add_many(many, extra)  # 6000 -> 24000: at least 4x the trained size
    exact.add_many(many, extra)
    data.update({20 + k: extra[2000 * k : 2000 * (k + 1)] for k in range(9)})
    assert index.kind == "ivf" and len(index) == 24000 and index._index.nlist > first_lists
    assert_votes_correct(index, data)
    for key in (1, 3, 20, 28):
        query = data[key][::7]  # stored codes themselves: the IVF finds them in their own list
        assert {k: v.tolist() for k, v in index.correspondences(query).items()} == {
            k: v.tolist() for k, v in exact.correspondences(query).items()
        }


def test_one_add_past_the_threshold_builds_the_inverted_file_directly(
    big_collections: dict[int, np.ndarray],
) -> None:
    keys = np.concatenate([np.full(2000, key) for key in big_collections])
    index = FeatureIndex(ivf_threshold=IVF_THRESHOLD)
    index.add_many(keys, np.vstack(list(big_collections.values())))
    assert index.kind == "ivf" and len(index) == 6000
    assert_votes_correct(index, big_collections)
    assert index.correspondences(big_collections[2][[5, 1999]])[2].tolist() == [[0, 5], [1, 1999]]


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_feature_index_save_load_round_trip(
    kind: str,
    tmp_path: Path,
    collections: dict[int, np.ndarray],
    ivf_index: FeatureIndex,
    big_collections: dict[int, np.ndarray],
) -> None:
    index, data = (
        (feature_index(collections), collections) if kind == "flat" else (ivf_index, big_collections)
    )
    assert index.kind == kind
    index.save(tmp_path / "features")
    loaded = FeatureIndex.load(tmp_path / "features", ivf_threshold=IVF_THRESHOLD)
    assert loaded.kind == kind and len(loaded) == len(index)
    for key, descriptors in data.items():
        query = flip_bits(descriptors[:200], 12, seed=key)
        assert loaded.vote(query) == index.vote(query)
        pairs, loaded_pairs = index.correspondences(query), loaded.correspondences(query)
        assert {k: v.tolist() for k, v in loaded_pairs.items()} == {k: v.tolist() for k, v in pairs.items()}
    assert_votes_correct(loaded, data)


def test_a_loaded_flat_index_can_still_grow_into_an_inverted_file(
    tmp_path: Path, big_collections: dict[int, np.ndarray]
) -> None:
    index = FeatureIndex(ivf_threshold=IVF_THRESHOLD)
    index.add(1, big_collections[1])
    index.add(2, big_collections[2])
    index.save(tmp_path / "features")
    loaded = FeatureIndex.load(tmp_path / "features", ivf_threshold=IVF_THRESHOLD)
    loaded.add(3, big_collections[3])
    assert loaded.kind == "ivf"
    assert_votes_correct(loaded, big_collections)


def test_feature_index_load_checks_format_and_owners(
    tmp_path: Path, collections: dict[int, np.ndarray]
) -> None:
    feature_index(collections).save(tmp_path / "features")
    meta = json.loads((tmp_path / "features.json").read_text())
    np.save(tmp_path / "features.owner.npy", np.zeros(5, np.int64), allow_pickle=False)
    with pytest.raises(FingerprintError, match="inconsistent"):
        FeatureIndex.load(tmp_path / "features")
    (tmp_path / "features.json").write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(FingerprintError, match="format 99"):
        FeatureIndex.load(tmp_path / "features")
