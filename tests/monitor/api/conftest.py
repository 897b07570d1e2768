"""An API over a fresh home with two accounts, each with a work, a finding, an alert, a watched
source and a job (``world``), and helpers to build more."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from monitor.accounts import create_account
from monitor.api import create_app
from monitor.app import Monitor, open_monitor
from monitor.discovery import CapturedImage, analyse_candidate, store_candidate
from monitor.findings import Finding, PageCapture
from monitor.settings import Settings
from monitor.watermark import service as watermark_service
from tests.fixtures.site import CHINA, IMAGES, cropped_copy, registered_work


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def china_work() -> bytes:
    return jpeg(Image.open(IMAGES / CHINA), 92)


def china_copy(work: bytes) -> bytes:
    img = Image.open(io.BytesIO(work)).convert("RGB")
    w, h = img.size
    return jpeg(img.crop((int(w * 0.1), 0, w, int(h * 0.85))), 75)


FIXED_WATERMARK_KEY = bytes(range(1, 33)).hex()


def make_settings(home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"allow_private_addresses": True, "redis_url": None, "database_url": None}
    values.update(overrides)
    return Settings(home=home, **values)


def add_finding(mon: Monitor, copy: bytes, *, page_url: str, image_url: str) -> Finding:
    """Store a candidate as a crawler would and analyse it here: real findings, no crawl."""
    sha = mon.blobs.put(copy)
    page = PageCapture(
        url=page_url,
        title="Night walk — a poem",
        text="The night was long and the road was cold,",
        alt="a man",
    )
    candidate, _ = store_candidate(mon.discovery, CapturedImage(image_url=image_url, page=page, sha256=sha))
    mon.__dict__.pop("matcher", None)  # works were registered since the index was built
    outcome = analyse_candidate(candidate.id, mon.analysis_services())
    assert outcome.findings, "the fixture copy must be found"
    return outcome.findings[0]


@dataclass
class Tenant:
    name: str
    account_id: str
    key: str
    work_id: str = ""
    finding_id: str = ""
    alert_id: str = ""
    source_id: str = ""
    job_id: str = ""
    copy_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class World:
    monitor: Monitor
    client: TestClient
    a: Tenant
    b: Tenant


def new_tenant(mon: Monitor, name: str) -> Tenant:
    account, key = create_account(mon.accounts, name)
    return Tenant(name, account.id, key)


def upload(
    client: TestClient, tenant: Tenant, data: bytes, name: str = "work.jpg", **form: Any
) -> dict[str, Any]:
    response = client.post(
        "/api/works", headers=tenant.headers, files=[("files", (name, data, "image/jpeg"))], data=form
    )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def populate(mon: Monitor, client: TestClient, tenant: Tenant, work: bytes, copy: bytes, host: str) -> None:
    line = upload(client, tenant, work, f"{tenant.name}.jpg", title=f"{tenant.name} title", watermark="true")[
        "items"
    ][0]
    tenant.work_id = line["work_id"]
    tenant.copy_id = line["copies"][0]["copy_id"] if line["copies"] else ""
    finding = add_finding(mon, copy, page_url=f"http://{host}/poem.html", image_url=f"http://{host}/img.jpg")
    tenant.finding_id = finding.id
    tenant.alert_id = mon.raise_alert(finding).alert.id
    response = client.post(
        "/api/sources", headers=tenant.headers, json={"url": f"http://{host}/", "every": "1h"}
    )
    assert response.status_code == 201, response.text
    tenant.source_id = response.json()["source_id"]
    tenant.job_id = mon.accounts.add_job(tenant.account_id, "scan", {"urls": [f"http://{host}/"]}, total=1).id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("api-home")
    settings = make_settings(home)
    # A fixed watermark key and fixed copy ids (the mark's payload): the unmarked copies below
    # read as "no mark" (t near 0) with them. With a fresh key or fresh copy ids each run, now
    # and then a run reads a chance t >= 3 ("a trace of the mark"), no watermark_stripped flag
    # is raised and the pages lose their "high" severity.
    settings.watermark_key_file.parent.mkdir(parents=True, exist_ok=True)
    settings.watermark_key_file.write_text(FIXED_WATERMARK_KEY)
    mon = open_monitor(settings)
    copy_ids = (f"{0x5EED0000 + i:016x}" for i in itertools.count(1))
    with TestClient(create_app(mon)) as client, pytest.MonkeyPatch.context() as patch:
        patch.setattr(watermark_service, "new_copy_id", lambda: next(copy_ids))
        a, b = new_tenant(mon, "alice"), new_tenant(mon, "bob")
        work_a = registered_work()
        populate(mon, client, a, work_a, cropped_copy(work_a), "alice.example")
        work_b = china_work()
        populate(mon, client, b, work_b, china_copy(work_b), "bob.example")
        patch.undo()
        yield World(mon, client, a, b)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[Monitor, TestClient]]:
    """A monitor and client of its own (for tests that change things)."""
    mon = open_monitor(make_settings(tmp_path / "home"))
    with TestClient(create_app(mon)) as client:
        yield mon, client
