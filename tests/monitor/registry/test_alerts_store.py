"""``SqlAlertStore`` on SQLite and PostgreSQL: one alert per key, idempotent sightings, ack,
the delivery log, the digest query and the export log."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts import Delivery, NewAlert
from monitor.blobs import BlobStore
from monitor.errors import NotFound
from monitor.registry import SqlAlertStore, SqlWorkRegistry
from monitor.services import register_bytes
from monitor.settings import load_settings
from tests.monitor.evidence_fakes import CHINA

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store_and_work(registry: SqlWorkRegistry, tmp_path: Path) -> tuple[SqlAlertStore, str]:
    settings = load_settings(home=tmp_path / "home")
    result = register_bytes(
        CHINA.read_bytes(),
        path="china.jpg",
        registry=registry,
        blobs=BlobStore(tmp_path / "b"),
        settings=settings,
    )
    assert result.work_id is not None
    return SqlAlertStore(registry.engine), result.work_id


def new_alert(work_id: str, key: str = "k1", finding_id: str = "f1", severity: str = "medium") -> NewAlert:
    return NewAlert(
        key=key,
        finding_id=finding_id,
        work_id=work_id,
        candidate_id="c1",
        page_url="https://blog.example.org/p.html",
        image_url="https://cdn.example.org/i.jpg",
        image_sha256="b" * 64,
        verdict="partial",
        similarity=0.9,
        flags=["cropped"],
        severity=severity,
        summary="work found",
    )


def test_one_alert_per_key_even_when_raced(store_and_work: tuple[SqlAlertStore, str]) -> None:
    store, work_id = store_and_work
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda i: store.create(new_alert(work_id, finding_id=f"f{i}"), at=T0), range(8))
        )
    assert sum(created for _, created in results) == 1
    assert len({alert.id for alert, _ in results}) == 1
    alert = results[0][0]
    assert alert.flags == ["cropped"] and alert.created_at == T0 and alert.occurrences == 1


def test_sightings_are_counted_once_and_escalation_reopens(store_and_work: tuple[SqlAlertStore, str]) -> None:
    store, work_id = store_and_work
    alert, _ = store.create(new_alert(work_id), at=T0)
    assert not store.attach(alert.id, "f1", at=T0)  # the creating finding is already attached
    assert store.attach(alert.id, "f2", at=T0) and not store.attach(alert.id, "f2", at=T0)
    acked = store.ack(alert.id, at=T0 + timedelta(minutes=1))
    assert store.ack(alert.id, at=T0 + timedelta(hours=1)).acked_at == acked.acked_at
    later = T0 + timedelta(days=1)
    seen = store.update_sighting(
        alert.id,
        finding_id="f2",
        verdict="partial",
        similarity=0.9,
        flags=["cropped"],
        severity="medium",
        summary="again",
        at=later,
    )
    assert seen.occurrences == 2 and seen.finding_id == "f2" and seen.first_finding_id == "f1"
    assert seen.last_seen_at == later and seen.acked_at is not None
    worse = store.update_sighting(
        alert.id,
        finding_id="f3",
        verdict="partial",
        similarity=0.9,
        flags=["cropped", "visible_mark_removed"],
        severity="high",
        summary="worse",
        at=later,
    )
    assert worse.severity == "high" and worse.acked_at is None and worse.occurrences == 3


def test_listing_filters_and_not_found(store_and_work: tuple[SqlAlertStore, str]) -> None:
    store, work_id = store_and_work
    a, _ = store.create(new_alert(work_id, key="a"), at=T0)
    b, _ = store.create(new_alert(work_id, key="b", finding_id="f2"), at=T0 + timedelta(days=2))
    assert [x.id for x in store.list()] == [b.id, a.id]
    assert [x.id for x in store.list(since=T0 + timedelta(days=1))] == [b.id]
    store.ack(b.id, at=T0 + timedelta(days=3))
    assert [x.id for x in store.list(unacked=True)] == [a.id]
    assert store.get(a.id) == a
    with pytest.raises(NotFound):
        store.get("nope")
    with pytest.raises(NotFound):
        store.ack("nope", at=T0)


def test_delivery_log_and_digest_query(store_and_work: tuple[SqlAlertStore, str]) -> None:
    store, work_id = store_and_work
    a, _ = store.create(new_alert(work_id, key="a"), at=T0)
    b, _ = store.create(new_alert(work_id, key="b", finding_id="f2"), at=T0)
    for attempt, ok in ((1, False), (2, True)):
        store.add_delivery(
            Delivery(
                alert_id=a.id,
                channel="webhook",
                event="alert.created",
                attempt=attempt,
                ok=ok,
                at=T0 + timedelta(seconds=attempt),
                status_code=200 if ok else 503,
            )
        )
    assert [(d.attempt, d.ok, d.status_code) for d in store.deliveries(a.id)] == [
        (1, False, 503),
        (2, True, 200),
    ]
    assert {x.id for x in store.not_delivered("digest")} == {a.id, b.id}
    store.add_delivery(Delivery(alert_id=a.id, channel="digest", event="digest", attempt=1, ok=True, at=T0))
    store.add_delivery(Delivery(alert_id=b.id, channel="digest", event="digest", attempt=1, ok=False, at=T0))
    assert [x.id for x in store.not_delivered("digest")] == [b.id]


def test_export_log(store_and_work: tuple[SqlAlertStore, str]) -> None:
    store, _ = store_and_work
    store.add_export(
        finding_id="f1", path="/tmp/e.zip", manifest_sha256="c" * 64, key_sha256="d" * 64, members=15, at=T0
    )
    [row] = store.exports("f1")
    assert row["members"] == 15 and row["manifest_sha256"] == "c" * 64
    assert store.exports("f2") == []
