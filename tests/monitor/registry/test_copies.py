"""``SqlCopyRegistry`` on SQLite and PostgreSQL: one copy per work and channel."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from monitor.errors import NotFound
from monitor.fingerprints import WorkFingerprint, fingerprint_work
from monitor.images import decode_image
from monitor.registry import SqlCopyRegistry, SqlWorkRegistry
from monitor.watermark import NewCopy
from monitor.works import NewWork, Work


@pytest.fixture(scope="module")
def fingerprint() -> WorkFingerprint:
    pixels = np.random.default_rng(7).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return fingerprint_work(decode_image(buf.getvalue()))


def add_work(registry: SqlWorkRegistry, fingerprint: WorkFingerprint, n: int) -> Work:
    work, _ = registry.add(
        NewWork(
            sha256=f"{n:064x}",
            pixel_sha256=f"{n:064x}",
            format="PNG",
            width=64,
            height=48,
            frames=1,
            size_bytes=1000,
        ),
        fingerprint,
    )
    return work


def new_copy(work_id: str, channel: str, copy_id: str, **overrides: object) -> NewCopy:
    values: dict[str, object] = {
        "id": copy_id,
        "work_id": work_id,
        "channel": channel,
        "base_sha256": "b" * 64,
        "marked_sha256": "m" * 64,
        "path": f"/out/x.{channel}.marked.jpg",
        "key_id": "0123456789abcdef",
        "strength": 0.85,
    }
    values.update(overrides)
    return NewCopy(**values)  # type: ignore[arg-type]


@pytest.fixture
def copies(registry: SqlWorkRegistry) -> SqlCopyRegistry:
    return SqlCopyRegistry(registry.engine)


def test_add_get_find_round_trip(
    registry: SqlWorkRegistry, copies: SqlCopyRegistry, fingerprint: WorkFingerprint
) -> None:
    work = add_work(registry, fingerprint, 1)
    stored, created = copies.add(new_copy(work.id, "site", "00000000000000a1"))
    assert created
    got = copies.get("00000000000000a1")
    assert got == stored
    assert (got.work_id, got.channel, got.strength, got.path) == (
        work.id,
        "site",
        0.85,
        "/out/x.site.marked.jpg",
    )
    assert got.created_at.tzinfo is not None
    assert copies.find(work.id, "site") == got
    assert copies.find(work.id, "social") is None


def test_the_same_work_and_channel_keep_their_first_copy_id(
    registry: SqlWorkRegistry, copies: SqlCopyRegistry, fingerprint: WorkFingerprint
) -> None:
    work = add_work(registry, fingerprint, 2)
    first, _ = copies.add(new_copy(work.id, "site", "00000000000000b1"))
    again, created = copies.add(new_copy(work.id, "site", "00000000000000b2"))
    assert not created and again.id == first.id == "00000000000000b1"
    _, created = copies.add(new_copy(work.id, "social", "00000000000000b3"))
    assert created
    assert [c.channel for c in copies.for_work(work.id)] == ["site", "social"]
    assert copies.for_work("nobody") == []


def test_concurrent_adds_of_one_channel_store_one_copy(
    registry: SqlWorkRegistry, copies: SqlCopyRegistry, fingerprint: WorkFingerprint
) -> None:
    work = add_work(registry, fingerprint, 3)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: copies.add(new_copy(work.id, "site", f"{i:016x}")), range(6)))
    assert len({c.id for c, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(copies.for_work(work.id)) == 1


def test_update_records_a_new_rendering(
    registry: SqlWorkRegistry, copies: SqlCopyRegistry, fingerprint: WorkFingerprint
) -> None:
    work = add_work(registry, fingerprint, 4)
    copies.add(new_copy(work.id, "site", "00000000000000c1"))
    got = copies.update(
        "00000000000000c1", base_sha256="c" * 64, marked_sha256="d" * 64, path=None, strength=1.0
    )
    assert (got.base_sha256, got.marked_sha256, got.path, got.strength) == ("c" * 64, "d" * 64, None, 1.0)
    with pytest.raises(NotFound):
        copies.update("ffffffffffffffff", base_sha256="c" * 64, marked_sha256="d" * 64, path=None, strength=1)


def test_unknown_copy_is_not_found(copies: SqlCopyRegistry) -> None:
    with pytest.raises(NotFound):
        copies.get("ffffffffffffffff")


def test_ids_lists_the_copies_of_one_key(
    registry: SqlWorkRegistry, copies: SqlCopyRegistry, fingerprint: WorkFingerprint
) -> None:
    first, second = add_work(registry, fingerprint, 11), add_work(registry, fingerprint, 12)
    copies.add(new_copy(first.id, "site", "00000000000000c2"))
    copies.add(new_copy(second.id, "site", "00000000000000c1"))
    copies.add(new_copy(second.id, "social", "00000000000000c3", key_id="fedcba9876543210"))
    assert copies.ids("0123456789abcdef") == ["00000000000000c1", "00000000000000c2"]
    assert copies.ids("fedcba9876543210") == ["00000000000000c3"]
    assert copies.ids("ffffffffffffffff") == []
