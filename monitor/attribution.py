"""Attribution: the owner's visible mark and copyright metadata, and whether copies kept them.

At registration (:class:`VisibleMarkStep`, after the dossier step and before the invisible
watermark):

* ``--add-visible-mark TEXT [--corner br|bl|tr|tl]`` stamps the text on the published copy
  (semi-opaque white with a dark outline, so it reads on any background; its height a
  fixed share of the shorter side) keeping the file's metadata, and records its box;
* ``--visible-mark x,y,w,h`` records where a mark already is on the published copy;
* in both cases a patch of the published copy around the box is kept in the blob store
  (the mark and a ring of its surroundings), and the copyright management information (CMI)
  the published copy carries is remembered (EXIF/XMP/IPTC/PNG fields, C2PA manifest).

At scan time (:class:`AttributionInspector`) the match's transform (work pixels → candidate
pixels) maps the box into the candidate:

* ``visible_mark_cropped``: the box lies (mostly) outside the candidate while enough of the
  rest of the work is there;
* ``visible_mark_removed``: the box is inside, the surroundings ring still matches the
  stored patch, but the mark itself does not (painted over, inpainted, blurred, cloned);
* ``metadata_stripped``: CMI fields of the published copy are missing from the candidate
  (``details["metadata_removed"]`` names them).

Works without a recorded mark or CMI never get these flags.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from monitor.errors import ImageError
from monitor.images import decode_full_pixels, estimate_jpeg_quality
from monitor.matching import in_work_tones
from monitor.provenance import read_provenance

if TYPE_CHECKING:
    from monitor.blobs import BlobStore
    from monitor.dossier import DossierStore, Timestamper
    from monitor.matching import Match
    from monitor.services import CandidateContext, Registration
    from monitor.settings import DossierSettings, Settings
    from monitor.works import Work

CORNERS = ("br", "bl", "tr", "tl")
VISIBLE_MARK_CROPPED = "visible_mark_cropped"
VISIBLE_MARK_REMOVED = "visible_mark_removed"
METADATA_STRIPPED = "metadata_stripped"
_ORIENTATION_TAG = 0x0112
#: A candidate whose mark box matches the unmarked original this well copies the original.
UNMARKED_ORIGINAL_SIMILARITY = 0.9


# ---------------------------------------------------------------------------- model


@dataclass(frozen=True)
class VisibleMark:
    """Where the owner's mark is on the published copy (its pixels = the work's pixels)."""

    box: tuple[int, int, int, int]
    source: str  # "stamped" | "declared"
    #: The region around ``box`` kept as a PNG patch (``patch_sha256`` in the blob store).
    context: tuple[int, int, int, int]
    patch_sha256: str
    text: str | None = None
    corner: str | None = None
    #: For a stamped mark: the same region of the unmarked original, to tell a copy of the
    #: original (never marked) from a copy whose mark was removed.
    original_patch_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "box": list(self.box),
            "source": self.source,
            "context": list(self.context),
            "patch_sha256": self.patch_sha256,
            "original_patch_sha256": self.original_patch_sha256,
            "text": self.text,
            "corner": self.corner,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> VisibleMark:
        box = tuple(int(v) for v in body["box"])
        context = tuple(int(v) for v in body["context"])
        return cls(
            box=(box[0], box[1], box[2], box[3]),
            source=str(body["source"]),
            context=(context[0], context[1], context[2], context[3]),
            patch_sha256=str(body["patch_sha256"]),
            text=body.get("text"),
            corner=body.get("corner"),
            original_patch_sha256=body.get("original_patch_sha256"),
        )


@dataclass(frozen=True)
class Attribution:
    """What the owner's published copy of a work carried."""

    work_id: str
    published_sha256: str
    width: int
    height: int
    mark: VisibleMark | None
    cmi: dict[str, str] = field(default_factory=dict)
    updated_at: datetime | None = None


class AttributionStore(Protocol):
    def get_attribution(self, work_id: str) -> Attribution | None: ...

    def put_attribution(self, attribution: Attribution) -> None:
        """Store (or replace) the work's attribution record."""
        ...


# ---------------------------------------------------------------------------- stamping


@dataclass(frozen=True)
class Stamped:
    data: bytes
    box: tuple[int, int, int, int]
    suffix: str


def stamp_text(
    data: bytes, text: str, corner: str = "br", *, font_fraction: float = 0.045, opacity: float = 0.7
) -> Stamped:
    """``data`` with ``text`` stamped in a corner, in the same format when Pillow can write it
    (else PNG), keeping EXIF (orientation reset: the pixels are stamped upright), XMP, ICC,
    IPTC and PNG text. A C2PA manifest is not carried over: it would no longer verify."""
    if corner not in CORNERS:
        raise ImageError(f"unknown corner {corner!r}: use br, bl, tr or tl")
    if not text.strip():
        raise ImageError("the visible mark text is empty")
    pixels = decode_full_pixels(data)
    h, w = pixels.shape[:2]
    size = max(8, round(font_fraction * min(w, h)))
    margin = max(3, round(0.025 * min(w, h)))
    canvas = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    while True:
        font = ImageFont.load_default(size=size)
        stroke = max(1, round(size / 12))
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
        tw, th = right - left, bottom - top
        if (tw + 2 * margin <= w and th + 2 * margin <= h) or size <= 6:
            break
        size = max(6, int(size * 0.85))
    if tw + 2 * margin > w or th + 2 * margin > h:
        raise ImageError(f"the mark {text!r} does not fit on a {w}x{h} image")
    x = margin if corner in ("bl", "tl") else w - margin - tw
    y = margin if corner in ("tl", "tr") else h - margin - th
    alpha = round(255 * opacity)
    draw.text(
        (x - left, y - top),
        text,
        font=font,
        fill=(255, 255, 255, alpha),
        stroke_width=stroke,
        stroke_fill=(0, 0, 0, alpha),
    )
    base = Image.fromarray(pixels).convert("RGBA")
    out = Image.alpha_composite(base, canvas).convert("RGB")
    pad = max(1, stroke)
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(w, x + tw + pad), min(h, y + th + pad)
    encoded, suffix = encode_like(out, data)
    return Stamped(encoded, (x0, y0, x1 - x0, y1 - y0), suffix)


def encode_like(img: Image.Image, original: bytes) -> tuple[bytes, str]:
    """Encode ``img`` as the original was (format, quality) with its metadata."""
    with Image.open(io.BytesIO(original)) as src:
        fmt = (src.format or "PNG").upper()
        info = dict(src.info)
        exif = src.getexif()
        quality = estimate_jpeg_quality(src) if fmt in ("JPEG", "MPO") else None
        photoshop = info.get("photoshop")
        text = dict(getattr(src, "text", {}) or {}) if fmt == "PNG" else {}
    exif_bytes = b""
    if exif:
        if _ORIENTATION_TAG in exif:
            exif[_ORIENTATION_TAG] = 1
        exif_bytes = exif.tobytes()
    params: dict[str, Any] = {}
    if info.get("icc_profile"):
        params["icc_profile"] = info["icc_profile"]
    if exif_bytes:
        params["exif"] = exif_bytes
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
    buf = io.BytesIO()
    if fmt in ("JPEG", "MPO"):
        if xmp:
            params["xmp"] = xmp if isinstance(xmp, bytes) else str(xmp).encode()
        if isinstance(info.get("comment"), bytes) and info["comment"]:
            params["comment"] = info["comment"]
        img.save(buf, "JPEG", quality=max(90, quality or 95), **params)
        data = buf.getvalue()
        if isinstance(photoshop, dict) and photoshop:
            data = insert_app13(data, photoshop)
        return data, ".jpg"
    if fmt == "PNG":
        from PIL import PngImagePlugin

        pnginfo = PngImagePlugin.PngInfo()
        for key, value in text.items():
            if isinstance(value, PngImagePlugin.iTXt) or key.startswith("XML:com.adobe.xmp"):
                pnginfo.add_itxt(key, str(value))
            else:
                pnginfo.add_text(key, str(value))
        img.save(buf, "PNG", pnginfo=pnginfo, **params)
        return buf.getvalue(), ".png"
    if fmt == "WEBP":
        if xmp:
            params["xmp"] = xmp if isinstance(xmp, bytes) else str(xmp).encode()
        img.save(buf, "WEBP", quality=95, **params)
        return buf.getvalue(), ".webp"
    if fmt == "TIFF":
        img.save(buf, "TIFF", compression="tiff_lzw", **params)
        return buf.getvalue(), ".tif"
    img.save(buf, "PNG", **params)
    return buf.getvalue(), ".png"


def insert_app13(jpeg: bytes, resources: dict[int, bytes]) -> bytes:
    """A JPEG with an APP13 Photoshop segment holding ``resources`` (e.g. 0x0404: IPTC IIM),
    placed after the leading APPn segments."""
    body = b"Photoshop 3.0\x00"
    for rid, value in sorted(resources.items()):
        if not isinstance(value, bytes):
            continue
        chunk = b"8BIM" + int(rid).to_bytes(2, "big") + b"\x00\x00" + len(value).to_bytes(4, "big") + value
        body += chunk + (b"\x00" if len(value) % 2 else b"")
    if len(body) + 2 > 0xFFFF:
        return jpeg  # too large for one segment: leave it out rather than corrupt the file
    segment = b"\xff\xed" + (len(body) + 2).to_bytes(2, "big") + body
    pos = 2
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF and 0xE0 <= jpeg[pos + 1] <= 0xEF:
        pos += 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
    return jpeg[:pos] + segment + jpeg[pos:]


def context_box(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    """The box grown by half its larger side (at least 12 px) each way, inside the image."""
    x, y, w, h = box
    grow = max(12, max(w, h) // 2)
    x0, y0 = max(0, x - grow), max(0, y - grow)
    x1, y1 = min(width, x + w + grow), min(height, y + h + grow)
    return x0, y0, x1 - x0, y1 - y0


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, "PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------- registration step


class VisibleMarkStep:
    """Registration step 2: stamp or record the visible mark, remember the published copy's
    CMI, and add a ``published_copy`` dossier entry."""

    name = "visible_mark"

    def __init__(
        self,
        store: AttributionStore,
        blobs: BlobStore,
        settings: Settings,
        *,
        dossier: DossierStore | None = None,
        timestamper: Timestamper | None = None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.settings = settings
        self.dossier = dossier
        self.timestamper = timestamper

    def __call__(self, registration: Registration) -> None:
        opts = registration.options
        asked = opts.add_visible_mark is not None or opts.visible_mark is not None
        if not registration.created and not asked:
            return  # the same bytes again: keep what the first registration recorded
        published = registration.published
        box: tuple[int, int, int, int] | None = None
        source = corner = text = None
        suffix = Path(registration.path).suffix or ".png"
        if opts.add_visible_mark is not None:
            cfg = self.settings.dossier
            stamped = stamp_text(
                published,
                opts.add_visible_mark,
                opts.visible_mark_corner,
                font_fraction=cfg.mark_font_fraction,
                opacity=cfg.mark_opacity,
            )
            published, box, suffix = stamped.data, stamped.box, stamped.suffix
            registration.published = published
            source, corner, text = "stamped", opts.visible_mark_corner, opts.add_visible_mark
        elif opts.visible_mark is not None:
            box, source = opts.visible_mark, "declared"
        cmi = read_provenance(published).cmi()
        if box is None and not cmi:
            return
        pixels = decode_full_pixels(published)
        height, width = pixels.shape[:2]
        mark: VisibleMark | None = None
        if box is not None:
            x, y, w, h = box
            if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
                raise ImageError(
                    f"the visible mark box {x},{y},{w},{h} is not inside the {width}x{height} image"
                )
            ctx = context_box(box, width, height)
            cx, cy, cw, ch = ctx
            patch = self.blobs.put(_png(pixels[cy : cy + ch, cx : cx + cw]))
            original = None
            if source == "stamped":
                before = decode_full_pixels(registration.data)
                original = self.blobs.put(_png(before[cy : cy + ch, cx : cx + cw]))
            mark = VisibleMark(
                box, str(source), ctx, patch, text=text, corner=corner, original_patch_sha256=original
            )
        published_sha = self.blobs.put(published)
        self.store.put_attribution(Attribution(registration.work.id, published_sha, width, height, mark, cmi))
        if self.dossier is not None:
            from monitor.dossier import append_entry

            append_entry(
                self.dossier,
                registration.work.id,
                "published_copy",
                {
                    "published_sha256": published_sha,
                    "width": width,
                    "height": height,
                    "visible_mark": mark.to_json() if mark else None,
                    "cmi": cmi,
                },
                timestamper=self.timestamper,
            )
        if not asked:
            return
        registration.extra["visible_mark"] = {"box": list(box or ()), "source": source, "text": text}
        registration.extra["cmi"] = sorted(cmi)
        if opts.add_visible_mark is not None and not opts.watermark:
            src = Path(registration.path)
            folder = opts.out_dir or src.parent
            target = folder / f"{src.stem}.published{suffix}"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                target.write_bytes(published)
            except OSError as exc:
                raise ImageError(f"cannot write the marked copy to {target}: {exc.strerror or exc}") from exc
            registration.extra["published_path"] = str(target)


# ---------------------------------------------------------------------------- inspection


class AttributionInspector:
    """Scan-time check of a match against the work's recorded mark and CMI."""

    name = "attribution"

    def __init__(self, store: AttributionStore, blobs: BlobStore, settings: Settings) -> None:
        self.store = store
        self.blobs = blobs
        self.settings = settings.dossier

    def __call__(self, candidate: CandidateContext, work: Work, match: Match) -> None:
        record = self.store.get_attribution(work.id)
        if record is None:
            return
        if record.mark is not None:
            self._inspect_mark(record, candidate, match)
        if record.cmi:
            self._inspect_cmi(record, candidate, match)

    def _inspect_mark(self, record: Attribution, candidate: CandidateContext, match: Match) -> None:
        mark = record.mark
        assert mark is not None
        patch = self._gray_patch(mark.patch_sha256)
        original = self._gray_patch(mark.original_patch_sha256) if mark.original_patch_sha256 else None
        report = judge_mark(
            mark,
            patch,
            original,
            in_work_tones(candidate.image.gray(), match),
            candidate.image.scale,
            (candidate.image.width, candidate.image.height),
            match.transform,
            float(match.details.get("coverage_work", 1.0)),
            self.settings,
        )
        match.details["visible_mark"] = report
        flag = {"cropped": VISIBLE_MARK_CROPPED, "removed": VISIBLE_MARK_REMOVED}.get(report["verdict"])
        if flag and flag not in match.flags:
            match.flags.append(flag)

    def _gray_patch(self, sha256: str) -> np.ndarray:
        with Image.open(io.BytesIO(self.blobs.get(sha256))) as img:
            return np.asarray(img.convert("L"), dtype=np.float32)

    def _inspect_cmi(self, record: Attribution, candidate: CandidateContext, match: Match) -> None:
        found = read_provenance(candidate.data).cmi()
        removed = sorted(k for k in record.cmi if k not in found)
        changed = sorted(k for k in record.cmi if k in found and found[k] != record.cmi[k])
        match.details["metadata_registered"] = sorted(record.cmi)
        match.details["metadata_removed"] = removed
        if changed:
            match.details["metadata_changed"] = {
                k: {"registered": record.cmi[k], "found": found[k]} for k in changed
            }
        if removed and METADATA_STRIPPED not in match.flags:
            match.flags.append(METADATA_STRIPPED)


def judge_mark(
    mark: VisibleMark,
    patch: np.ndarray,
    original: np.ndarray | None,
    cand_gray: np.ndarray,
    cand_scale: float,
    cand_size: tuple[int, int],
    transform: np.ndarray,
    coverage_work: float,
    cfg: DossierSettings,
) -> dict[str, Any]:
    """Is the mark still in the candidate? ``patch`` is the stored gray context patch (work
    pixels), ``original`` the same region before a stamp (or None), ``cand_gray`` the
    candidate's working copy (``cand_scale`` of full size), ``transform`` work px → candidate
    full px."""
    t = np.asarray(transform, np.float64)
    x, y, w, h = mark.box
    corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)
    projected = corners @ t[:, :2].T + t[:, 2]
    if np.linalg.det(t[:, :2]) < 0:
        projected = projected[::-1]
    cw_full, ch_full = cand_size
    frame = np.array([[0, 0], [cw_full, 0], [cw_full, ch_full], [0, ch_full]], np.float32)
    area, inter = cv2.intersectConvexConvex(projected.astype(np.float32), frame)
    full_area = abs(cv2.contourArea(projected.astype(np.float32)))
    visible = float(min(1.0, area / full_area)) if full_area > 0 and inter is not None else 0.0
    x0, y0 = np.floor(projected.min(axis=0)).astype(int)
    x1, y1 = np.ceil(projected.max(axis=0)).astype(int)
    bx0, by0 = max(0, int(x0)), max(0, int(y0))
    bx1, by1 = min(cw_full, int(x1)), min(ch_full, int(y1))
    report: dict[str, Any] = {
        "box": list(mark.box),
        "box_in_candidate": [bx0, by0, max(0, bx1 - bx0), max(0, by1 - by0)] if visible > 0 else None,
        "visible_fraction": round(visible, 4),
        "mark_similarity": None,
        "surround_similarity": None,
    }
    if visible < cfg.mark_cropped_below:
        report["verdict"] = "cropped" if coverage_work >= cfg.mark_rest_coverage else "not_judged"
        return report
    scores = compare_patch(mark, patch, cand_gray, cand_scale, t)
    report.update(scores)
    mark_sim, ring_sim = scores["mark_similarity"], scores["surround_similarity"]
    unmarked_sim = None
    if original is not None and mark_sim is not None and mark_sim < cfg.mark_min_similarity:
        unmarked_sim = compare_patch(mark, original, cand_gray, cand_scale, t, textured_only=True)[
            "mark_similarity"
        ]
        report["original_similarity"] = unmarked_sim
    if mark_sim is None:
        report["verdict"] = "not_judged"  # the mark region has no texture to compare
    elif mark_sim >= cfg.mark_min_similarity:
        report["verdict"] = "present"
    elif unmarked_sim is not None and unmarked_sim >= UNMARKED_ORIGINAL_SIMILARITY:
        report["verdict"] = "unmarked_original"  # a copy of the original, which never had the mark
    elif ring_sim is not None and ring_sim >= cfg.surround_min_similarity:
        report["verdict"] = "removed"
    else:
        report["verdict"] = "unclear"  # the surroundings changed too: not a local removal
    return report


def compare_patch(
    mark: VisibleMark,
    patch: np.ndarray,
    cand_gray: np.ndarray,
    cand_scale: float,
    t: np.ndarray,
    *,
    textured_only: bool = False,
) -> dict[str, Any]:
    """Best normalised cross-correlations (over small shifts) of the mark box and of the
    ring around it, between the stored patch and the candidate warped onto it. With
    ``textured_only`` a flat reference box gives None (a flat area matches any smooth fill)."""
    to_cand = np.vstack([np.diag([cand_scale, cand_scale]) @ t, [0.0, 0.0, 1.0]])  # work -> cand working px
    scale = math.sqrt(abs(float(np.linalg.det(to_cand[:2, :2]))))
    r = min(1.0, scale)  # compare at the coarser of the two resolutions
    cx, cy, cw, ch = mark.context
    rw, rh = max(8, round(cw * r)), max(8, round(ch * r))
    ref = cv2.resize(patch, (rw, rh), interpolation=cv2.INTER_AREA) if (rw, rh) != (cw, ch) else patch
    k = max(2, round(3 * r))
    # candidate working px -> patch px (+k margin for the shift search)
    to_patch = np.array([[rw / cw, 0, k - cx * rw / cw], [0, rh / ch, k - cy * rh / ch], [0, 0, 1.0]])
    m = (to_patch @ np.linalg.inv(to_cand))[:2]
    src: np.ndarray = cand_gray.astype(np.float32)
    if scale > 1.5:
        src = cv2.GaussianBlur(src, (0, 0), 0.5 * scale)
    size = (rw + 2 * k, rh + 2 * k)
    warped = cv2.warpAffine(src, m, size, flags=cv2.INTER_LINEAR, borderValue=0)
    valid = cv2.warpAffine(np.ones_like(src), m, size, flags=cv2.INTER_NEAREST, borderValue=0)
    ref = cv2.GaussianBlur(ref.astype(np.float32), (0, 0), 1.0)
    warped = cv2.GaussianBlur(warped, (0, 0), 1.0)
    bx, by, bw, bh = mark.box
    box_mask = np.zeros((rh, rw), bool)
    mx0, my0 = round((bx - cx) * rw / cw), round((by - cy) * rh / ch)
    mx1, my1 = round((bx + bw - cx) * rw / cw), round((by + bh - cy) * rh / ch)
    box_mask[my0:my1, mx0:mx1] = True
    gap = max(1, round(2 * r))
    grown = cv2.dilate(box_mask.astype(np.uint8), np.ones((2 * gap + 1, 2 * gap + 1), np.uint8)) > 0
    ring_mask = ~grown
    best_mark: float | None = None
    best_ring: float | None = None
    best_edges: float | None = None
    ref_edges = _edge_energy(ref, box_mask)
    if textured_only and float(ref[box_mask].std()) < 3.0:
        return {"mark_similarity": None, "surround_similarity": None, "edge_ratio": None}
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            sub = warped[k + dy : k + dy + rh, k + dx : k + dx + rw]
            ok = valid[k + dy : k + dy + rh, k + dx : k + dx + rw] > 0
            s_mark = _masked_ncc(ref, sub, box_mask & ok)
            s_ring = _masked_ncc(ref, sub, ring_mask & ok)
            if s_mark is not None and (best_mark is None or s_mark > best_mark):
                best_mark = s_mark
                if ref_edges > 0:
                    best_edges = _edge_energy(sub, box_mask & ok) / ref_edges
            if s_ring is not None and (best_ring is None or s_ring > best_ring):
                best_ring = s_ring
    return {
        "mark_similarity": None if best_mark is None else round(best_mark, 4),
        "surround_similarity": None if best_ring is None else round(best_ring, 4),
        "edge_ratio": None if best_edges is None else round(best_edges, 4),
        "compared_at_scale": round(r, 4),
    }


def _masked_ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float | None:
    """Normalised cross-correlation over ``mask``; flat areas compare by mean level; None
    when too little is visible or the reference has no texture at all to speak of."""
    if mask.sum() < 24:
        return None
    va, vb = a[mask], b[mask]
    sa, sb = float(va.std()), float(vb.std())
    if sa < 3.0:
        if sb < 3.0:
            return 1.0 - min(1.0, abs(float(va.mean()) - float(vb.mean())) / 32.0)
        return 0.0
    if sb < 1e-6:
        return 0.0
    return float(((va - va.mean()) * (vb - vb.mean())).mean() / (sa * sb))


def _edge_energy(img: np.ndarray, mask: np.ndarray) -> float:
    if mask.sum() == 0:
        return 0.0
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.sqrt(gx * gx + gy * gy)[mask].mean())


def mark_json(mark: VisibleMark | None) -> str | None:
    return None if mark is None else json.dumps(mark.to_json(), sort_keys=True)
