"""Adapters from the other features' stores to the evidence ports.

* :class:`DossierEvidence` — the authorship dossier (``monitor.dossier``) as a
  :class:`~monitor.evidence.DossierSource`: entries as JSON, the chain re-verified at export,
  every RFC 3161 token, and the blobs the entries refer to (generation-log items, raw
  metadata) as records.
* :class:`AttributionEvidence` — the published copy and visible mark recorded at registration
  (``monitor.attribution``) as a :class:`~monitor.evidence.PublishedSource`.

Both only read; neither knows SQL (they take the stores' protocols).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from monitor.blobs import BlobStore
from monitor.errors import RegistryError
from monitor.evidence import Box, DossierExport, PublishedCopy

if TYPE_CHECKING:
    from monitor.attribution import AttributionStore
    from monitor.dossier import DossierStore
    from monitor.watermark.copies import CopyRegistry

__all__ = ["AttributionEvidence", "DossierEvidence"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: Records larger than this in total are listed in the dossier but not copied into the bundle.
MAX_RECORD_BYTES = 256 * 1024 * 1024


def _blob_refs(value: Any, name: str = "record") -> Iterator[tuple[str, str]]:
    """``(name, sha256)`` of every blob an entry payload refers to (``{"sha256": ..., ...}``)."""
    if isinstance(value, dict):
        sha = value.get("sha256")
        if isinstance(sha, str) and _HEX64.match(sha) and ("size" in value or "path" in value):
            yield str(value.get("path") or name), sha
        for key, inner in sorted(value.items(), key=lambda kv: str(kv[0])):
            if key != "sha256":
                yield from _blob_refs(inner, str(key))
    elif isinstance(value, list):
        for inner in value:
            yield from _blob_refs(inner, name)


class DossierEvidence:
    def __init__(self, store: DossierStore, blobs: BlobStore, *, trusted_tsa: Sequence[bytes] = ()) -> None:
        self.store = store
        self.blobs = blobs
        self.trusted_tsa = tuple(trusted_tsa)

    def dossier(self, work_id: str) -> DossierExport | None:
        from monitor.dossier import verify_chain

        entries = self.store.entries(work_id)
        if not entries:
            return None
        report = verify_chain(work_id, entries, trusted_tsa=self.trusted_tsa)
        tokens = [
            (f"entry-{e.seq:03d}", e.timestamp.token)
            for e in entries
            if e.timestamp is not None and e.timestamp.token
        ]
        records: list[tuple[str, bytes]] = []
        seen: set[str] = set()
        total = 0
        for entry in entries:
            for name, sha in _blob_refs(entry.payload):
                if sha in seen:
                    continue
                seen.add(sha)
                try:
                    data = self.blobs.get(sha)
                except RegistryError:
                    continue
                if total + len(data) > MAX_RECORD_BYTES:
                    continue
                total += len(data)
                records.append((f"{entry.seq:03d}-{name}", data))
        return DossierExport(
            entries=[e.to_json() for e in entries],
            verification=report.to_json(),
            tokens=tokens,
            records=records,
        )


class AttributionEvidence:
    """The published copy recorded by the visible-mark step and, when ``copies`` is given, the
    invisibly watermarked copy of each channel (``monitor.watermark``), with its copy id."""

    def __init__(self, store: AttributionStore, blobs: BlobStore, copies: CopyRegistry | None = None) -> None:
        self.store = store
        self.blobs = blobs
        self.copies = copies

    def published_copies(self, work_id: str) -> list[PublishedCopy]:
        out: list[PublishedCopy] = []
        record = self.store.get_attribution(work_id)
        if record is not None:
            try:
                data = self.blobs.get(record.published_sha256)
                stamped = record.mark is not None and record.mark.source == "stamped"
                out.append(PublishedCopy("visibly-marked" if stamped else "published", data))
            except RegistryError:
                pass
        for copy in self.copies.for_work(work_id) if self.copies is not None else []:
            try:
                data = self.blobs.get(copy.marked_sha256)
            except RegistryError:
                continue
            out.append(
                PublishedCopy(f"watermarked-{copy.channel}", data, channel=copy.channel, copy_id=copy.id)
            )
        return out

    def visible_mark(self, work_id: str) -> Box | None:
        record = self.store.get_attribution(work_id)
        if record is None or record.mark is None:
            return None
        return record.mark.box
