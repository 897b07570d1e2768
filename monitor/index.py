"""Indexes over registered works, so a query does not compare a candidate with every work.

* :class:`HammingIndex` — exact Hamming range search over fixed-width codes (PDQ, pHash),
  with faiss's binary flat index (a few ms at 100k works).
* :class:`FeatureIndex` — local-feature retrieval: every indexed ORB descriptor points at
  the work it came from; each query descriptor votes for the works of its nearest
  neighbours, and the best-voted works go on to geometric verification. Small collections
  use an exact flat index; past ``ivf_threshold`` descriptors (20k: about ten works) it
  becomes an inverted file (``IndexBinaryIVF``), trained on a sample, retrained when the
  collection has grown 4x.

Keys are non-negative ints chosen by the caller. Both indexes save to and load from a
directory in faiss's own versioned format plus ``.npy`` key arrays (no pickle).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from monitor.errors import FingerprintError


def set_library_threads(n: int) -> None:
    """Threads faiss (OpenMP) and OpenCV may use in this process; ``0``: their defaults."""
    import cv2

    faiss.omp_set_num_threads(n if n > 0 else _DEFAULT_OMP_THREADS)
    cv2.setNumThreads(n if n > 0 else -1)  # OpenCV: a negative value restores its default


_DEFAULT_OMP_THREADS = faiss.omp_get_max_threads()

INDEX_FORMAT = 1


@dataclass(frozen=True)
class Hit:
    key: int
    distance: int


class HammingIndex:
    """Exact radius search over ``nbytes``-byte binary codes."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self._index: Any = faiss.IndexBinaryFlat(nbytes * 8)  # SWIG proxies: attributes beyond the stubs
        self._keys = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, keys: Sequence[int], codes: np.ndarray) -> None:
        codes = _codes(codes, self.nbytes)
        if len(keys) != codes.shape[0]:
            raise ValueError("one key per code")
        if codes.shape[0]:
            self._index.add(codes)
            self._keys = np.concatenate([self._keys, np.asarray(keys, np.int64)])

    def search(self, codes: np.ndarray, max_distance: int) -> list[list[Hit]]:
        """For each code, every indexed code within ``max_distance`` bits (inclusive)."""
        codes = _codes(codes, self.nbytes)
        if not len(self) or not codes.shape[0]:
            return [[] for _ in range(codes.shape[0])]
        lims, dist, ids = self._index.range_search(codes, max_distance + 1)
        return [
            [
                Hit(int(self._keys[i]), int(d))
                for d, i in zip(dist[lims[q] : lims[q + 1]], ids[lims[q] : lims[q + 1]], strict=True)
            ]
            for q in range(codes.shape[0])
        ]

    def save(self, path: Path) -> None:
        faiss.write_index_binary(self._index, str(path.with_suffix(".faiss")))
        np.save(path.with_suffix(".keys.npy"), self._keys, allow_pickle=False)

    @classmethod
    def load(cls, path: Path, nbytes: int) -> HammingIndex:
        index = cls(nbytes)
        index._index = _read_binary_index(path.with_suffix(".faiss"))
        index._keys = np.load(path.with_suffix(".keys.npy"), allow_pickle=False)
        if index._index.d != nbytes * 8 or index._keys.shape[0] != index._index.ntotal:
            raise FingerprintError(f"index file {path} is inconsistent")
        return index


class FeatureIndex:
    """Votes for keys from binary local descriptors (32-byte ORB)."""

    def __init__(self, nbytes: int = 32, *, ivf_threshold: int = 20_000, nprobe: int = 12) -> None:
        self.nbytes = nbytes
        self.ivf_threshold = ivf_threshold
        self.nprobe = nprobe
        self._index: Any = faiss.IndexBinaryFlat(nbytes * 8)  # flat, or IVF (nlist, invlists, nprobe)
        self._owner = np.zeros(0, np.int64)  # descriptor position -> key
        self._trained_at = 0  # ntotal when the IVF was last trained (0: flat)
        self._start_cache: np.ndarray | None = None
        self._start_cache_n = -1

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def kind(self) -> str:
        return "ivf" if self._trained_at else "flat"

    def add(self, key: int, descriptors: np.ndarray) -> None:
        self.add_many(np.full(descriptors.shape[0], key, np.int64), descriptors)

    def add_many(self, keys: np.ndarray, descriptors: np.ndarray) -> None:
        descriptors = _codes(descriptors, self.nbytes)
        if len(keys) != descriptors.shape[0]:
            raise ValueError("one key per descriptor")
        if not descriptors.shape[0]:
            return
        self._index.add(descriptors)
        self._owner = np.concatenate([self._owner, np.asarray(keys, np.int64)])
        total = len(self)
        if total >= self.ivf_threshold and (not self._trained_at or total >= 4 * self._trained_at):
            self._rebuild_ivf()

    def _all_codes(self) -> np.ndarray:
        if isinstance(self._index, faiss.IndexBinaryFlat):
            return (
                faiss.rev_swig_ptr(self._index.xb.data(), len(self) * self.nbytes)  # type: ignore[attr-defined]
                .reshape(-1, self.nbytes)
                .copy()
            )
        codes = np.zeros((len(self), self.nbytes), np.uint8)
        invlists = self._index.invlists
        for lst in range(self._index.nlist):
            n = invlists.list_size(lst)
            if not n:
                continue
            ids = faiss.rev_swig_ptr(invlists.get_ids(lst), n).copy()
            data = faiss.rev_swig_ptr(invlists.get_codes(lst), n * self.nbytes).reshape(n, self.nbytes)
            codes[ids] = data
        return codes

    def _rebuild_ivf(self) -> None:
        codes = self._all_codes()
        total = codes.shape[0]
        nlist = int(2 ** round(math.log2(max(64.0, 4 * math.sqrt(total)))))
        rng = np.random.default_rng(0)
        sample = codes[rng.choice(total, size=min(total, nlist * 40), replace=False)]
        quantizer = faiss.IndexBinaryFlat(self.nbytes * 8)
        ivf = faiss.IndexBinaryIVF(quantizer, self.nbytes * 8, nlist)
        ivf.own_fields = True
        quantizer.this.disown()  # type: ignore[attr-defined]
        ivf.train(sample)
        ivf.add(codes)
        ivf.nprobe = self.nprobe
        self._index = ivf
        self._trained_at = total

    def vote(
        self,
        descriptors: np.ndarray,
        *,
        k: int = 4,
        max_distance: int = 64,
        ratio: float = 0.85,
        group_shift: int = 0,
    ) -> dict[int, int]:
        """Each query descriptor votes for the key of its nearest neighbour when that is
        within ``max_distance`` bits and clearly nearer (``ratio``) than the nearest
        neighbour of any other key among the ``k`` found. Returns key -> votes.

        The ratio test across keys is Lowe's, applied to works instead of features: a
        descriptor that looks like many works (text, edges, noise) votes for none. Keys that
        are equal after ``>> group_shift`` are one owner for that test (views of one work).
        """
        return {
            key: len(pairs)
            for key, pairs in self.correspondences(
                descriptors, k=k, max_distance=max_distance, ratio=ratio, group_shift=group_shift
            ).items()
        }

    def correspondences(
        self,
        descriptors: np.ndarray,
        *,
        k: int = 4,
        max_distance: int = 64,
        ratio: float = 0.85,
        group_shift: int = 0,
    ) -> dict[int, np.ndarray]:
        """The votes of :meth:`vote` with what they matched: key -> ``(n, 2)`` int array of
        (query row, position of the matched descriptor among that key's descriptors, in the
        order they were added). The vote count of a key is its number of rows.

        These pairs are the tentative feature matches verification starts from, so a
        candidate costs one index search, not one brute-force match per shortlisted work.
        """
        descriptors = _codes(descriptors, self.nbytes)
        if not len(self) or not descriptors.shape[0]:
            return {}
        dist, ids = self._index.search(descriptors, k)
        owners = np.where(ids >= 0, self._owner[np.clip(ids, 0, None)], -1)
        first = owners[:, 0]
        d1 = dist[:, 0].astype(np.float64)
        # nearest neighbour belonging to another key (or "none found": infinitely far)
        groups = owners >> group_shift
        other = (groups != groups[:, :1]) & (owners >= 0)
        has_other = other.any(axis=1)
        d2 = np.where(has_other, dist[np.arange(len(dist)), other.argmax(axis=1)], np.inf)
        ok = (first >= 0) & (d1 <= max_distance) & (d1 < ratio * d2)
        rows = np.nonzero(ok)[0]
        if not len(rows):
            return {}
        keys = first[rows]
        ordinals = ids[rows, 0] - self._key_starts()[keys]
        order = np.argsort(keys, kind="stable")
        keys, rows, ordinals = keys[order], rows[order], ordinals[order]
        bounds = np.flatnonzero(np.diff(keys)) + 1
        out: dict[int, np.ndarray] = {}
        for chunk_rows, chunk_ords, key in zip(
            np.split(rows, bounds), np.split(ordinals, bounds), keys[np.r_[0, bounds]], strict=True
        ):
            out[int(key)] = np.stack([chunk_rows, chunk_ords], axis=1).astype(np.int64)
        return out

    def _key_starts(self) -> np.ndarray:
        """key -> position of its first stored descriptor. A key's descriptors are stored
        together (one :meth:`add` per key), in the order they were added."""
        if self._start_cache is None or self._start_cache_n != self._owner.shape[0]:
            owner = self._owner
            starts = np.zeros(int(owner.max()) + 1 if owner.shape[0] else 0, np.int64)
            if owner.shape[0]:
                run_start = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
                starts[owner[run_start][::-1]] = run_start[::-1]  # the first run of a key wins
            self._start_cache, self._start_cache_n = starts, owner.shape[0]
        return self._start_cache

    def save(self, path: Path) -> None:
        faiss.write_index_binary(self._index, str(path.with_suffix(".faiss")))
        np.save(path.with_suffix(".owner.npy"), self._owner, allow_pickle=False)
        path.with_suffix(".json").write_text(
            json.dumps({"format": INDEX_FORMAT, "trained_at": self._trained_at, "nbytes": self.nbytes})
        )

    @classmethod
    def load(cls, path: Path, *, ivf_threshold: int = 20_000, nprobe: int = 12) -> FeatureIndex:
        meta = json.loads(path.with_suffix(".json").read_text())
        if meta.get("format") != INDEX_FORMAT:
            raise FingerprintError(f"index file {path} has format {meta.get('format')}, not {INDEX_FORMAT}")
        index = cls(int(meta["nbytes"]), ivf_threshold=ivf_threshold, nprobe=nprobe)
        index._index = _read_binary_index(path.with_suffix(".faiss"))
        index._owner = np.load(path.with_suffix(".owner.npy"), allow_pickle=False)
        index._trained_at = int(meta["trained_at"])
        if index._trained_at:
            faiss.downcast_IndexBinary(index._index).nprobe = nprobe  # type: ignore[attr-defined]
        if index._owner.shape[0] != index._index.ntotal:
            raise FingerprintError(f"index file {path} is inconsistent")
        return index


def _read_binary_index(path: Path) -> faiss.IndexBinary:
    """faiss's reader, with its errors (missing, truncated, foreign files) translated."""
    try:
        return faiss.read_index_binary(str(path))
    except (RuntimeError, OSError) as exc:
        raise FingerprintError(f"cannot read index file {path}: {str(exc).splitlines()[0][:200]}") from exc


def _codes(codes: np.ndarray, nbytes: int) -> np.ndarray:
    arr = np.ascontiguousarray(codes, dtype=np.uint8)
    if arr.ndim == 1 and arr.shape[0] == nbytes:
        arr = arr.reshape(1, nbytes)
    if arr.ndim != 2 or (arr.shape[0] and arr.shape[1] != nbytes):
        raise FingerprintError(f"expected codes of {nbytes} bytes, got shape {arr.shape}")
    return arr.reshape(-1, nbytes)
