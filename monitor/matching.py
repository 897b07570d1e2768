"""The matcher: which registered works does a candidate image show, where, and how changed.

Three stages, each with its own entry point:

1. **Retrieve** works worth a closer look: PDQ (8 dihedral variants) and pHash neighbours
   in Hamming indexes, PDQ neighbours among the works' centred cuts (a square cut from the
   middle of a wide work: ``match.cut_aspects``), and local-feature votes from the
   :class:`FeatureIndex`.
2. **Verify** each: for feature hits, ratio-tested ORB matches and a RANSAC similarity
   transform (rotation, uniform scale, translation; the mirrored work's features give
   mirrored copies), or when no similarity explains them, an affine map that stretches one
   axis at most :data:`MAX_STRETCH` times the other (a crop forced into another aspect
   ratio); for hash hits, the dihedral transform that made the hashes agree (onto the cut,
   for a cut's hit).
   Then the work is warped onto the candidate and the pixels are compared (median of
   block-wise normalised cross-correlations, robust to overlaid text and to brightness and
   contrast changes): geometry alone never makes a match, though strong geometry (many
   inliers, most of the tentative matches) needs less of the pixels (an overlay across the
   whole picture). A negative is found by the complement of its PDQ hashes and checked
   inverted (flag ``inverted``). Last, where both pictures are saturated their hues must
   agree (:func:`hue_disagreement`): grey levels cannot tell one template drawn in red from
   the same drawn in blue.
3. **Describe** the verified pair: verdict, flags, the candidate region that shows the
   work, the transform, and the numbers behind them.

Last, a work found where a better-matching work is found too, and whose pixels there are
plainly less alike, is dropped (:func:`explained_away`): two registered versions of one
drawing, or two photographs of one sky, do not both show the same part of a candidate.

Distances and thresholds come from :class:`~monitor.settings.MatchSettings`, so tuning never
touches this code. Exactness (same bytes / same pixels) is decided by the caller, who holds
the bytes.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import cv2
import faiss
import numpy as np

from monitor.fingerprints import (
    DIHEDRAL,
    MIRRORING,
    PDQ_BYTES,
    PHASH_BYTES,
    CandidateFingerprint,
    LocalFeatures,
    RegionHashes,
    WorkFingerprint,
    cut_hashes,
    disk_radius,
    round_hash,
    round_pdq,
    thumbnail,
)
from monitor.index import FeatureIndex, HammingIndex
from monitor.settings import MatchSettings

FingerprintLoader = Callable[[Sequence[str]], dict[str, WorkFingerprint]]


class Thumbnailed(Protocol):
    """What the pixel check needs of a picture: its size and its grey thumbnail."""

    @property
    def width(self) -> int: ...

    @property
    def thumb(self) -> np.ndarray: ...


@dataclass(frozen=True)
class Negative:
    """A picture's negative, as the pixel check sees it (an inverted copy is compared so)."""

    width: int
    positive: np.ndarray = field(repr=False)

    @property
    def thumb(self) -> np.ndarray:
        return 255 - self.positive


#: Flag of a copy whose tones are inverted (a negative): inspectors that read the candidate's
#: pixels against the work's invert them back first (:func:`in_work_tones`).
INVERTED = "inverted"

NEAR_DUPLICATE = "near_duplicate"
PARTIAL = "partial"
EXACT = "exact"

#: The work shows less than this share of itself → ``cropped``.
CROPPED_BELOW = 0.96
#: The work fills less than this share of the candidate → ``embedded``.
EMBEDDED_BELOW = 0.85
#: Pixel comparison: a block whose standard deviation (grey levels) is below ``FLAT_STD`` is
#: flat; above ``TEXTURED_STD`` it clearly shows something.
FLAT_STD = 2.0
TEXTURED_STD = 6.0
#: Edge agreement (Sobel magnitude after a slight blur): a strong edge is at least
#: ``EDGE_STRONG_GRADIENT``; an edge of the other picture that finds it, half that picture's level.
EDGE_STRONG_GRADIENT = 20.0
EDGE_WEAK_SHARE = 0.5
#: Local matches may stretch the work up to this ratio between its two axes (a picture fitted
#: into a slot of another aspect ratio); the flag ``stretched`` is raised above ``STRETCHED_ABOVE``.
MAX_STRETCH = 2.0
STRETCHED_ABOVE = 1.05
#: An affine map replaces a similarity that passed when it explains this many times the inliers.
AFFINE_GAIN = 1.3
#: Similarities fitted to the matches earlier ones left out, after a pixel check fails.
RIVAL_MODELS = 1
#: Occlusion: a flat fill is pixels whose 3x3 range is at most ``FILL_RANGE`` grey levels,
#: connected to the border, all within ``FILL_LEVELS`` of each other; it masks the work where
#: the two differ by more than ``OCCLUSION_DIFFERENCE``; at most ``MAX_OCCLUDED`` of the shared
#: part may be masked.
FILL_RANGE = 2
#: A fill grows over the pixels of its level (within ``FILL_LEVELS``) next to it, at most this
#: many pixels of the thumbnail: how far JPEG's ringing along its edge reaches (one 8x8 block);
#: the ``FILL_GROWN`` largest fills of a picture do.
FILL_GROW_STEPS = 8
FILL_GROWN = 8
#: Pixels beyond a fill's edge that blend it with the picture (antialiasing, resampling).
FILL_EDGE = 2
FILL_LEVELS = 6
OCCLUSION_DIFFERENCE = 24
MAX_OCCLUDED = 0.5
#: A weak local match whose aligned similarity is under ``chance_min_ncc`` needs at least this
#: many times the inliers the same points give when paired at random (:func:`chance_inliers`).
CHANCE_MARGIN = 1.3
#: A match among twins (:func:`repeat_matches`, chosen by :func:`agreeing_pairs`) needs this
#: many times chance, and an aligned similarity of at least ``REPEAT_MIN_NCC``: each candidate
#: feature there may pick whichever of its four twins fits, so consistent-looking models come
#: easier than any shuffle shows (the bare stroke of one drawing's crop matched strokes of
#: another at 1.3 and 2.3 times chance, aligned similarity 0.88 and 0.75).
REPEAT_CHANCE_MARGIN = 1.5
REPEAT_MIN_NCC = 0.8
#: A model whose inliers are mostly the candidate's faint corners (found only at a FAST
#: contrast of 2 grey levels: :data:`monitor.fingerprints._FAINT_FAST_THRESHOLD`) needs an
#: aligned similarity of at least ``chance_min_ncc``. A faint corner's patch is nearly flat, so
#: its descriptor's tests are decided as much by noise and JPEG as by the picture, and such
#: geometry proves less: a grey globe's faint shading matched a CD's rim (100 inliers of 901,
#: similarity 0.83), a zoomed beach ball's a guitar's body (11 of 17, 0.89). A smooth picture
#: found by its faint corners lines up with its copy almost exactly (the wallpaper's crops:
#: 0.95 and more).
FAINT_CARRIED = 0.5
CHANCE_SHUFFLES = 16
#: :func:`explained_away`: a match is dropped when at least ``EXPLAINED_SHARE`` of the part
#: of the candidate it shows lies in the part a better match shows, and there the better
#: match's work is at least ``EXPLAINED_MARGIN`` more alike to the candidate than its own.
#: Two true alignments of the same pixels differ by 0.01-0.02 (a drawing's black-and-white and
#: coloured versions, both registered, cropped until their grey levels nearly agree).
EXPLAINED_SHARE = 0.8
EXPLAINED_MARGIN = 0.05
#: :func:`repeat_matches`: a twin of a repeated feature is at most this many bits farther from
#: the candidate's descriptor than the nearest one.
REPEAT_SLACK = 8
#: :func:`agreeing_pairs`: each pair votes for the turn its two keypoints' orientations imply
#: (bins of ``HOUGH_TURN_BIN`` degrees) and the scale their sizes imply (bins of
#: ``HOUGH_SCALE_BIN`` in log2, a factor of 1.41), into the two nearest bins of each; the pairs
#: in the ``HOUGH_TOP_BINS`` fullest bins go on to RANSAC.
HOUGH_TURN_BIN = 30.0
HOUGH_SCALE_BIN = 0.5
HOUGH_TOP_BINS = 2
#: A work whose outer ring is at least this share of one level has a plain background; a fill
#: of that level is not taken for a mask.
PLAIN_BACKGROUND_SHARE = 0.5
#: A picture's rectangle can be proposed a little inside its edges: its outer rim is the page's
#: own colour, or a level or two off it (a dialog's white frame on a near-white page). A
#: rectangle's hash hit whose pixel check falls short by less than ``REGION_GROW_MARGIN`` is
#: checked again with the rectangle grown side by side, in steps of ``REGION_GROW_STEP`` of its
#: size and at most ``REGION_GROW_MAX``, while that raises the similarity.
REGION_GROW_MARGIN = 0.25
REGION_GROW_STEP = 0.01
REGION_GROW_MAX = 0.04


@dataclass
class Match:
    """One registered work found in a candidate. ``transform`` maps work pixels to candidate pixels."""

    work_id: str
    verdict: str
    similarity: float
    flags: list[str]
    region: tuple[int, int, int, int]
    transform: np.ndarray = field(repr=False)  # 2x3
    details: dict[str, Any] = field(default_factory=dict)
    #: Reports added by inspectors after verification (e.g. ``"watermark"``), each a top-level
    #: key of the match's JSON beside the fixed ones.
    reports: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body = {
            "work_id": self.work_id,
            "verdict": self.verdict,
            "similarity": round(float(self.similarity), 4),
            "flags": list(self.flags),
            "region": [int(v) for v in self.region],
            "details": self.details,
        }
        for key, value in self.reports.items():
            body.setdefault(key, value)
        return body


def in_work_tones(pixels: np.ndarray, match: Match) -> np.ndarray:
    """8-bit candidate pixels in the work's tones: a negative's inverted back."""
    return 255 - pixels if INVERTED in match.flags else pixels


@dataclass
class _Evidence:
    """What retrieval learned about one work."""

    pdq_distance: int | None = None
    pdq_variant: int | None = None
    phash_distance: int | None = None
    phash_mirrored: bool = False
    # (distance, dihedral variant) of the nearest PDQ variant of the candidate's negative
    inverted: tuple[int, int] | None = None
    votes: dict[int, int] = field(default_factory=dict)  # orientation (0 plain, 1 mirrored) -> votes
    # orientation -> (n, 2) tentative matches (candidate feature, work feature) behind the votes
    pairs: dict[int, np.ndarray] = field(default_factory=dict)
    # hash hits on picture-like rectangles of the candidate:
    # (region index, dihedral name, "region_pdq" or "region_phash", distance)
    regions: list[tuple[int, str, str, int]] = field(default_factory=list)
    # PDQ hits of the whole candidate on a centred cut of the work (``match.cut_aspects``), or of
    # a round profile picture on its centred square filled round (``match.round_cut``):
    # (the cut in work pixels, dihedral name, distance, the cut's PDQ quality, round)
    cuts: list[tuple[tuple[int, int, int, int], str, int, int, bool]] = field(default_factory=list)


class Matcher:
    """Holds the indexes over registered works and matches candidates against them.

    :meth:`add` and :meth:`match` may be called from several threads: a work being added waits
    for the matches in flight, and matches wait for it (one at a time; a process that wants
    parallel matching runs several processes)."""

    def __init__(self, settings: MatchSettings, load: FingerprintLoader, *, cache_size: int = 256) -> None:
        self.settings = settings
        self._load = load
        self._work_ids: list[str] = []
        self._key_of: dict[str, int] = {}
        self._pdq = HammingIndex(PDQ_BYTES)
        self._phash = HammingIndex(PHASH_BYTES)
        # the works' centred cuts, and their centred squares filled round: key i of ``_cuts`` and
        # of ``_rounds`` is row i of ``_cut_of``, (work key, x, y, w, h, quality)
        self._cuts = HammingIndex(PDQ_BYTES)
        self._rounds = HammingIndex(PDQ_BYTES)
        self._cut_of = np.zeros((0, 6), np.int64)
        self._features = FeatureIndex()
        self._cache: OrderedDict[str, WorkFingerprint] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._work_ids)

    def __contains__(self, work_id: object) -> bool:
        return work_id in self._key_of

    @property
    def index_trained_at(self) -> int:
        """When the feature index was last (re)trained, in descriptors stored then (0: flat);
        it changes when adding works retrains it."""
        return self._features.trained_at

    # ------------------------------------------------------------ building

    def add(self, work_id: str, fp: WorkFingerprint) -> None:
        """Index a work (a second call for the same id does nothing)."""
        with self._lock:
            if work_id in self._key_of:
                return
            key = len(self._work_ids)
            self._work_ids.append(work_id)
            self._key_of[work_id] = key
            self._pdq.add([key], np.frombuffer(fp.hashes.pdq, np.uint8))
            self._phash.add([key], np.frombuffer(fp.hashes.phash, np.uint8))
            cuts = cut_hashes(fp, self.settings.cut_aspects, self.settings.cut_min_share)
            rounds = [round_hash(fp)] if self.settings.round_cut else []
            for index, entries in ((self._cuts, cuts), (self._rounds, rounds)):
                if entries:
                    first = len(self._cut_of)
                    codes = np.array([np.frombuffer(code, np.uint8) for _, code, _ in entries])
                    index.add(range(first, first + len(entries)), codes)
                    rows = np.array([(key, *box, quality) for box, _, quality in entries], np.int64)
                    self._cut_of = np.concatenate([self._cut_of, rows])
            n = self.settings.index_features
            for orientation, feats in enumerate((fp.features, fp.mirrored)):
                if len(feats):
                    self._features.add(key * 2 + orientation, feats.descriptors[:n])

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._pdq.save(directory / "pdq")
        self._phash.save(directory / "phash")
        self._cuts.save(directory / "cuts")
        self._rounds.save(directory / "rounds")
        np.save(directory / "cut_of.npy", self._cut_of, allow_pickle=False)
        self._features.save(directory / "features")
        (directory / "works.txt").write_text("\n".join(self._work_ids))

    @classmethod
    def load(cls, directory: Path, settings: MatchSettings, load: FingerprintLoader) -> Matcher:
        matcher = cls(settings, load)
        text = (directory / "works.txt").read_text()
        matcher._work_ids = text.split("\n") if text else []
        matcher._key_of = {w: i for i, w in enumerate(matcher._work_ids)}
        matcher._pdq = HammingIndex.load(directory / "pdq", PDQ_BYTES)
        matcher._phash = HammingIndex.load(directory / "phash", PHASH_BYTES)
        matcher._cuts = HammingIndex.load(directory / "cuts", PDQ_BYTES)
        matcher._rounds = HammingIndex.load(directory / "rounds", PDQ_BYTES)
        matcher._cut_of = np.load(directory / "cut_of.npy", allow_pickle=False)
        matcher._features = FeatureIndex.load(directory / "features")
        cut_rows = (len(matcher._cuts) + len(matcher._rounds), 6)
        if len(matcher._pdq) != len(matcher._work_ids) or matcher._cut_of.shape != cut_rows:
            raise ValueError(f"matcher snapshot in {directory} is inconsistent")
        return matcher

    # ------------------------------------------------------------ matching

    def match(self, cand: CandidateFingerprint) -> list[Match]:
        """Every registered work the candidate shows, best first."""
        with self._lock:
            return self._match(cand)

    def _match(self, cand: CandidateFingerprint) -> list[Match]:
        evidence = self.retrieve(cand)
        if not evidence:
            return []
        fps = self._fingerprints([self._work_ids[k] for k in evidence])
        voted = sorted((-sum(ev.votes.values()), k) for k, ev in evidence.items() if ev.votes)
        best_voted = {k for _, k in voted[: self.settings.rematch_top]}
        matches = []
        for key, ev in evidence.items():
            work_id = self._work_ids[key]
            fp = fps.get(work_id)
            if fp is None:
                continue
            found = self.verify(cand, fp, ev, rematch=key in best_voted)
            if found is not None and self._colours_agree(cand, fp, found):
                found.work_id = work_id
                matches.append(found)
        if not matches and voted and self.settings.placed_top:
            sizes = place_sizes(cand.thumb)  # made once for every work searched
            for _, key in voted[: self.settings.placed_top] if sizes else []:
                work_id = self._work_ids[key]
                fp = fps.get(work_id)
                if fp is None:
                    continue
                found = self._placed(cand, fp, sizes)
                if found is not None and self._colours_agree(cand, fp, found):
                    found.work_id = work_id
                    matches.append(found)
        matches.sort(key=lambda m: m.similarity, reverse=True)
        return explained_away(matches, cand, fps)

    def _placed(self, cand: CandidateFingerprint, fp: WorkFingerprint, sizes: PlaceSizes) -> Match | None:
        """The candidate, which no work's features or hashes explained, found by its pixels in
        one of the best-voted works (``placed_top``). A corner or a piece of a smooth or
        repetitive work (a wallpaper's soft polygons, a maze, stripes) gets votes, but its
        features pair with look-alikes all over the work and no consistent model comes out; and
        a piece of a work that shares its look with others (a game's tiles, a manual's dialogs)
        may give another work more votes. The candidate's thumbnail (at the coarse ``sizes`` of
        :func:`place_sizes`) is searched in the work's (:func:`place_in`, no turn, no mirror);
        the place found must look alike (``placed_min_ncc``) down to its fine detail
        (``placed_min_detail``)."""
        s = self.settings
        placed = place_in(fp.thumb, cand.thumb, sizes)
        if placed is None:
            return None
        t = _from_thumbnails(fp, cand, placed)
        sim = aligned_similarity(fp, cand, t)
        if sim < s.placed_min_ncc:
            return None
        detail = detail_similarity(fp, cand, t)
        if detail is None or detail < s.placed_min_detail:
            return None
        how = {"method": "placed", "placed_peak": round(placed.peak, 4), "detail_ncc": round(detail, 4)}
        return self._describe(cand, fp, t, sim, how)

    def _colours_agree(self, cand: CandidateFingerprint, fp: WorkFingerprint, found: Match) -> bool:
        """The last check of a verified match: where both pictures are saturated, their hues
        must mostly agree (``match.max_hue_disagreement``). The grey thumbnails cannot tell a
        red sign from a blue one drawn on the same template; filters, casts, sepia and
        saturation changes keep hues within a few tens of degrees, and a negative is compared
        inverted. Records ``details.hue_disagreement`` when there was colour to compare."""
        hue = hue_disagreement(fp, cand, found.transform, inverted=INVERTED in found.flags)
        if hue is None:
            return True
        found.details["hue_disagreement"] = round(hue, 3)
        return hue <= self.settings.max_hue_disagreement

    def retrieve(self, cand: CandidateFingerprint) -> dict[int, _Evidence]:
        s = self.settings
        evidence: dict[int, _Evidence] = {}
        # every whole picture is looked up: a hit under either quality gate (a smooth sky, a
        # near-blank page) is only kept when its fine detail agrees (_global_transforms)
        by_pdq, by_phash = self._hash_neighbours(cand)
        for key, (distance, variant) in by_pdq.items():
            ev = evidence.setdefault(key, _Evidence())
            ev.pdq_distance, ev.pdq_variant = distance, variant
        for key, (distance, mirrored) in by_phash.items():
            ev = evidence.setdefault(key, _Evidence())
            ev.phash_distance, ev.phash_mirrored = distance, bool(mirrored)
        # A negative's PDQ is the exact complement of the picture's (every DCT coefficient
        # changes sign), so an inverted copy costs one more search of the same index.
        negative = np.bitwise_not(_pdq_codes(cand))
        inverted = self._nearest(self._pdq, negative, s.pdq_max_distance)
        for key, nearest in inverted.items():
            evidence.setdefault(key, _Evidence()).inverted = nearest
        searches = [(self._cuts, _pdq_codes(cand), s.pdq_max_distance, False)]
        round_codes = round_picture_codes(cand) if len(self._rounds) else None
        if round_codes is not None:
            searches.append((self._rounds, round_codes, s.pdq_max_distance // 2, True))
        for index, codes, max_distance, round_ in searches:
            for variant, hits in enumerate(index.search(codes, max_distance)):
                for cut_hit in hits:
                    key, x, y, w, h, quality = (int(v) for v in self._cut_of[cut_hit.key])
                    cut = ((x, y, w, h), DIHEDRAL[variant], cut_hit.distance, quality, round_)
                    evidence.setdefault(key, _Evidence()).cuts.append(cut)
        for i, region in enumerate(cand.regions):
            by_pdq, by_phash = self._hash_neighbours(region)
            for key, (distance, variant) in by_pdq.items():
                hit = (i, DIHEDRAL[variant], "region_pdq", distance)
                evidence.setdefault(key, _Evidence()).regions.append(hit)
            for key, (distance, mirrored) in by_phash.items():
                hit = (i, "flip_h" if mirrored else "identity", "region_phash", distance)
                evidence.setdefault(key, _Evidence()).regions.append(hit)
        if len(cand.features):
            found = self._features.correspondences(
                cand.features.descriptors,
                k=s.vote_neighbours,
                max_distance=s.descriptor_max_distance,
                ratio=s.vote_ratio,
                group_shift=1,
            )
            ranked = sorted(((len(p), k) for k, p in found.items() if len(p) >= s.min_votes), reverse=True)
            # the best-voted few, and beyond them every work with strong support (a collage of many)
            chosen = [(v, k) for i, (v, k) in enumerate(ranked) if i < s.shortlist or v >= s.shortlist_votes]
            for v, k in chosen:
                ev = evidence.setdefault(k // 2, _Evidence())
                ev.votes[k % 2] = v
                ev.pairs[k % 2] = found[k][:, ::-1]  # (work feature, candidate feature)
        return evidence

    def _hash_neighbours(
        self, hashes: CandidateFingerprint | RegionHashes
    ) -> tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int]]]:
        """Works near these global hashes: key -> (distance, dihedral variant) by PDQ, and
        key -> (distance, 1 if mirrored) by pHash. Works under the PDQ quality gate are among
        them; their hits must agree in fine detail too (:meth:`_global_transforms`)."""
        s = self.settings
        pdq = _pdq_codes(hashes)
        plain_and_mirrored = np.frombuffer(hashes.phash + hashes.phash_mirrored, np.uint8).reshape(
            2, PHASH_BYTES
        )
        return (
            self._nearest(self._pdq, pdq, s.pdq_max_distance),
            self._nearest(self._phash, plain_and_mirrored, s.phash_max_distance),
        )

    def _nearest(
        self, index: HammingIndex, codes: np.ndarray, max_distance: int
    ) -> dict[int, tuple[int, int]]:
        """key -> (distance, variant) of the nearest query variant, for each work within reach."""
        best: dict[int, tuple[int, int]] = {}
        for variant, hits in enumerate(index.search(codes, max_distance)):
            for hit in hits:
                if hit.key not in best or hit.distance < best[hit.key][0]:
                    best[hit.key] = (hit.distance, variant)
        return best

    def verify(
        self, cand: CandidateFingerprint, fp: WorkFingerprint, ev: _Evidence, *, rematch: bool = False
    ) -> Match | None:
        """The best verified explanation of the candidate by this work, or None. ``rematch``:
        this work is among the best voted (``rematch_top``), see :meth:`_verify_local`."""
        best: Match | None = None
        for rank, orientation in enumerate(sorted(ev.votes, key=lambda o: -ev.votes[o])):
            pairs = ev.pairs.get(orientation)
            found = self._verify_local(cand, fp, orientation, pairs, rematch=rematch and rank == 0)
            if found is not None and (best is None or found.similarity > best.similarity):
                best = found
        # the global hashes' exact dihedral transforms, also when local features found the
        # work: fitted to keypoints on a fine repetitive pattern (stripes), a local model can
        # sit a pixel or two off and score far lower than the exact mirror or half turn
        for transform, how, view, onto_view, min_ncc, whole_pdq in self._global_transforms(cand, fp, ev):
            sim = aligned_similarity(fp, view, onto_view)
            if min_ncc - REGION_GROW_MARGIN <= sim < min_ncc and "region_box" in how:
                sim, transform, grown = _grown_region(fp, view, transform, onto_view, how["region_box"], sim)
                if grown is not None:
                    how = {**how, "region_box_grown": grown}
            if whole_pdq is not None and min_ncc > sim >= self.settings.toned_min_ncc:
                toned = self._toned(cand, fp, onto_view, whole_pdq)
                if toned is not None:
                    how = {**how, **toned}
                    min_ncc = sim
            if sim >= min_ncc and (best is None or sim > best.similarity):
                best = self._describe(cand, fp, transform, sim, how)
        if best is None and not ev.votes:
            best = self._hash_proposed(cand, fp, ev)
        if best is not None:
            best.details.update(
                {
                    "pdq_distance": ev.pdq_distance,
                    "phash_distance": ev.phash_distance,
                    "pdq_quality": cand.pdq_quality,
                    "votes": sum(ev.votes.values()),
                }
            )
        return best

    def _toned(
        self, cand: CandidateFingerprint, fp: WorkFingerprint, t: np.ndarray, pdq_distance: int
    ) -> dict[str, Any] | None:
        """The details that keep a PDQ hit of the whole candidate (on the whole work or on one of
        its centred cuts) whose pixels fell short, or None.

        A copy whose tones were pushed (a deep-fried meme, a strong filter or vignette, a hard
        contrast) clips or flattens whole blocks the work has texture in, which the blockwise
        check counts against it, but keeps its fine detail where it was (``toned_min_detail``).
        Within half the allowed PDQ distance that is enough. In the far half, a line drawing
        and its coloured version agree as well in their detail, and a copy deep-fried for
        several rounds sits there too: the colours must agree as well, where both pictures
        have colour (:func:`hue_disagreement` at most ``toned_far_max_hue``). Re-sharing pushes
        saturation but keeps hues; a grey drawing has none to agree with, and two colourings of
        one outline differ in theirs."""
        s = self.settings
        detail = detail_similarity(fp, cand, t)
        if detail is None or detail < s.toned_min_detail:
            return None
        toned: dict[str, Any] = {"detail_ncc": round(detail, 4), "toned": True}
        if pdq_distance > s.pdq_max_distance / 2:
            hue = hue_disagreement(fp, cand, t)
            if hue is None or hue > s.toned_far_max_hue:
                return None
            toned["toned_far"] = True
        return toned

    def _hash_proposed(self, cand: CandidateFingerprint, fp: WorkFingerprint, ev: _Evidence) -> Match | None:
        """A work the whole picture's hashes proposed, that the index's votes did not (a square
        cut of it, a filter, a copy whose features lost the ratio test to a sibling work that
        shares most of them) and whose implied transform failed its pixels: matched feature
        by feature, in the orientation the hash found."""
        if ev.pdq_variant is not None:
            mirrored = DIHEDRAL[ev.pdq_variant] in MIRRORING
        elif ev.phash_distance is not None:
            mirrored = ev.phash_mirrored
        else:  # not for a hit on a centred cut alone: a far one let a weak model through
            return None
        return self._verify_local(cand, fp, int(mirrored))

    def _verify_local(
        self,
        cand: CandidateFingerprint,
        fp: WorkFingerprint,
        orientation: int,
        voted: np.ndarray | None = None,
        *,
        rematch: bool = False,
    ) -> Match | None:
        """Verify from the index's tentative matches (they passed a ratio test against every
        other work, so generic structure is already filtered out). When they give no match and
        the work is among the best voted (``rematch``), or they are many (``rematch_min_votes``),
        or, optionally, show a consistent beginning but not enough (``rematch_min_inliers``),
        match every feature of the work with Lowe's ratio test within the work and try again.
        The ratio test against every other work keeps only the most distinctive matches: a small
        crop's few true ones can lose it to look-alike corners of other works (the index then
        gives its work a handful of votes, mostly wrong), and a repetitive texture draws many
        votes to the right work but pairs its features with the wrong repeats. Without votes (a
        global-hash hit being checked locally), the full match is the only way."""
        feats = fp.mirrored if orientation else fp.features
        if voted is not None and len(voted):
            voted = voted[voted[:, 0] < len(feats)]
            found, inliers = self._fit(cand, fp, orientation, feats, voted)
            if found is not None:
                return found
            started = self.settings.rematch_min_inliers
            many = self.settings.rematch_min_votes
            again = (
                rematch
                or (started is not None and inliers >= started)
                or (many is not None and len(voted) >= many)
            )
            if not again:
                return None
        s = self.settings
        # A work that repeats itself: only with the votes of a real resemblance, as nearly every
        # candidate has features that fail Lowe's test against some work (smooth patches look alike)
        may_repeat = s.repeat_twins >= 2 and voted is not None and len(voted) >= s.repeat_min_votes
        nearest = None
        if min(len(feats), len(cand.features)) >= 2:  # one search for both kinds of matches
            k = min(max(2, s.repeat_twins) if may_repeat else 2, len(feats))
            nearest = _nearest_in_work(feats, cand.features, k)
        pairs = ratio_matches(feats, cand.features, max_distance=s.descriptor_max_distance, nearest=nearest)
        found = self._fit(cand, fp, orientation, feats, pairs)[0]
        if found is None and may_repeat:
            twins, repeated = repeat_matches(
                feats,
                cand.features,
                twins=s.repeat_twins,
                max_distance=s.descriptor_max_distance,
                nearest=nearest,
                # a faint corner (a nearly flat patch) has look-alikes all over a work by chance
                untwinned=cand.features.faint,
            )
            if repeated >= s.min_inliers:  # enough repeated features to hold a model of their own
                # Each repeated feature brings its twins, four times the pairs and nearly all
                # wrong: RANSAC gets those whose keypoints agree on a turn and a scale.
                agreeing = agreeing_pairs(feats, cand.features, twins)
                found = self._fit(cand, fp, orientation, feats, agreeing, repeats=twins)[0]
                if found is not None:
                    found.details["repeats"] = repeated
        return found

    def _fit(
        self,
        cand: CandidateFingerprint,
        fp: WorkFingerprint,
        orientation: int,
        feats: LocalFeatures,
        pairs: np.ndarray,
        *,
        repeats: np.ndarray | None = None,
    ) -> tuple[Match | None, int]:
        """RANSAC similarity on ``pairs`` (work feature, candidate feature), then the pixel
        check; failing that, the same with an affine map (``details["model"] = "affine"``).
        When a similarity fails the pixel check, the matches it left out get a RANSAC of their
        own (:data:`RIVAL_MODELS` times): a part that repeats in the work (the two faces of a
        ribboned box, a row of alike cups) can gather the largest consensus on the wrong one.
        ``repeats``: the twin pairs (:func:`repeat_matches`) that ``pairs`` were chosen from
        (:func:`agreeing_pairs`). Twins swell the inliers and their share, so the match is
        checked as weak geometry, and what chance gives is measured on the twins paired at
        random and chosen the same way (:func:`chance_agreeing_inliers`).
        Returns the match (or None) and the most RANSAC inliers any model found."""
        s = self.settings
        if len(pairs) < max(3, s.min_inliers // 3):
            return None, 0
        src = feats.points[pairs[:, 0]]
        dst = cand.features.points[pairs[:, 1]]
        most, side = 0, max(cand.width, cand.height)
        twins = repeats is not None
        faint_of = None if cand.features.faint is None else cand.features.faint[pairs[:, 1]]

        def chance(fitted_src: np.ndarray, fitted_dst: np.ndarray, stretch: bool) -> Callable[[], int]:
            if repeats is None:
                return lambda: chance_inliers(
                    fitted_src, fitted_dst, side, s.ransac_threshold, stretch=stretch
                )
            return lambda: chance_agreeing_inliers(
                feats, cand.features, repeats, side, s.ransac_threshold, stretch=stretch
            )

        for stretch in (False, True):
            # A similarity first (rotation, scale, shift: most reuse); a copy stretched or
            # squeezed to another aspect ratio (a crop fitted into a banner) needs the affine.
            need = s.affine_min_inliers if stretch else s.min_inliers
            if stretch and len(pairs) < need:
                break
            left = np.ones(len(pairs), bool)
            for _ in range(1 if stretch else 1 + RIVAL_MODELS):
                if left.sum() < need:
                    break
                model, mask = _ransac(src[left], dst[left], side, s.ransac_threshold, stretch=stretch)
                inliers = int(mask.sum())
                most = max(most, inliers)
                if inliers < need:
                    break
                if model is not None:
                    odds = chance(src[left], dst[left], stretch)
                    faint = _carried_by_faint(faint_of, left, mask)
                    found = self._check(
                        cand, fp, orientation, model, inliers, len(pairs), odds, twins=twins, faint=faint
                    )
                    if found is not None:
                        if stretch:
                            found.details["model"] = "affine"
                        else:
                            odds = chance(src, dst, True)
                            found = self._stretched_instead(
                                cand,
                                fp,
                                orientation,
                                src,
                                dst,
                                found,
                                inliers,
                                odds,
                                twins=twins,
                                faint_of=faint_of,
                            )
                        return found, inliers
                left[np.flatnonzero(left)[mask]] = False
        return None, most

    def _stretched_instead(
        self,
        cand: CandidateFingerprint,
        fp: WorkFingerprint,
        orientation: int,
        src: np.ndarray,
        dst: np.ndarray,
        found: Match,
        inliers: int,
        chance: Callable[[], int],
        *,
        twins: bool = False,
        faint_of: np.ndarray | None = None,
    ) -> Match:
        """A similarity that passed the pixel check can still be the wrong model: a crop
        squeezed into a banner is partly explained by a turned similarity (a band of the picture
        lines up within the reprojection threshold), and the copy would be called rotated, not
        stretched. When an affine map with a real stretch explains :data:`AFFINE_GAIN` times the
        inliers and passes the pixel check at least as well, it is the explanation kept."""
        s = self.settings
        if len(src) < s.affine_min_inliers:
            return found
        side = max(cand.width, cand.height)
        model, mask = _ransac(src, dst, side, s.ransac_threshold, stretch=True)
        more = int(mask.sum())
        if model is None or _stretch(model) <= STRETCHED_ABOVE:
            return found
        if more < max(s.affine_min_inliers, AFFINE_GAIN * inliers):
            return found
        faint = _carried_by_faint(faint_of, None, mask)
        better = self._check(cand, fp, orientation, model, more, len(src), chance, twins=twins, faint=faint)
        if better is None or better.similarity < found.similarity:
            return found
        better.details["model"] = "affine"
        return better

    def _check(
        self,
        cand: CandidateFingerprint,
        fp: WorkFingerprint,
        orientation: int,
        model: np.ndarray,
        inliers: int,
        tentative: int,
        chance: Callable[[], int],
        *,
        twins: bool = False,
        faint: bool = False,
    ) -> Match | None:
        """The pixel check (and, for weak geometry, the edge and chance checks) of a RANSAC
        model. ``chance``: the most inliers the same points give when paired at random
        (measured only when needed); ``twins``: the model was fitted to twins
        (:func:`repeat_matches`): it is checked as weak geometry whatever its inliers, and needs
        ``REPEAT_MIN_NCC`` and ``REPEAT_CHANCE_MARGIN``; ``faint``: its inliers are mostly the
        candidate's faint corners, so it needs ``chance_min_ncc`` (:data:`FAINT_CARRIED`)."""
        s = self.settings
        transform = model
        if orientation:
            flip = np.array([[-1.0, 0.0, fp.width], [0.0, 1.0, 0.0]])
            transform = compose(model, flip)
        pair = aligned_pair(fp, cand, transform)
        sim = -1.0 if pair is None else _pair_ncc(*pair)
        ratio = inliers / tentative
        # Many inliers that are most of the tentative matches do not happen by chance; the pixel
        # check then only has to tell the work from a twin (the same outline in other colours),
        # and an overlay across the whole picture (a tiled watermark) may lower its score.
        strong = not twins and inliers >= s.strong_min_inliers and ratio >= s.strong_inlier_ratio
        need = min(s.strong_min_ncc, s.local_min_ncc) if strong else s.local_min_ncc
        if twins:
            need = max(need, REPEAT_MIN_NCC)
        if faint:
            need = max(need, s.chance_min_ncc)
        masked = 0.0
        if pair is not None and sim < need:
            # Part of the work may be masked off by a flat fill (the corners of a round avatar,
            # a caption band across it): then compare what is not masked.
            occluded = occlusion(fp, cand, transform, pair)
            if occluded.any():
                shared = pair[2] & ~occluded
                masked = 1.0 - float(shared.sum()) / max(1, int(pair[2].sum()))
                if shared.sum() >= 64 and masked <= MAX_OCCLUDED:
                    pair = (pair[0], pair[1], shared, pair[3])
                    sim = _pair_ncc(*pair, only_mask=True)
        if pair is None or sim < need:
            return None
        details: dict[str, Any] = {
            "method": "local",
            "inliers": inliers,
            "matches": tentative,
            "inlier_ratio": round(ratio, 4),
        }
        if masked:
            details["occluded"] = round(masked, 4)
        if twins or (inliers < s.weak_max_inliers and ratio < s.weak_inlier_ratio):
            # Weak geometry: a few consistent matches among many. Two pictures that only share
            # a colour and an outline get this far (their blurred pixels correlate); their
            # edges inside the outline do not coincide. A true copy's do.
            agreement = edge_agreement(*pair[:3])
            details["edge_agreement"] = round(agreement, 4)
            if agreement < s.weak_min_edge_agreement:
                return None
            if sim < s.chance_min_ncc:
                # Few consistent matches among many can be what any pairing of these points
                # gives: stars of two skies, dots of two textures, packed so densely that some
                # fall within the tolerance of almost any map. Then the geometry proves nothing,
                # and the pixels, alone, must be very alike.
                by_chance = chance()
                details["chance_inliers"] = by_chance
                if inliers < (REPEAT_CHANCE_MARGIN if twins else CHANCE_MARGIN) * by_chance:
                    return None
        return self._describe(cand, fp, transform, sim, details)

    def _global_transforms(
        self, cand: CandidateFingerprint, fp: WorkFingerprint, ev: _Evidence
    ) -> list[tuple[np.ndarray, dict[str, Any], Thumbnailed, np.ndarray, float, int | None]]:
        """Transforms the global-hash hits imply, each with the details that explain it, where
        to check its pixels (the candidate and the transform, or for a hit on a picture
        rectangle, the rectangle's own thumbnail and the transform into the rectangle), and the
        aligned similarity it needs: a whole-picture hit in the far half of the allowed hash
        distance is weak evidence, and needs ``global_far_min_ncc``. When PDQ and pHash both
        hit it with the same transform, the two are weighed together: the pixels needed rise
        from ``global_min_ncc``, with both hashes at half their allowed distance (on average),
        to ``global_far_min_ncc`` with both at the limit. A copy degraded until each hash sits
        in its far half (a meme re-shared many times) is still seen alike by both, while a
        redrawn look-alike sits near both limits.

        Where the work, the candidate or the candidate's rectangle is under its PDQ quality gate
        (a smooth sky, a soft gradient, a near-blank), blocks of the two correlate whatever they
        show, so the hit is kept only when the fine detail agrees as well
        (:func:`detail_similarity` ≥ ``low_quality_min_detail``, recorded as
        ``details.detail_ncc``), and then needs ``global_far_min_ncc``.

        A hit of the whole candidate's PDQ on one of the work's centred cuts (``ev.cuts``, the
        nearest in each orientation) is checked where the cut lies in the work, and held to the
        same needs as a whole-picture PDQ hit at its distance, under the cut's own quality gate.

        The last element is the PDQ distance of a hit of the whole candidate's PDQ (on the whole
        work or on a cut), None for the other hits: short of the pixels it needs, such a hit may
        still be kept by its fine detail when its pixels reach ``toned_min_ncc`` (:meth:`_toned`)."""
        s = self.settings
        out: list[tuple[np.ndarray, dict[str, Any], Thumbnailed, np.ndarray, float, int | None]] = []
        low_work = fp.hashes.pdq_quality < s.pdq_min_quality
        low_whole = low_work or cand.pdq_quality < s.candidate_pdq_min_quality

        def keep(
            t: np.ndarray,
            details: dict[str, Any],
            view: Thumbnailed,
            onto_view: np.ndarray,
            need: float,
            low: bool,
            whole_pdq: int | None = None,
        ) -> None:
            if low:
                detail = detail_similarity(fp, view, onto_view)
                if detail is None or detail < s.low_quality_min_detail:
                    return
                details = {**details, "detail_ncc": round(detail, 4)}
                need = max(need, s.global_far_min_ncc)
            out.append((t, details, view, onto_view, need, whole_pdq))

        def needs(distance: int, limit: int) -> float:
            return s.global_far_min_ncc if distance > limit / 2 else s.global_min_ncc

        phash_name = "flip_h" if ev.phash_mirrored else "identity"
        if ev.pdq_variant is not None and ev.pdq_distance is not None:
            t = dihedral_transform(DIHEDRAL[ev.pdq_variant], fp, cand)
            need = needs(ev.pdq_distance, s.pdq_max_distance)
            details: dict[str, Any] = {"method": "pdq"}
            if ev.phash_distance is not None and DIHEDRAL[ev.pdq_variant] == phash_name:
                pdq_far = ev.pdq_distance / max(1, s.pdq_max_distance)
                far = (pdq_far + ev.phash_distance / max(1, s.phash_max_distance)) / 2
                rise = min(1.0, max(0.0, 2 * far - 1))
                need = min(need, s.global_min_ncc + rise * (s.global_far_min_ncc - s.global_min_ncc))
                details["hashes_agree"] = True
            keep(t, details, cand, t, need, low_whole, ev.pdq_distance)
        pdq_name = None if ev.pdq_variant is None else DIHEDRAL[ev.pdq_variant]
        if ev.phash_distance is not None and pdq_name != phash_name:
            t = dihedral_transform(phash_name, fp, cand)
            keep(t, {"method": "phash"}, cand, t, needs(ev.phash_distance, s.phash_max_distance), low_whole)
        if ev.inverted is not None:
            distance, variant = ev.inverted
            t = dihedral_transform(DIHEDRAL[variant], fp, cand)
            details = {"method": "pdq_inverted", "inverted_pdq_distance": distance}
            negative = Negative(cand.width, cand.thumb)
            keep(t, details, negative, t, needs(distance, s.pdq_max_distance), low_whole)
        # the whole candidate is a centred cut of the work: its nearest cut in each orientation
        nearest_cut: dict[str, tuple[tuple[int, int, int, int], str, int, int, bool]] = {}
        for cut in sorted(ev.cuts, key=lambda cut: cut[2]):
            nearest_cut.setdefault(cut[1], cut)
        for (x, y, w, h), name, distance, quality, round_ in nearest_cut.values():
            t = compose(dihedral_transform(name, _Size(w, h), cand), _shift(-x, -y))
            details = {"method": "pdq_cut", "cut_pdq_distance": distance, "cut_box": [x, y, w, h]}
            if round_:
                details["cut_round"] = True
            low = quality < s.pdq_min_quality or cand.pdq_quality < s.candidate_pdq_min_quality
            keep(t, details, cand, t, needs(distance, s.pdq_max_distance), low, distance)
        seen = set()
        for i, name, how, distance in sorted(
            ev.regions, key=lambda hit: hit[3] / (256 if hit[2] == "region_pdq" else 64)
        ):
            if (i, name) in seen:
                continue  # the rectangle's pHash and PDQ agree: one transform to check
            seen.add((i, name))
            region = cand.regions[i]
            x, y, w, h = region.box
            into_box = dihedral_transform(name, fp, (w, h))
            details = {"method": how, "region_hash_distance": distance, "region_box": [x, y, w, h]}
            view = region if region.thumb.size else cand
            onto_view = into_box if region.thumb.size else compose(_shift(x, y), into_box)
            # a rectangle is held to the works' gate (a page's thumbnail keeps its detail)
            low = low_work or region.pdq_quality < s.pdq_min_quality
            keep(compose(_shift(x, y), into_box), details, view, onto_view, s.global_min_ncc, low)
        return out

    def _describe(
        self,
        cand: CandidateFingerprint,
        fp: WorkFingerprint,
        transform: np.ndarray,
        sim: float,
        details: dict[str, Any],
    ) -> Match:
        geo = describe_transform(transform)
        cov_work, cov_cand, region = coverage(transform, fp.width, fp.height, cand.width, cand.height)
        flags = []
        if cov_work < CROPPED_BELOW:
            flags.append("cropped")
        if cov_cand < EMBEDDED_BELOW:
            flags.append("embedded")
        if geo["mirrored"]:
            flags.append("mirrored")
        if geo["rotation_deg"] is not None and abs(geo["rotation_deg"]) > 1.0:
            flags.append("rotated")
        if abs(geo["scale"] - 1.0) > 0.03:
            flags.append("resized")
        if geo["stretch"] > STRETCHED_ABOVE:
            flags.append("stretched")
        if cand.is_grayscale and not fp.is_grayscale:
            flags.append("grayscale")
        if details.get("method") == "pdq_inverted":
            flags.append(INVERTED)
        verdict = PARTIAL if ("cropped" in flags or "embedded" in flags) else NEAR_DUPLICATE
        details = {
            **details,
            "ncc": round(float(sim), 4),
            "scale": round(geo["scale"], 4),
            "rotation_deg": None if geo["rotation_deg"] is None else round(geo["rotation_deg"], 2),
            "mirrored": geo["mirrored"],
            "stretch": round(min(geo["stretch"], 1e6), 4),  # finite: JSON has no infinity
            "coverage_work": round(cov_work, 4),
            "coverage_candidate": round(cov_cand, 4),
            "transform": [[round(float(v), 5) for v in row] for row in transform],
        }
        return Match("", verdict, max(0.0, min(1.0, sim)), flags, region, transform, details)

    def _fingerprints(self, work_ids: list[str]) -> dict[str, WorkFingerprint]:
        out = {w: self._cache[w] for w in work_ids if w in self._cache}
        missing = [w for w in work_ids if w not in out]
        if missing:
            loaded = self._load(missing)
            out.update(loaded)
            for w, fp in loaded.items():
                self._cache[w] = fp
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        for w in out:
            if w in self._cache:
                self._cache.move_to_end(w)
        return out


# ---------------------------------------------------------------- geometry helpers


#: :func:`round_picture_codes`: a candidate is square when its sides differ by at most this share;
#: a round profile picture when at least ``ROUND_FILL_SHARE`` of its corners outside the disk
#: inscribed in it lie within ``FILL_LEVELS`` of their median level (one flat fill, with some
#: JPEG ringing), and under ``ROUND_INSIDE_FILL`` of the disk's inner part does (a drawing on
#: white has its white inside the disk too).
ROUND_SQUARE_TOLERANCE = 0.02
ROUND_FILL_SHARE = 0.8
ROUND_INSIDE_FILL = 0.5


#: :func:`place_in`: the coarse search runs on the work's thumbnail at this many pixels a side,
#: over ``PLACE_SCALES`` sizes of the candidate from ``PLACE_MIN_SIDE`` pixels to the whole
#: work; the best place, if it correlates at least ``PLACE_MIN_PEAK``, is refined on the full
#: thumbnail in rounds of ``PLACE_REFINE`` sizes, each round over ``PLACE_REFINE_SPANS`` of the
#: size the round before found, within ``PLACE_SHIFT`` pixels of the place it found.
PLACE_COARSE_SIDE = 64
PLACE_SCALES = 14
PLACE_MIN_SIDE = 14
PLACE_MIN_PEAK = 0.8
PLACE_REFINE = 5
PLACE_REFINE_SPANS = (0.06, 0.02)
PLACE_SHIFT = 4


class Placement(NamedTuple):
    """Where a candidate's thumbnail shows inside a work's (:func:`place_in`): the candidate's
    thumbnail scaled by ``scale_x`` and ``scale_y`` has its top-left corner at ``(x, y)`` of
    the work's thumbnail (pixel edges: the work's pixel ``i`` spans ``[i, i + 1)``), where the
    two correlate ``peak``."""

    peak: float
    scale_x: float
    scale_y: float
    x: float
    y: float


def place_in(work: np.ndarray, cand: np.ndarray, sizes: PlaceSizes | None = None) -> Placement | None:
    """Where the grey thumbnail ``cand`` best shows inside the grey thumbnail ``work``,
    unturned; None when no place correlates ``PLACE_MIN_PEAK``. Normalised cross-correlation
    (OpenCV's ``matchTemplate``) over sizes of the candidate on a ``PLACE_COARSE_SIDE`` copy of
    the work, then refined at the work's own size, in size and to a fraction of a pixel.
    ``sizes``: :func:`place_sizes` of ``cand``, made once when it is searched in several works."""
    if work.size == 0 or cand.size == 0:
        return None
    to_coarse = PLACE_COARSE_SIDE / max(work.shape)
    if to_coarse >= 1:
        return None
    coarse = thumbnail(work, PLACE_COARSE_SIDE).astype(np.float32)
    best: tuple[float, float, float, float] | None = None  # peak, size, x, y in the work's thumbnail
    for size, template in place_sizes(cand) if sizes is None else sizes:
        found = _best_place(coarse, template, None)
        if found is not None and (best is None or found[0] > best[0]):
            best = (found[0], size / to_coarse, found[1] / to_coarse, found[2] / to_coarse)
    if best is None or best[0] < PLACE_MIN_PEAK:
        return None
    full = work.astype(np.float32)
    size, near = best[1], (best[2], best[3])
    refined: Placement | None = None
    for span in PLACE_REFINE_SPANS:
        centre = size
        for f in np.geomspace(1 - span, 1 + span, PLACE_REFINE):
            scaled = _scaled(cand, centre * f)
            if scaled is None:
                continue
            found = _best_place(full, scaled, near)
            if found is not None and (refined is None or found[0] > refined.peak):
                scale_x, scale_y = scaled.shape[1] / cand.shape[1], scaled.shape[0] / cand.shape[0]
                refined, size = Placement(found[0], scale_x, scale_y, found[1], found[2]), centre * f
        if refined is None:
            return None
        near = (refined.x, refined.y)
    return refined


#: The candidate's thumbnail at each size of :func:`place_in`'s coarse search: (the size, as a
#: share of the thumbnail, the resized copy).
PlaceSizes = list[tuple[float, np.ndarray]]


def place_sizes(cand: np.ndarray) -> PlaceSizes:
    """The candidate's thumbnail at ``PLACE_SCALES`` sizes from ``PLACE_MIN_SIDE`` to
    ``PLACE_COARSE_SIDE`` pixels a side, flat ones left out, for :func:`place_in`'s coarse
    search. They are made from one copy no larger than the largest: resizing the whole
    thumbnail again for each would cost more than the searches."""
    if cand.size == 0:
        return []
    small = thumbnail(cand, PLACE_COARSE_SIDE)
    sizes = []
    for side in np.geomspace(PLACE_MIN_SIDE, PLACE_COARSE_SIDE, PLACE_SCALES):
        template = _scaled(small, side / max(small.shape))
        if template is not None:
            sizes.append((side / max(cand.shape), template))
    return sizes


def _scaled(cand: np.ndarray, size: float) -> np.ndarray | None:
    """``cand`` resized by ``size`` as a search template; None when it would be under 4 pixels
    a side or is flat (a flat template correlates with nothing, or with everything)."""
    tw, th = round(cand.shape[1] * size), round(cand.shape[0] * size)
    if min(tw, th) < 4:
        return None
    template = cv2.resize(cand, (tw, th), interpolation=cv2.INTER_AREA).astype(np.float32)
    return template if template.std() >= 1.0 else None


def _best_place(
    work: np.ndarray, template: np.ndarray, near: tuple[float, float] | None
) -> tuple[float, float, float] | None:
    """The best correlation of ``template`` in ``work`` (or, with ``near``, within
    ``PLACE_SHIFT`` pixels of that top-left corner) and where, ``(peak, x, y)``, the place
    refined to a fraction of a pixel by a parabola through the scores beside the peak."""
    th, tw = template.shape
    if tw > work.shape[1] or th > work.shape[0]:
        return None
    x0, y0 = 0, 0
    area = work
    if near is not None:
        x0 = max(0, round(near[0]) - PLACE_SHIFT)
        y0 = max(0, round(near[1]) - PLACE_SHIFT)
        x1 = min(work.shape[1], round(near[0]) + tw + PLACE_SHIFT)
        y1 = min(work.shape[0], round(near[1]) + th + PLACE_SHIFT)
        if x1 - x0 < tw or y1 - y0 < th:
            return None
        area = work[y0:y1, x0:x1]
    scores = cv2.matchTemplate(area, template, cv2.TM_CCOEFF_NORMED)
    _, peak, _, (x, y) = cv2.minMaxLoc(scores)
    # between the pixels: a size whose true place falls half a pixel off the grid would lose
    # to a wrong size whose place falls on it, if sizes were compared on the grid
    dx, gain_x = _parabola_peak(scores[y, x - 1 : x + 2]) if 0 < x < scores.shape[1] - 1 else (0.0, 0.0)
    dy, gain_y = _parabola_peak(scores[y - 1 : y + 2, x]) if 0 < y < scores.shape[0] - 1 else (0.0, 0.0)
    return min(1.0, float(peak) + gain_x + gain_y), x0 + x + dx, y0 + y + dy


def _parabola_peak(three: np.ndarray) -> tuple[float, float]:
    """Where, within half a step of the middle, the parabola through three scores (the middle
    one the highest) peaks, and how much higher than the middle."""
    left, middle, right = (float(v) for v in three)
    curvature = left - 2 * middle + right
    if curvature >= 0:
        return 0.0, 0.0
    offset = max(-0.5, min(0.5, 0.5 * (left - right) / curvature))
    return offset, -0.5 * curvature * offset * offset


def _from_thumbnails(fp: WorkFingerprint, cand: Thumbnailed, placed: Placement) -> np.ndarray:
    """The transform (work pixels to candidate pixels) of a candidate whose thumbnail lies in
    the work's as ``placed`` says (both thumbnails cover their pictures edge to edge, so a
    position ``p`` of the work's picture is ``p * thumb / width`` in its thumbnail)."""
    to_work = fp.width / fp.thumb.shape[1]
    to_cand = cand.width / cand.thumb.shape[1]
    ax = to_cand / (placed.scale_x * to_work)
    ay = to_cand / (placed.scale_y * to_work)
    return np.array(
        [[ax, 0.0, -placed.x * to_cand / placed.scale_x], [0.0, ay, -placed.y * to_cand / placed.scale_y]]
    )


def round_picture_codes(cand: CandidateFingerprint) -> np.ndarray | None:
    """The 8 PDQ codes of a round profile picture filled round (``round_filled`` of
    :mod:`monitor.fingerprints`), to look up among the works' centred squares filled alike;
    None when the candidate is not one."""
    thumb = cand.thumb
    h, w = thumb.shape
    if min(h, w) < 16 or abs(h - w) > ROUND_SQUARE_TOLERANCE * max(h, w):
        return None
    r = disk_radius(h, w)
    corners, inner = thumb[r > 1.0].astype(np.int16), thumb[r < 0.8].astype(np.int16)
    level = int(np.median(corners))
    if (np.abs(corners - level) <= FILL_LEVELS).mean() < ROUND_FILL_SHARE:
        return None
    if (np.abs(inner - level) <= FILL_LEVELS).mean() >= ROUND_INSIDE_FILL:
        return None
    variants, _ = round_pdq(np.ascontiguousarray(thumb))
    return np.array([np.frombuffer(v, np.uint8) for v in variants])


def _pdq_codes(hashes: CandidateFingerprint | RegionHashes) -> np.ndarray:
    return np.frombuffer(b"".join(hashes.pdq_variants), np.uint8).reshape(-1, PDQ_BYTES)


def ratio_matches(
    work: LocalFeatures,
    cand: LocalFeatures,
    ratio: float = 0.85,
    max_distance: int | None = None,
    *,
    nearest: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """(n, 2) index pairs (work, candidate) passing Lowe's ratio test, one per candidate feature,
    and no farther apart than ``max_distance`` bits when it is given.

    An exhaustive search of the work's descriptors (faiss's flat binary index: a fifth of the
    time OpenCV's brute-force matcher takes for the same 1,500 x 1,000 distances), or
    ``nearest``, the same search already made with two or more neighbours."""
    if len(work) < 2 or len(cand) < 2:
        return np.zeros((0, 2), np.int64)
    dist, ids = nearest if nearest is not None else _nearest_in_work(work, cand, 2)
    ok = (ids[:, 1] >= 0) & (dist[:, 0] < ratio * dist[:, 1])
    if max_distance is not None:
        ok &= dist[:, 0] <= max_distance
    rows = np.flatnonzero(ok)
    return np.stack([ids[rows, 0], rows], axis=1).astype(np.int64)


def repeat_matches(
    work: LocalFeatures,
    cand: LocalFeatures,
    *,
    twins: int,
    max_distance: int,
    ratio: float = 0.85,
    slack: int = REPEAT_SLACK,
    nearest: tuple[np.ndarray, np.ndarray] | None = None,
    untwinned: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Matches for a work that repeats itself (a sprite sheet of alike frames, a patterned
    wallpaper, a row of windows), where Lowe's test throws away the very features that repeat:
    each has a twin in the work about as near as itself. ``(pairs, repeated)``: the
    :func:`ratio_matches` pairs plus, for each candidate feature that failed the test only
    because of such twins (its nearest within ``max_distance``), a pair with each of its
    ``twins`` nearest work features no more than ``slack`` bits farther than the nearest;
    ``repeated`` counts those candidate features. RANSAC then picks the twin that fits.
    ``nearest``: the search of the ``twins`` nearest, when it was already made; ``untwinned``
    (bool per candidate feature): features that get no twins."""
    if len(work) < 2 or len(cand) < 2:
        return np.zeros((0, 2), np.int64), 0
    k = max(2, twins)
    dist, ids = nearest if nearest is not None else _nearest_in_work(work, cand, min(k, len(work)))
    dist, ids = dist[:, :k], ids[:, :k]
    near = (ids[:, 0] >= 0) & (dist[:, 0] <= max_distance)
    clear = near & (ids[:, 1] >= 0) & (dist[:, 0] < ratio * dist[:, 1])
    ambiguous = near & ~clear
    if untwinned is not None:
        ambiguous &= ~untwinned
    twin = (ids >= 0) & (dist <= dist[:, :1] + slack) & (dist <= max_distance) & ambiguous[:, None]
    twin[:, 0] = clear | ambiguous
    rows, cols = np.nonzero(twin)
    return np.stack([ids[rows, cols], rows], axis=1).astype(np.int64), int(ambiguous.sum())


def agreeing_pairs(
    work: LocalFeatures, cand: LocalFeatures, pairs: np.ndarray, *, top: int = HOUGH_TOP_BINS
) -> np.ndarray:
    """The ``pairs`` (work feature, candidate feature) whose keypoints agree on a turn and a
    scale with the most other pairs: Lowe's Hough transform on ORB's orientations and sizes.
    A copy turns and scales all of the work's keypoints alike, so its pairs gather in one bin
    of (turn, scale), while pairs made by chance spread over all of them. All ``pairs`` when
    either side's keypoints have no orientations (a fingerprint made before they were kept)."""
    if work.shapes is None or cand.shapes is None or len(pairs) == 0:
        return pairs
    w, c = work.shapes[pairs[:, 0]], cand.shapes[pairs[:, 1]]
    turns = round(360 / HOUGH_TURN_BIN)
    turn = np.floor(np.mod(c[:, 0] - w[:, 0], 360.0) / HOUGH_TURN_BIN - 0.5).astype(np.int64)
    ratio = np.maximum(c[:, 1], 1e-3) / np.maximum(w[:, 1], 1e-3)
    scale = np.floor(np.log2(ratio) / HOUGH_SCALE_BIN - 0.5).astype(np.int64)
    scale -= scale.min()
    span = int(scale.max()) + 2
    # each pair into the two nearest bins of each: a pair on a bin's edge counts for both sides
    bins = np.stack([((turn + a) % turns) * span + scale + b for a in (0, 1) for b in (0, 1)], axis=1)
    counts = np.bincount(bins.ravel(), minlength=turns * span)
    best = np.argsort(-counts, kind="stable")[:top]
    return pairs[np.isin(bins, best).any(axis=1)]


def _carried_by_faint(faint_of: np.ndarray | None, fitted: np.ndarray | None, inliers: np.ndarray) -> bool:
    """Whether more than :data:`FAINT_CARRIED` of a model's inliers are faint corners of the
    candidate. ``faint_of``: per pair, its candidate feature is faint (None: none is);
    ``fitted``: the pairs RANSAC was given (None: all); ``inliers``: its mask over them."""
    if faint_of is None:
        return False
    given = faint_of if fitted is None else faint_of[fitted]
    return bool(given[inliers].mean() > FAINT_CARRIED)


def _nearest_in_work(work: LocalFeatures, cand: LocalFeatures, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances and positions of each candidate descriptor's ``k`` nearest work descriptors
    (faiss's flat binary index: a fifth of the time OpenCV's brute-force matcher takes)."""
    flat = faiss.IndexBinaryFlat(work.descriptors.shape[1] * 8)
    flat.add(np.ascontiguousarray(work.descriptors))
    return flat.search(np.ascontiguousarray(cand.descriptors), k)


def _ransac(
    src: np.ndarray, dst: np.ndarray, side: int, threshold: float, *, stretch: bool
) -> tuple[np.ndarray | None, np.ndarray]:
    """RANSAC of work points onto candidate points: a similarity, or with ``stretch`` an affine
    map that keeps orientation and scales one axis at most :data:`MAX_STRETCH` times the other.
    Returns the model (None when there is none, or it is implausible) and its inliers' mask."""
    estimate = cv2.estimateAffine2D if stretch else cv2.estimateAffinePartial2D
    model, mask = estimate(
        src,
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=max(2.0, threshold * side),
        # a similarity's 2-point samples need few tries; the affine's 3-point ones are capped
        # lower (enough for an inlier ratio of 0.17 at 99.5 %: a real stretched copy has more)
        maxIters=1000 if stretch else 4000,
        confidence=0.995,
        refineIters=10,
    )
    if model is None or mask is None:
        return None, np.zeros(len(src), bool)
    inliers = mask.ravel() == 1
    det = float(np.linalg.det(model[:, :2]))
    if not (0.02**2 <= det <= 50**2):  # also refuses a reflection: mirrors have their own features
        return None, inliers
    if stretch and _stretch(model) > MAX_STRETCH:
        return None, inliers
    if _inlier_spread(dst[inliers]) < 0.02 * side:
        return None, inliers  # all inliers on one spot: no evidence of a shared picture
    return model, inliers


def chance_inliers(src: np.ndarray, dst: np.ndarray, side: int, threshold: float, *, stretch: bool) -> int:
    """The most inliers :func:`_ransac` finds when the same points are paired at random
    (:data:`CHANCE_SHUFFLES` shuffles, seeded by the number of points, so a scan repeats its
    verdicts): what chance alone gives these points, packed as they are."""
    return _most_by_chance(
        len(src), lambda shuffle: int(_ransac(src, dst[shuffle], side, threshold, stretch=stretch)[1].sum())
    )


def chance_agreeing_inliers(
    work: LocalFeatures, cand: LocalFeatures, twins: np.ndarray, side: int, threshold: float, *, stretch: bool
) -> int:
    """:func:`chance_inliers` for pairs that :func:`agreeing_pairs` chose among ``twins``: the
    most inliers :func:`_ransac` finds when the twins' candidate features are shuffled among
    them and the pairs chosen again the same way. The choice itself gathers pairs that look
    consistent, so shuffling only the chosen ones would understate what chance gives."""

    def inliers(shuffle: np.ndarray) -> int:
        chosen = agreeing_pairs(work, cand, np.stack([twins[:, 0], twins[shuffle, 1]], axis=1))
        if len(chosen) < 3:
            return 0
        src, dst = work.points[chosen[:, 0]], cand.points[chosen[:, 1]]
        return int(_ransac(src, dst, side, threshold, stretch=stretch)[1].sum())

    return _most_by_chance(len(twins), inliers)


def _most_by_chance(n: int, inliers: Callable[[np.ndarray], int]) -> int:
    """The most ``inliers(shuffle)`` over :data:`CHANCE_SHUFFLES` shuffles of ``n`` pairs'
    candidate sides, seeded by ``n`` so that a scan repeats its verdicts."""
    rng = np.random.default_rng(n)
    return max(inliers(rng.permutation(n)) for _ in range(CHANCE_SHUFFLES))


def _stretch(t: np.ndarray) -> float:
    """How much more the 2x3 map scales one direction than the other (1: not at all)."""
    high, low = np.linalg.svd(t[:, :2], compute_uv=False)
    return float(high / low) if low > 0 else math.inf


def _inlier_spread(points: np.ndarray) -> float:
    if len(points) < 2:
        return 0.0
    return float(np.sqrt(np.prod(points.std(axis=0)) + 1e-9))


def _shift(x: float, y: float) -> np.ndarray:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y]])


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2x3 affine ``a ∘ b`` (apply b, then a)."""
    a3 = np.vstack([a, [0, 0, 1]])
    b3 = np.vstack([b, [0, 0, 1]])
    return (a3 @ b3)[:2]


@dataclass(frozen=True)
class _Size:
    """A rectangle of a work (a centred cut), as :func:`dihedral_transform` sees it."""

    width: int
    height: int


def dihedral_transform(
    name: str, fp: WorkFingerprint | _Size, cand: CandidateFingerprint | tuple[int, int]
) -> np.ndarray:
    """Work pixels -> candidate pixels when ``T_name(candidate)`` looks like the work.

    ``T`` maps candidate coordinates to work coordinates (normalised to the unit square);
    we need its inverse, scaled to each image's size. ``cand`` may be a ``(width, height)``
    instead: the size of the rectangle that shows the work.
    """
    width, height = cand if isinstance(cand, tuple) else (cand.width, cand.height)
    inverse = {"rot90ccw": "rot90cw", "rot90cw": "rot90ccw"}.get(name, name)
    # (u, v) -> linear map on the unit square, as [[a, b, c], [d, e, f]]
    unit = {
        "identity": [[1, 0, 0], [0, 1, 0]],
        "rot90ccw": [[0, 1, 0], [-1, 0, 1]],
        "rot180": [[-1, 0, 1], [0, -1, 1]],
        "rot90cw": [[0, -1, 1], [1, 0, 0]],
        "flip_v": [[1, 0, 0], [0, -1, 1]],
        "flip_h": [[-1, 0, 1], [0, 1, 0]],
        "transpose": [[0, 1, 0], [1, 0, 0]],
        "antitranspose": [[0, -1, 1], [-1, 0, 1]],
    }[inverse]
    to_unit = np.array([[1 / fp.width, 0, 0], [0, 1 / fp.height, 0]])
    from_unit = np.array([[width, 0, 0], [0, height, 0]])
    return compose(from_unit, compose(np.array(unit, np.float64), to_unit))


def _grown_region(
    fp: WorkFingerprint,
    view: Thumbnailed,
    transform: np.ndarray,
    onto_view: np.ndarray,
    box: list[int],
    sim: float,
) -> tuple[float, np.ndarray, list[int] | None]:
    """A rectangle's hit checked again with the rectangle grown (``REGION_GROW_*``): each side
    in turn is moved out one step while that raises the similarity. ``transform`` maps the work
    onto the rectangle ``box`` of the candidate, ``onto_view`` the same into ``view``'s pixels
    (the candidate's, or the rectangle's own thumbnail's). Returns the best similarity, the
    candidate transform that gave it, and the pixels each side (left, top, right, bottom) grew
    by, or None when no growth helped."""
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return sim, transform, None
    step = (REGION_GROW_STEP * w, REGION_GROW_STEP * h) * 2
    limit = round(REGION_GROW_MAX / REGION_GROW_STEP)
    # where the rectangle's corner is in the view: the two maps differ by that shift only
    view_corner = (x + onto_view[0, 2] - transform[0, 2], y + onto_view[1, 2] - transform[1, 2])

    def grown(sides: list[int], corner: tuple[float, float]) -> np.ndarray:
        """The rectangle at ``corner`` grown by ``sides`` steps: its (0, 0, w, h) stretched
        onto (-left, -top, w + right, h + bottom)."""
        left, top, right, bottom = (n * d for n, d in zip(sides, step, strict=True))
        stretch = np.array([[(w + left + right) / w, 0.0, -left], [0.0, (h + top + bottom) / h, -top]])
        return compose(_shift(*corner), compose(stretch, _shift(-corner[0], -corner[1])))

    best, sides = sim, [0, 0, 0, 0]
    improved = True
    while improved:
        improved = False
        for side in range(4):
            if sides[side] >= limit:
                continue
            trial = [n + (i == side) for i, n in enumerate(sides)]
            trial_sim = aligned_similarity(fp, view, compose(grown(trial, view_corner), onto_view))
            if trial_sim > best:
                best, sides, improved = trial_sim, trial, True
    if not any(sides):
        return sim, transform, None
    pixels = [round(n * d) for n, d in zip(sides, step, strict=True)]
    return best, compose(grown(sides, (float(x), float(y))), transform), pixels


def describe_transform(t: np.ndarray) -> dict[str, Any]:
    """Scale, rotation and mirroring of a 2x3 work->candidate map. ``rotation_deg`` is in image
    coordinates (y down): positive turns clockwise on screen (Pillow's ``rotate(a)`` reads -a)."""
    lin = t[:, :2]
    det = float(np.linalg.det(lin))
    mirrored = det < 0
    scale = math.sqrt(abs(det))
    m = lin @ np.diag([-1.0, 1.0]) if mirrored else lin
    rotation = math.degrees(math.atan2(m[1, 0], m[0, 0]))
    return {"scale": scale, "rotation_deg": rotation, "mirrored": mirrored, "stretch": _stretch(t)}


def coverage(
    t: np.ndarray, work_w: int, work_h: int, cand_w: int, cand_h: int
) -> tuple[float, float, tuple[int, int, int, int]]:
    """(share of the work visible in the candidate, share of the candidate the work fills,
    candidate-pixel bounding box ``(x, y, w, h)`` of the visible work)."""
    corners = np.array([[0, 0], [work_w, 0], [work_w, work_h], [0, work_h]], np.float64)
    projected = corners @ t[:, :2].T + t[:, 2]
    if np.linalg.det(t[:, :2]) < 0:
        projected = projected[::-1]
    frame = np.array([[0, 0], [cand_w, 0], [cand_w, cand_h], [0, cand_h]], np.float32)
    area, inter = cv2.intersectConvexConvex(projected.astype(np.float32), frame)
    projected_area = abs(cv2.contourArea(projected.astype(np.float32)))
    if inter is None or area <= 0 or projected_area <= 0:
        return 0.0, 0.0, (0, 0, 0, 0)
    pts = inter.reshape(-1, 2)
    x0, y0 = (max(0, math.floor(v + 1e-6)) for v in pts.min(axis=0))
    x1, y1 = min(cand_w, math.ceil(pts[:, 0].max() - 1e-6)), min(cand_h, math.ceil(pts[:, 1].max() - 1e-6))
    x, y, w, h = int(x0), int(y0), int(max(0, x1 - x0)), int(max(0, y1 - y0))
    return float(min(1.0, area / projected_area)), float(min(1.0, area / (cand_w * cand_h))), (x, y, w, h)


def aligned_similarity(fp: WorkFingerprint, cand: Thumbnailed, t: np.ndarray) -> float:
    """How alike the work and the candidate look where ``t`` says one shows the other.

    The work's thumbnail is warped onto the candidate's (or the reverse, whichever frame
    sees the shared part larger), the one not warped is brought to the resolution the warped
    one had (:func:`_at_resolution`), both are blurred slightly, and the normalised
    cross-correlation is measured in a grid of blocks; the median over textured blocks is
    returned (-1..1). Overlaid text or an emoji spoils a few blocks, not the median.
    """
    pair = aligned_pair(fp, cand, t)
    if pair is None:
        return -1.0
    return _pair_ncc(*pair)


#: Fine detail (what is left of a thumbnail once its smooth shading is taken away) weaker than
#: this, in grey levels RMS, is rounding and compression noise: a flat picture, or one smooth
#: throughout, has no detail to compare.
DETAIL_MIN_LEVEL = 0.5
#: The smooth shading taken away: a Gaussian blur of this share of the thumbnail's longer side.
DETAIL_SHADING = 1 / 32


def detail_similarity(fp: WorkFingerprint, cand: Thumbnailed, t: np.ndarray) -> float | None:
    """How alike the fine detail of the work and the candidate is where ``t`` says one shows
    the other: the correlation, over the whole shared part, of what is left of each aligned
    thumbnail once its smooth shading (a blur of ``DETAIL_SHADING`` of its side, taken over
    the shared part only) is taken away. Two smooth skies correlate block by block whatever
    they show (:func:`aligned_similarity` sees two ramps); their detail (a sun's rim, a faint
    arc, banding) does not, unless one is a copy of the other. None when they share too little
    or either side's detail is under ``DETAIL_MIN_LEVEL`` (a flat or purely smooth picture)."""
    pair = aligned_pair(fp, cand, t)
    if pair is None:
        return None
    a, b, mask, magnification = pair
    b = _at_resolution(b, magnification)
    inside = mask.astype(np.float32)
    sigma = max(2.0, max(mask.shape) * DETAIL_SHADING)
    weight = np.maximum(cv2.GaussianBlur(inside, (0, 0), sigma), 1e-3)
    # within two blurs of the shared part's edge the shading is taken from one side only and
    # misses a ramp's slope: two skies shaded alike would correlate there, whatever they show
    band = 2 * math.ceil(2 * sigma) + 1
    kernel = np.ones((band, band), np.uint8)
    inner = cv2.erode(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    if inner.sum() < 64:
        return None
    residuals = []
    for picture in (a, b):
        fine = cv2.GaussianBlur(picture.astype(np.float32), (0, 0), 1.0)
        shading = cv2.GaussianBlur(fine * inside, (0, 0), sigma) / weight
        r = (fine - shading)[inner]
        r -= r.mean()
        level = float(np.sqrt(np.mean(r * r)))
        if level < DETAIL_MIN_LEVEL:
            return None
        residuals.append(r / level)
    return float(np.mean(residuals[0] * residuals[1]))


def _pair_ncc(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray, magnification: float, *, only_mask: bool = False
) -> float:
    """:func:`_blockwise_ncc` of an :func:`aligned_pair`, ``b`` brought to ``a``'s resolution."""
    return _blockwise_ncc(a, _at_resolution(b, magnification), mask, only_mask=only_mask)


#: Chroma (CIELAB a*b* as OpenCV scales them for 8 bits) from which a pixel counts as
#: saturated for the hue check: sepia and other tints stay under 26, clip-art colours reach 60-100.
HUE_MIN_CHROMA = 40.0
#: Saturated pixels both pictures must share (in the candidate's colour thumbnail) to judge hues.
HUE_MIN_PIXELS = 32
#: Hues further apart than this (cosine of 60 degrees) disagree.
_HUE_AGREE_COS = 0.5


def hue_disagreement(
    fp: WorkFingerprint, cand: CandidateFingerprint, t: np.ndarray, *, inverted: bool = False
) -> float | None:
    """Where the work (mapped by ``t``, work pixels -> candidate pixels) and the candidate are
    both saturated, the share of pixels whose hues differ by more than 60 degrees; None when
    either picture has no colour thumbnail (grey, or fingerprinted before they were kept) or
    they share fewer than :data:`HUE_MIN_PIXELS` saturated pixels. ``inverted``: the candidate
    is a negative, so the work's hues are turned round first."""
    wc, cc = fp.chroma, cand.chroma
    if wc is None or cc is None:
        return None
    to_cand = _between_thumbnails(t, wc.shape[1] / fp.width, cc.shape[1] / cand.width)
    size = (cc.shape[1], cc.shape[0])
    work = cv2.warpAffine(wc.astype(np.float32), to_cand, size, flags=cv2.INTER_LINEAR)
    warped_ones = cv2.warpAffine(np.full(wc.shape[:2], 255, np.uint8), to_cand, size, flags=cv2.INTER_NEAREST)
    inside: np.ndarray = cv2.erode(warped_ones, np.ones((3, 3), np.uint8)) > 0
    if inverted:
        work = -work
    seen = cc.astype(np.float32)
    norm_w = np.hypot(work[..., 0], work[..., 1])
    norm_c = np.hypot(seen[..., 0], seen[..., 1])
    both = inside & (norm_w >= HUE_MIN_CHROMA) & (norm_c >= HUE_MIN_CHROMA)
    if int(both.sum()) < HUE_MIN_PIXELS:
        return None
    cos = (work[..., 0] * seen[..., 0] + work[..., 1] * seen[..., 1])[both] / (norm_w * norm_c)[both]
    return float((cos < _HUE_AGREE_COS).mean())


def _thumb_transform(fp: WorkFingerprint, cand: Thumbnailed, t: np.ndarray) -> np.ndarray:
    """``t`` (work picture -> candidate picture) as a map from the work's thumbnail pixels to
    the candidate's, for OpenCV's warp."""
    return _between_thumbnails(t, fp.thumb.shape[1] / fp.width, cand.thumb.shape[1] / cand.width)


def _between_thumbnails(t: np.ndarray, sw: float, sc: float) -> np.ndarray:
    """``t`` (work picture -> candidate picture) between thumbnails made at scales ``sw`` (the
    work's) and ``sc`` (the candidate's), for OpenCV's warp."""
    # ``t`` maps picture positions (pixel i spans [i, i + 1)); OpenCV's warp indexes pixel
    # centres: thumbnail pixel j is position (j + 0.5) / s. Without the half-pixel terms a
    # mirror or a half turn lands a whole thumbnail pixel off (fine stripes then disagree).
    return compose(
        np.array([[sc, 0, -0.5], [0, sc, -0.5]]),
        compose(t, np.array([[1 / sw, 0, 0.5 / sw], [0, 1 / sw, 0.5 / sw]])),
    )


def explained_away(
    matches: Sequence[Match], cand: CandidateFingerprint, fps: dict[str, WorkFingerprint]
) -> list[Match]:
    """``matches`` (best first) without those another, better match explains.

    Two registered works can show the same part of a candidate: two versions of one drawing
    (its outline and its coloured original), a picture and its own detail, two photographs
    of one sky. Where one of them is the candidate and the other only resembles it, the
    first work's pixels are plainly more alike there than the second's, and the second match
    says nothing the first does not: it is dropped (``EXPLAINED_SHARE``, ``EXPLAINED_MARGIN``).
    A work pasted onto another (a collage, a photo laid over a registered background) is
    kept: where it is pasted, the background work's pixels are not alike at all."""
    if len(matches) < 2 or cand.thumb.size == 0:
        return list(matches)
    # each work warped once (None: a work without a thumbnail, which explains nothing)
    views = [_on_candidate(fps[m.work_id], cand, m) if fps[m.work_id].thumb.size else None for m in matches]
    kept: list[int] = []
    for i, view in enumerate(views):
        betters = (views[k] for k in kept)
        if view is None or not any(b is not None and _explains(b, view, cand) for b in betters):
            kept.append(i)
    return [matches[i] for i in kept]


@dataclass(frozen=True, eq=False)
class _OnCandidate:
    """A match's work warped onto the candidate's thumbnail: its pixels, where it lies (eroded
    off its border), how much the warp enlarged it, and the match."""

    work: np.ndarray
    footprint: np.ndarray
    magnified: float
    match: Match


def _on_candidate(fp: WorkFingerprint, cand: CandidateFingerprint, match: Match) -> _OnCandidate:
    size = (cand.thumb.shape[1], cand.thumb.shape[0])
    to_cand = _thumb_transform(fp, cand, match.transform)
    ones = np.full(fp.thumb.shape, 255, np.uint8)
    footprint = cv2.warpAffine(ones, to_cand, size, flags=cv2.INTER_NEAREST)
    return _OnCandidate(
        cv2.warpAffine(fp.thumb, to_cand, size, flags=cv2.INTER_AREA),
        cv2.erode(footprint, np.ones((5, 5), np.uint8)) > 0,
        math.sqrt(abs(float(np.linalg.det(to_cand[:, :2])))),
        match,
    )


def _explains(better: _OnCandidate, match: _OnCandidate, cand: CandidateFingerprint) -> bool:
    """Whether ``better``'s work explains the part of the candidate ``match``'s work shows:
    both compared with the candidate where ``match``'s work lies."""
    shared = better.footprint & match.footprint
    if shared.sum() < 64 or shared.sum() < EXPLAINED_SHARE * match.footprint.sum():
        return False
    # no finer than the coarser of the two warped works
    seen = _at_resolution(cand.thumb, max(1.0, better.magnified, match.magnified))
    better_ncc, own_ncc = (
        _blockwise_ncc(view.work, in_work_tones(seen, view.match), shared) for view in (better, match)
    )
    return better_ncc >= own_ncc + EXPLAINED_MARGIN


def aligned_pair(
    fp: WorkFingerprint, cand: Thumbnailed, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """The two thumbnails in one frame (the one that sees the shared part larger: ``a`` is
    warped into it, ``b`` is its own), the mask of the shared part, eroded off its border, and
    how much the warp enlarged ``a``; None when they share under 64 pixels."""
    wt, ct = fp.thumb, cand.thumb
    to_cand = _thumb_transform(fp, cand, t)
    ones_w = np.full(wt.shape, 255, np.uint8)
    into_cand = cv2.warpAffine(ones_w, to_cand, (ct.shape[1], ct.shape[0]), flags=cv2.INTER_NEAREST)
    area_in_cand = int((into_cand > 0).sum())
    inv = cv2.invertAffineTransform(to_cand)
    ones_c = np.full(ct.shape, 255, np.uint8)
    into_work = cv2.warpAffine(ones_c, inv, (wt.shape[1], wt.shape[0]), flags=cv2.INTER_NEAREST)
    area_in_work = int((into_work > 0).sum())
    if area_in_cand >= area_in_work:
        a = cv2.warpAffine(wt, to_cand, (ct.shape[1], ct.shape[0]), flags=cv2.INTER_AREA)
        b, mask, magnified = ct, into_cand, to_cand
    else:
        a = cv2.warpAffine(ct, inv, (wt.shape[1], wt.shape[0]), flags=cv2.INTER_AREA)
        b, mask, magnified = wt, into_work, inv
    shared = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0
    if shared.sum() < 64:
        return None
    return a, b, shared, math.sqrt(abs(float(np.linalg.det(magnified[:, :2]))))


def fill_mask(gray: np.ndarray, *, not_level: float | None = None) -> np.ndarray:
    """The flat areas of one level that touch the border of a picture, with the JPEG ringing
    along their edge and the ``FILL_EDGE`` pixels beyond it: what a round crop, a letterbox, a
    caption band or a page leaves around or over what it frames (bool mask). ``not_level``:
    fills of this level (within ``OCCLUSION_DIFFERENCE``) are left out, with their edges."""
    kernel = np.ones((3, 3), np.uint8)
    flat = (cv2.dilate(gray, kernel) - cv2.erode(gray, kernel)) <= FILL_RANGE
    count, labels = cv2.connectedComponents(flat.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros(gray.shape, bool)
    keep = np.zeros(count, bool)
    keep[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    keep[0] = False  # the label of the pixels that are not flat
    # one level throughout: a sky or a shadow is flat pixel by pixel but drifts across
    order = np.argsort(labels, axis=None, kind="stable")
    sorted_labels = labels.ravel()[order]
    values = gray.ravel()[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    spread = np.maximum.reduceat(values, starts).astype(np.int16) - np.minimum.reduceat(values, starts)
    keep[sorted_labels[starts]] &= spread <= FILL_LEVELS
    if not_level is not None:
        levels = np.zeros(count, np.int16)
        levels[sorted_labels[starts]] = np.minimum.reduceat(values, starts) + spread // 2
        keep &= np.abs(levels - not_level) > OCCLUSION_DIFFERENCE
    fill = keep[labels].astype(np.uint8)
    # JPEG rings along a fill's edge (a white corner reads 249-255 within a block of the edge):
    # not flat pixel by pixel, yet the fill. The largest fills grow over the pixels of their
    # level next to them, as far as a ring reaches; the picture's own edge stops the growth.
    sizes = np.bincount(labels.ravel(), minlength=count)
    kept = np.flatnonzero(keep)
    wide = gray.astype(np.int16)
    for label in kept[np.argsort(-sizes[kept], kind="stable")][:FILL_GROWN]:
        region = (labels == label).astype(np.uint8)
        level = int(np.median(gray[region > 0]))
        of_level = (np.abs(wide - level) <= FILL_LEVELS).astype(np.uint8)
        for _ in range(FILL_GROW_STEPS):
            grown: np.ndarray = cv2.dilate(region, kernel)
            region = grown & of_level | region
        fill |= region
    # and the pixels beyond its edge, where the fill and the picture blend
    edge = 2 * FILL_EDGE + 1
    return cv2.dilate(fill, np.ones((edge, edge), np.uint8)) > 0


def occlusion(
    fp: WorkFingerprint,
    cand: Thumbnailed,
    t: np.ndarray,
    pair: tuple[np.ndarray, np.ndarray, np.ndarray, float],
) -> np.ndarray:
    """Pixels of an :func:`aligned_pair`'s frame where the candidate shows a border-touching flat
    fill (:func:`fill_mask`) and the work something else: the work is masked off there."""
    a, b, shared, _ = pair
    # A fill of the work's own background level is the work's background (a drawing on white,
    # shown on white), not a mask: where the work shows more, the two disagree.
    background = plain_background(fp.thumb)
    fill = fill_mask(cand.thumb, not_level=background)
    if background is not None:  # nor are the blended pixels of other fills at that level
        fill &= np.abs(cand.thumb.astype(np.int16) - background) > OCCLUSION_DIFFERENCE
    mask: np.ndarray = fill.astype(np.uint8) * 255
    if b is not cand.thumb:  # the pair is in the work's frame: bring the fill there
        inv = cv2.invertAffineTransform(_thumb_transform(fp, cand, t))
        mask = cv2.warpAffine(mask, inv, (b.shape[1], b.shape[0]), flags=cv2.INTER_NEAREST)
    differ = np.abs(a.astype(np.int16) - b.astype(np.int16)) > OCCLUSION_DIFFERENCE
    return (mask > 0) & differ & shared


def plain_background(gray: np.ndarray) -> float | None:
    """The level of a picture's plain background, when its outer ring is mostly of one level
    (a drawing on white, a disk on black), else None."""
    ring = np.concatenate([gray[:2].ravel(), gray[-2:].ravel(), gray[:, :2].ravel(), gray[:, -2:].ravel()])
    level = float(np.median(ring))
    if np.mean(np.abs(ring.astype(np.float32) - level) <= FILL_LEVELS) < PLAIN_BACKGROUND_SHARE:
        return None
    return level


def _at_resolution(img: np.ndarray, magnification: float) -> np.ndarray:
    """``img`` as it looks sampled ``magnification`` times coarser and enlarged back: the
    detail the other picture of a pair lost when it was warped up to this frame. A work
    shown small in a page (or a small piece of a work, shown large) is compared with the
    other picture at the resolution both have, not with detail only one of them holds."""
    if magnification < 1.25:
        return img
    h, w = img.shape[:2]
    coarse = (max(1, round(w / magnification)), max(1, round(h / magnification)))
    small = cv2.resize(img, coarse, interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def edge_agreement(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """How well the strong edges of two aligned pictures are found in each other (0..1).

    Each picture's strong edges are its strongest gradients inside ``mask`` (its top decile,
    and at least ``EDGE_STRONG_GRADIENT``); a strong edge is found in the other picture when
    that one has an edge of at least half its own strong level within two pixels. The score is the mean
    of the two shares found. A copy keeps its edges where they were (JPEG, resampling and
    tone changes soften them, hence the weak level on the other side); two drawings that
    merely share a colour and an outline disagree on every line inside it.
    """
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if inner.sum() < 64:
        return 0.0
    magnitudes = [_gradient(x) for x in (a, b)]
    levels = [max(float(np.percentile(m[inner], 90)), EDGE_STRONG_GRADIENT) for m in magnitudes]
    shares = []
    for mine, theirs in ((0, 1), (1, 0)):
        strong = (magnitudes[mine] > levels[mine]) & inner
        count = int(strong.sum())
        if count == 0:
            return 0.0
        edges = ((magnitudes[theirs] > EDGE_WEAK_SHARE * levels[theirs]) & inner).astype(np.uint8)
        near = cv2.dilate(edges, np.ones((5, 5), np.uint8)) > 0
        shares.append(float((strong & near).sum()) / count)
    return sum(shares) / 2


def _gradient(gray: np.ndarray) -> np.ndarray:
    g = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
    return cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))


def _blockwise_ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray, *, only_mask: bool = False) -> float:
    """``only_mask``: blur each picture with its pixels inside ``mask`` only (a normalised
    convolution), so that a masked-off fill (a white corner around a round avatar) does not
    bleed into the pixels next to it."""
    if only_mask:
        weight = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)
        inside = np.maximum(weight, 1e-3)
        a = cv2.GaussianBlur(np.where(mask, a, 0).astype(np.float32), (0, 0), 1.0) / inside
        b = cv2.GaussianBlur(np.where(mask, b, 0).astype(np.float32), (0, 0), 1.0) / inside
    else:
        a = cv2.GaussianBlur(a.astype(np.float32), (0, 0), 1.0)
        b = cv2.GaussianBlur(b.astype(np.float32), (0, 0), 1.0)
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    h, w = y1 - y0, x1 - x0
    n = int(max(1, min(6, round(math.sqrt(mask.sum() / 400)))))
    scores, weights = [], []
    for by in range(n):
        for bx in range(n):
            sl = (
                slice(y0 + by * h // n, y0 + (by + 1) * h // n),
                slice(x0 + bx * w // n, x0 + (bx + 1) * w // n),
            )
            m = mask[sl]
            if m.sum() < 0.5 * m.size or m.sum() < 16:
                continue
            va, vb = a[sl][m], b[sl][m]
            va, vb = va - va.mean(), vb - vb.mean()
            da, db = float(np.sqrt((va * va).sum())), float(np.sqrt((vb * vb).sum()))
            root = math.sqrt(va.size)
            if da < FLAT_STD * root and db < FLAT_STD * root:
                continue  # flat in both: correlation says nothing
            if min(da, db) < FLAT_STD * root:
                # flat in one, clearly textured in the other: the pictures disagree here
                # (an overlay on a flat area also lands here; the median absorbs a few)
                if max(da, db) >= TEXTURED_STD * root:
                    scores.append(0.0)
                    weights.append(1)
                continue
            scores.append(float((va * vb).sum() / (da * db)))
            weights.append(1)
    if not scores:
        va, vb = a[mask] - a[mask].mean(), b[mask] - b[mask].mean()
        if float(np.abs(va).mean()) < 2 and float(np.abs(vb).mean()) < 2:
            # both flat: alike only if the levels agree
            return 1.0 - min(1.0, abs(float(a[mask].mean()) - float(b[mask].mean())) / 32.0)
        den = float(np.sqrt((va * va).sum() * (vb * vb).sum()))
        return float((va * vb).sum() / den) if den > 0 else -1.0
    return float(np.median(scores))
