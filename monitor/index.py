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
from collections.abc import Iterator, Sequence
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
        self._owner_buf = np.zeros(0, np.int64)  # descriptor position -> key (see _owner)
        self._n_owner = 0
        self._starts = np.zeros(0, np.int64)  # key -> first position (-1: no descriptors)
        self._trained_at = 0  # ntotal when the IVF was last trained (0: flat)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def kind(self) -> str:
        return "ivf" if self._trained_at else "flat"

    @property
    def trained_at(self) -> int:
        """Descriptors stored when the inverted file was last trained (0: still flat)."""
        return self._trained_at

    def add(self, key: int, descriptors: np.ndarray) -> None:
        self.add_many(np.full(descriptors.shape[0], key, np.int64), descriptors)

    def add_many(self, keys: np.ndarray, descriptors: np.ndarray) -> None:
        descriptors = _codes(descriptors, self.nbytes)
        keys = np.asarray(keys, np.int64)
        if len(keys) != descriptors.shape[0]:
            raise ValueError("one key per descriptor")
        if not descriptors.shape[0]:
            return
        total = len(self) + descriptors.shape[0]
        if total >= self.ivf_threshold and (not self._trained_at or total >= 4 * self._trained_at):
            self._rebuild_ivf(descriptors)
        else:
            _add_chunked(self._index, descriptors, len(self))
        self._append_owners(keys)

    def _append_owners(self, keys: np.ndarray) -> None:
        """Append to the owner array in place (amortised growth: registering one work must not
        copy an owner array of 200M entries), and extend the key -> first position table."""
        n, extra = self._n_owner, keys.shape[0]
        if n + extra > self._owner_buf.shape[0]:
            grown = np.empty(max(n + extra, int(self._owner_buf.shape[0] * 1.5), 1024), np.int64)
            grown[:n] = self._owner_buf[:n]
            self._owner_buf = grown
        self._owner_buf[n : n + extra] = keys
        self._n_owner = n + extra
        self._extend_starts(keys, n)

    @property
    def _owner(self) -> np.ndarray:
        """Descriptor position -> key (a view of the growable buffer)."""
        return self._owner_buf[: self._n_owner]

    def _codes_in_order(self, chunk: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The stored descriptors as (positions, codes) pieces, without copying the whole
        collection: the flat index's rows in slices, or the inverted lists one by one."""
        if isinstance(self._index, faiss.IndexBinaryFlat):
            n = len(self)
            if not n:
                return
            codes = faiss.rev_swig_ptr(self._index.xb.data(), n * self.nbytes).reshape(n, self.nbytes)  # type: ignore[attr-defined]
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                yield np.arange(start, stop, dtype=np.int64), codes[start:stop]
            return
        invlists = self._index.invlists
        for lst in range(self._index.nlist):
            n = invlists.list_size(lst)
            if n:
                ids = faiss.rev_swig_ptr(invlists.get_ids(lst), n).astype(np.int64)
                codes = faiss.rev_swig_ptr(invlists.get_codes(lst), n * self.nbytes).reshape(n, self.nbytes)
                yield ids, codes

    def _rebuild_ivf(self, extra: np.ndarray) -> None:
        """A new inverted file over what is stored plus ``extra`` (positions kept), trained on
        a random sample. Built piece by piece: at its peak the old index and the new one are
        in memory, never a third copy of the codes (200M descriptors are 6.4 GB each)."""
        stored = len(self)
        total = stored + extra.shape[0]
        nlist = ivf_lists(total)
        rng = np.random.default_rng(0)
        chosen = np.sort(rng.choice(total, size=min(total, nlist * 40), replace=False))
        sample = np.empty((chosen.shape[0], self.nbytes), np.uint8)
        old_chosen = chosen[chosen < stored]
        if old_chosen.shape[0]:
            wanted = np.zeros(stored, bool)
            wanted[old_chosen] = True
            for ids, codes in self._codes_in_order():
                hit = wanted[ids]
                if hit.any():
                    sample[np.searchsorted(chosen, ids[hit])] = codes[hit]
            del wanted
        new_chosen = chosen[old_chosen.shape[0] :]
        sample[old_chosen.shape[0] :] = extra[new_chosen - stored]
        quantizer = faiss.IndexBinaryFlat(self.nbytes * 8)
        ivf = faiss.IndexBinaryIVF(quantizer, self.nbytes * 8, nlist)
        ivf.own_fields = True
        quantizer.this.disown()  # type: ignore[attr-defined]
        ivf.train(sample)
        del sample
        for ids, codes in self._codes_in_order():
            ivf.add_with_ids(np.ascontiguousarray(codes), ids)
        _add_chunked(ivf, extra, stored)
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
        ordinals = ids[rows, 0] - self._starts[keys]
        order = np.argsort(keys, kind="stable")
        keys, rows, ordinals = keys[order], rows[order], ordinals[order]
        bounds = np.flatnonzero(np.diff(keys)) + 1
        out: dict[int, np.ndarray] = {}
        for chunk_rows, chunk_ords, key in zip(
            np.split(rows, bounds), np.split(ordinals, bounds), keys[np.r_[0, bounds]], strict=True
        ):
            out[int(key)] = np.stack([chunk_rows, chunk_ords], axis=1).astype(np.int64)
        return out

    def _extend_starts(self, keys: np.ndarray, offset: int) -> None:
        """Record where the keys first added at ``offset`` start (the first run of a key wins):
        ``_starts`` maps a key to the position of its first stored descriptor. A key's
        descriptors are stored together (one :meth:`add` per key), in the order they were added."""
        run_start = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        first_keys = keys[run_start]
        top = int(first_keys.max()) + 1
        if top > self._starts.shape[0]:
            grown = np.full(max(top, int(self._starts.shape[0] * 1.5)), -1, np.int64)
            grown[: self._starts.shape[0]] = self._starts
            self._starts = grown
        # earliest run per key within this piece, then only keys without a start yet
        uniq, first = np.unique(first_keys, return_index=True)
        fresh = self._starts[uniq] < 0
        self._starts[uniq[fresh]] = offset + run_start[first[fresh]]

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
        owner = np.load(path.with_suffix(".owner.npy"), allow_pickle=False)
        if owner.dtype != np.int64 or owner.ndim != 1 or (owner.shape[0] and owner.min() < 0):
            raise FingerprintError(f"index file {path} is inconsistent")
        if owner.shape[0]:
            index._append_owners(owner)
        index._trained_at = int(meta["trained_at"])
        if index._trained_at:
            faiss.downcast_IndexBinary(index._index).nprobe = nprobe  # type: ignore[attr-defined]
        if index._n_owner != index._index.ntotal:
            raise FingerprintError(f"index file {path} is inconsistent")
        return index


def ivf_lists(total: int) -> int:
    """Inverted lists for ``total`` descriptors: a power of two near 4 sqrt(total) (faiss's
    rule of thumb), at least 64."""
    return int(2 ** round(math.log2(max(64.0, 4 * math.sqrt(total)))))


def _add_chunked(index: Any, codes: np.ndarray, first_id: int, chunk: int = 1 << 20) -> None:
    """Add ``codes`` with positions ``first_id...`` in pieces (faiss allocates per call)."""
    for start in range(0, codes.shape[0], chunk):
        piece = np.ascontiguousarray(codes[start : start + chunk])
        if isinstance(index, faiss.IndexBinaryFlat):
            index.add(piece)
        else:
            ids = np.arange(first_id + start, first_id + start + piece.shape[0], dtype=np.int64)
            index.add_with_ids(piece, ids)


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
