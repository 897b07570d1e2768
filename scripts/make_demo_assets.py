"""Rebuild the demo's bundled images from the development corpus sample.

    python scripts/make_demo_assets.py [../shared/corpus/sample]

Works are copied as they are; the reuse cases are made from them (crop, recompression,
mirroring, a blog page) so the demo shows the monitor finding them. Licences are copied
into ``monitor/demo/data/manifest.csv``.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "monitor" / "demo" / "data"
WORKS = {
    "wesnoth-1.16-data__portraits__humans__thug.jpg": "thug.jpg",
    "pypi-scikit-learn__china.jpg": "temple.jpg",
    "stellarium-skyculture-art__egyptian_dendera__himmelskuh_sirius.jpg": "sky-cow.jpg",
}
UNRELATED = {"pypi-scikit-image__hubble_deep_field.jpg": "hubble.jpg"}


def save(img: Image.Image, path: Path, quality: int) -> None:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality, subsampling="4:2:0", optimize=True)
    path.write_bytes(buf.getvalue())


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "corpus" / "sample"
    with (src / "manifest.csv").open() as fh:
        rows = {Path(r["file"]).name: r for r in csv.DictReader(fh)}
    manifest = []
    names = dict(WORKS)
    names.update(UNRELATED)
    for original, local in names.items():
        if original not in rows:
            matches = [n for n in rows if n.startswith(original.split("__")[0])]
            raise SystemExit(f"{original} not in the corpus manifest; candidates: {matches[:5]}")
        row = rows[original]
        manifest.append(
            {
                "file": local,
                "source_file": original,
                "license": row["license"],
                "attribution": row.get("attribution", ""),
                "source_package": row["source_package"],
            }
        )
    for original, local in WORKS.items():
        (DATA / "works" / local).write_bytes((src / original).read_bytes())
    thug = Image.open(src / next(k for k, v in WORKS.items() if v == "thug.jpg")).convert("RGB")
    w, h = thug.size
    # the motivating case: the corner with the signature cropped away, recompressed, on a poem page
    save(thug.crop((0, 0, int(w * 0.8), int(h * 0.82))), DATA / "site" / "illustration.jpg", 70)
    save(Image.open(src / "pypi-scikit-image__hubble_deep_field.jpg"), DATA / "site" / "hubble.jpg", 80)
    temple = Image.open(src / "pypi-scikit-learn__china.jpg")
    save(
        ImageOps.mirror(temple).resize((temple.width // 2, temple.height // 2)),
        DATA / "site" / "temple-small.jpg",
        75,
    )
    with (DATA / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(manifest[0]))
        writer.writeheader()
        writer.writerows(manifest)


if __name__ == "__main__":
    main()
