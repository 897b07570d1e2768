"""Every API endpoint, for the account that owns the records."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from monitor.api import create_app
from monitor.app import Monitor, open_monitor
from monitor.settings import ApiSettings
from tests.fixtures.site import build_blog, cropped_copy, registered_work, serve
from tests.monitor.api.conftest import (
    Tenant,
    World,
    add_finding,
    china_copy,
    china_work,
    jpeg,
    make_settings,
    new_tenant,
    upload,
)

REPO = Path(__file__).resolve().parents[3]


def wait_job(client: TestClient, tenant: Tenant, job_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}", headers=tenant.headers).json()
        if job["status"] in ("finished", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")


# ------------------------------------------------------------------ auth and service


def test_keys_are_required_and_checked(world: World) -> None:
    client, a = world.client, world.a
    assert client.get("/api/works").status_code == 401
    assert (
        client.get("/api/works", headers={"Authorization": "Bearer mk_000000000000_" + "x" * 43}).status_code
        == 401
    )
    wrong = a.key[:-1] + ("A" if a.key[-1] != "A" else "B")  # one character off (never the same key)
    assert client.get("/api/works", headers={"Authorization": "Bearer " + wrong}).status_code == 401
    assert client.get("/api/works", headers={"X-API-Key": a.key}).status_code == 200
    body = client.get("/api/works").json()
    assert body["error"]["code"] == "unauthorized"


def test_account_shows_key_ids_never_keys(world: World) -> None:
    body = world.client.get("/api/account", headers=world.a.headers).json()
    assert body["name"] == "alice" and len(body["keys"]) == 1
    assert world.a.key not in json.dumps(body) and body["keys"][0]["key_id"] in world.a.key


def test_health_and_metrics(world: World) -> None:
    client = world.client
    assert client.get("/health").json() == {"status": "ok", "database": "ok", "jobs": "in-process"}
    client.get("/api/works", headers=world.a.headers)
    text = client.get("/metrics").text
    assert 'monitor_http_requests_total{method="GET",route="/api/works",status="200"}' in text
    assert "monitor_works 2.0" in text and "monitor_findings 2.0" in text
    assert 'monitor_jobs{status="queued"} 2.0' in text


def test_unknown_routes_and_bad_parameters_are_json_errors(world: World) -> None:
    h = world.a.headers
    assert world.client.get("/api/nothing", headers=h).json()["error"]["code"] == "not_found"
    bad = world.client.get("/api/findings?limit=0", headers=h)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def test_openapi_schema_in_the_repo_matches_the_app(world: World) -> None:
    stored = json.loads((REPO / "docs" / "openapi.json").read_text())
    assert stored == world.client.get("/openapi.json").json(), "run: python scripts/openapi.py"


# ------------------------------------------------------------------ works


def test_upload_one_work_with_title_owner_and_marks(fresh: tuple[Monitor, TestClient]) -> None:
    mon, client = fresh
    t = new_tenant(mon, "carol")
    data = registered_work()
    response = client.post(
        "/api/works",
        headers=t.headers,
        files=[("files", ("portrait.jpg", data, "image/jpeg"))],
        data={
            "title": "The thug",
            "owner": "J. Painter",
            "channel": ["site", "shop"],
            "add_visible_mark": "@jp",
        },
    )
    assert response.status_code == 201, response.text
    line = response.json()["items"][0]
    assert line["status"] == "ok" and line["created"] is True
    assert sorted(c["channel"] for c in line["copies"]) == ["shop", "site"]
    detail = client.get(f"/api/works/{line['work_id']}", headers=t.headers).json()
    assert (detail["title"], detail["owner"], detail["filename"]) == (
        "The thug",
        "J. Painter",
        "portrait.jpg",
    )
    assert detail["visible_mark"] is not None and len(detail["copies"]) == 2
    assert detail["dossier"][0]["kind"] == "registered"
    # the shared record keeps nothing of the account
    assert mon.registry.get(line["work_id"]).title == "" and t.account_id not in str(detail["dossier"])
    again = upload(client, t, data, "again.jpg")
    assert again["items"][0]["created"] is False
    copy = detail["copies"][0]
    got = client.get(f"/api/works/{line['work_id']}/copies/{copy['copy_id']}", headers=t.headers)
    assert got.status_code == 200 and got.content[:2] == b"\xff\xd8" and got.content != data
    image = client.get(f"/api/works/{line['work_id']}/image?size=64", headers=t.headers)
    assert (
        image.headers["content-type"] == "image/jpeg"
        and max(Image.open(io.BytesIO(image.content)).size) == 64
    )


def test_upload_refuses_bad_files_and_options(fresh: tuple[Monitor, TestClient]) -> None:
    mon, client = fresh
    t = new_tenant(mon, "dave")
    html = client.post(
        "/api/works", headers=t.headers, files=[("files", ("x.jpg", b"<html>hi</html>", "image/jpeg"))]
    )
    assert html.status_code == 422 and html.json()["error"]["code"] == "not_an_image"
    box = client.post(
        "/api/works",
        headers=t.headers,
        files=[("files", ("a.jpg", registered_work()))],
        data={"visible_mark": "1,2"},
    )
    assert box.status_code == 400
    chan = client.post(
        "/api/works",
        headers=t.headers,
        files=[("files", ("a.jpg", registered_work()))],
        data={"channel": "Bad Name"},
    )
    assert chan.status_code == 400
    assert client.get("/api/works", headers=t.headers).json()["total"] == 0


def test_upload_size_limits(tmp_path: Path) -> None:
    mon = open_monitor(make_settings(tmp_path / "home", api=ApiSettings(max_upload_bytes=20_000)))
    with TestClient(create_app(mon)) as client:
        t = new_tenant(mon, "erin")
        big = jpeg(Image.effect_noise((300, 300), 80), 95)
        assert len(big) > 20_000
        response = client.post("/api/works", headers=t.headers, files=[("files", ("big.jpg", big))])
        assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
        assert client.get("/api/works", headers=t.headers).json()["total"] == 0


def test_batch_upload_runs_as_a_job(fresh: tuple[Monitor, TestClient]) -> None:
    mon, client = fresh
    t = new_tenant(mon, "fay")
    files = [
        ("files", ("one.jpg", registered_work())),
        ("files", ("two.jpg", china_work())),
        ("files", ("bad.jpg", b"no")),
    ]
    response = client.post("/api/works", headers=t.headers, files=files, data={"owner": "Fay"})
    assert response.status_code == 202, response.text
    job = wait_job(client, t, response.json()["job"]["job_id"])
    assert (
        job["status"] == "finished"
        and job["done"] == 3
        and job["params"]["files"] == ["one.jpg", "two.jpg", "bad.jpg"]
    )
    states = [(i["filename"], i["status"]) for i in job["result"]["items"]]
    assert states == [("one.jpg", "ok"), ("two.jpg", "ok"), ("bad.jpg", "error")]
    works = client.get("/api/works", headers=t.headers).json()
    assert works["total"] == 2 and {w["owner"] for w in works["items"]} == {"Fay"}
    assert not (mon.settings.home / "spool" / job["job_id"]).exists()


def test_list_and_search_works(world: World) -> None:
    client, a = world.client, world.a
    assert client.get("/api/works?q=ALICE", headers=a.headers).json()["total"] == 1
    assert client.get("/api/works?q=nothing-like-it", headers=a.headers).json() == {"items": [], "total": 0}
    assert client.get(f"/api/works?q={a.work_id[:6]}", headers=a.headers).json()["total"] == 1
    assert client.get("/api/works?limit=1&offset=1", headers=a.headers).json()["items"] == []


# ------------------------------------------------------------------ scans and jobs


def test_scan_a_loopback_page_finds_the_work(fresh: tuple[Monitor, TestClient], tmp_path: Path) -> None:
    mon, client = fresh
    t = new_tenant(mon, "gus")
    blog = build_blog(tmp_path / "site")
    work_id = upload(client, t, blog.work, "thug.jpg")["items"][0]["work_id"]
    with serve(blog.root) as (base, _):
        response = client.post(
            "/api/scans", headers=t.headers, json={"urls": [f"{base}poems/night-walk.html"]}
        )
        assert response.status_code == 202, response.text
        job = wait_job(client, t, response.json()["job_id"])
    assert job["status"] == "finished", job
    assert job["result"]["pages"] == 1 and job["result"]["crawl_id"]
    assert len(job["findings"]) == 1
    finding = client.get(f"/api/findings/{job['findings'][0]}", headers=t.headers).json()
    assert finding["work_id"] == work_id and finding["page"]["title"] == "Night walk — a poem"
    assert [j["job_id"] for j in client.get("/api/jobs", headers=t.headers).json()["items"]] == [
        job["job_id"]
    ]


def test_scan_requests_are_checked(world: World) -> None:
    h = world.a.headers
    assert world.client.post("/api/scans", headers=h, json={"urls": []}).status_code == 422
    assert world.client.post("/api/scans", headers=h, json={"urls": ["ftp://x.example/"]}).status_code == 422
    many = {"urls": [f"http://x.example/{n}" for n in range(21)]}
    assert world.client.post("/api/scans", headers=h, json=many).status_code == 400


# ------------------------------------------------------------------ watched sources


def test_sources_crud_and_sharing(fresh: tuple[Monitor, TestClient]) -> None:
    mon, client = fresh
    t, u = new_tenant(mon, "hal"), new_tenant(mon, "ida")
    made = client.post("/api/sources", headers=t.headers, json={"url": "http://s.example/", "every": "2h"})
    assert made.status_code == 201 and made.json()["every_seconds"] == 7200
    sid = made.json()["source_id"]
    assert (
        client.post("/api/sources", headers=t.headers, json={"url": "http://s.example/"}).status_code == 200
    )
    assert client.get(f"/api/sources/{sid}", headers=t.headers).json()["url"] == "http://s.example/"
    patched = client.patch(f"/api/sources/{sid}", headers=t.headers, json={"every": "30m", "max_pages": 5})
    assert (
        patched.status_code == 200
        and patched.json()["every_seconds"] == 1800
        and patched.json()["max_pages"] == 5
    )
    assert client.patch(f"/api/sources/{sid}", headers=t.headers, json={"every": "5s"}).status_code == 400
    # another account watching the same URL shares the source; then changes are refused
    shared = client.post("/api/sources", headers=u.headers, json={"url": "http://s.example/"})
    assert shared.status_code == 201 and shared.json()["source_id"] == sid
    assert client.patch(f"/api/sources/{sid}", headers=t.headers, json={"every": "1h"}).status_code == 400
    assert client.delete(f"/api/sources/{sid}", headers=t.headers).status_code == 204
    assert client.get(f"/api/sources/{sid}", headers=t.headers).status_code == 404
    assert client.get(f"/api/sources/{sid}", headers=u.headers).json()["enabled"] is True
    assert client.delete(f"/api/sources/{sid}", headers=u.headers).status_code == 204
    assert mon.discovery.get_source(sid).enabled is False  # nobody watches it: beat leaves it alone
    assert client.get("/api/sources", headers=u.headers).json() == {"items": []}


# ------------------------------------------------------------------ findings


def test_findings_filters_and_severity_order(fresh: tuple[Monitor, TestClient]) -> None:
    mon, client = fresh
    t = new_tenant(mon, "jo")
    work = china_work()
    upload(client, t, work, "china.jpg", title="temple")
    exact = add_finding(mon, work, page_url="http://a.example/p.html", image_url="http://a.example/i.jpg")
    partial = add_finding(
        mon, china_copy(work), page_url="http://www.b.example/q.html", image_url="http://b.example/j.jpg"
    )
    assert (exact.verdict, partial.verdict) == ("exact", "partial")
    h = t.headers

    def ids(query: str = "") -> list[str]:
        return [f["finding_id"] for f in client.get(f"/api/findings{query}", headers=h).json()["items"]]

    assert ids() == [exact.id, partial.id]  # high before medium
    assert ids("?sort=newest") == [partial.id, exact.id]
    assert ids("?verdict=partial") == [partial.id]
    assert ids("?flag=cropped") == [partial.id]
    assert ids("?severity=high") == [exact.id]
    assert ids("?site=b.example") == [partial.id] and ids("?site=a.example") == [exact.id]
    assert ids("?since=2999-01-01T00:00:00") == [] and ids("?until=2000-01-01T00:00:00Z") == []
    assert set(ids(f"?since={exact.created_at.isoformat().replace('+00:00', 'Z')}")) == {exact.id, partial.id}
    first = client.get("/api/findings?limit=1", headers=h).json()["items"]
    assert first[0]["work_title"] == "temple" and first[0]["severity"] == "high"


def test_finding_detail_pictures_and_evidence(world: World) -> None:
    client, a = world.client, world.a
    detail = client.get(f"/api/findings/{a.finding_id}", headers=a.headers).json()
    assert detail["verdict"] == "partial" and "cropped" in detail["flags"]
    assert detail["flag_reasons"]["cropped"].startswith("only part of the work is shown")
    assert detail["page"]["url"] == "http://alice.example/poem.html" and detail["transform"] is not None
    image = client.get(f"/api/findings/{a.finding_id}/image", headers=a.headers)
    assert image.headers["content-type"] == "image/jpeg"
    assert image.content != world.monitor.blobs.get(
        world.monitor.discovery.get_finding(a.finding_id).image_sha256
    )
    png = client.get(f"/api/findings/{a.finding_id}/comparison.png", headers=a.headers)
    assert png.content.startswith(b"\x89PNG")
    bundle = client.post(f"/api/findings/{a.finding_id}/evidence", headers=a.headers)
    assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
    assert "attachment" in bundle.headers["content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
    assert {"manifest.json", "manifest.sig", "finding.json", "comparison.png"} <= set(names)
    exports = client.get(f"/api/findings/{a.finding_id}", headers=a.headers).json()["exports"]
    assert len(exports) == 1 and exports[0]["members"] >= 4
    from monitor.evidence import verify_bundle

    path = Path(world.monitor.settings.home) / "bundle.zip"
    path.write_bytes(bundle.content)
    assert verify_bundle(path).ok


def test_recheck_records_a_visit(world: World) -> None:
    client, b = world.client, world.b
    response = client.post(f"/api/findings/{b.finding_id}/recheck", headers=b.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["online"] is False and len(body["history"]) == 1  # bob.example does not resolve
    assert len(client.get(f"/api/findings/{b.finding_id}", headers=b.headers).json()["rechecks"]) == 1


# ------------------------------------------------------------------ alerts


def test_alerts_list_get_and_ack(fresh: tuple[Monitor, TestClient]) -> None:
    mon, client = fresh
    t = new_tenant(mon, "kim")
    work = registered_work()
    upload(client, t, work)
    alert = mon.raise_alert(
        add_finding(mon, cropped_copy(work), page_url="http://k.example/", image_url="http://k.example/a.jpg")
    ).alert
    h = t.headers
    listed = client.get("/api/alerts", headers=h).json()["items"]
    assert [x["alert_id"] for x in listed] == [alert.id] and listed[0]["severity"] == "medium"
    assert client.get("/api/alerts?severity=high", headers=h).json()["items"] == []
    got = client.get(f"/api/alerts/{alert.id}", headers=h).json()
    assert got["acked_at"] is None and got["occurrences"] == 1
    acked = client.post(f"/api/alerts/{alert.id}/ack", headers=h).json()
    assert acked["acked_at"] is not None
    assert client.get("/api/alerts?unacked=true", headers=h).json()["items"] == []
    assert client.post(f"/api/alerts/{alert.id}/ack", headers=h).json()["acked_at"] == acked["acked_at"]
