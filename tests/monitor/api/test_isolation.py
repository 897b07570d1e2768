"""One account never reads, lists, guesses or downloads another's records: every endpoint that
takes an id answers another account's id exactly as it answers an id that does not exist (404)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.monitor.api.conftest import Tenant, World, upload

UNKNOWN = "0123456789abcdef"


def id_routes(t: Tenant) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(method, path, json body) of every API route that names one of ``t``'s records."""
    return [
        ("GET", f"/api/works/{t.work_id}", None),
        ("GET", f"/api/works/{t.work_id}/image", None),
        ("GET", f"/api/works/{t.work_id}/copies/{t.copy_id}", None),
        ("GET", f"/api/jobs/{t.job_id}", None),
        ("GET", f"/api/sources/{t.source_id}", None),
        ("PATCH", f"/api/sources/{t.source_id}", {"every": "2h"}),
        ("DELETE", f"/api/sources/{t.source_id}", None),
        ("GET", f"/api/findings/{t.finding_id}", None),
        ("GET", f"/api/findings/{t.finding_id}/image", None),
        ("GET", f"/api/findings/{t.finding_id}/comparison.png", None),
        ("POST", f"/api/findings/{t.finding_id}/evidence", None),
        ("POST", f"/api/findings/{t.finding_id}/recheck", None),
        ("GET", f"/api/alerts/{t.alert_id}", None),
        ("POST", f"/api/alerts/{t.alert_id}/ack", None),
    ]


def unknown_twin(t: Tenant) -> Tenant:
    return Tenant(
        "nobody",
        "",
        "",
        work_id=UNKNOWN,
        finding_id=UNKNOWN,
        alert_id=UNKNOWN,
        source_id=UNKNOWN,
        job_id=UNKNOWN,
        copy_id=t.copy_id,
    )


def test_every_id_route_answers_404_for_another_accounts_ids(world: World) -> None:
    client, a, b = world.client, world.a, world.b
    assert a.copy_id, "the fixture work of a must have a marked copy"
    for (method, path, body), (_, unknown_path, _) in zip(
        id_routes(a), id_routes(unknown_twin(a)), strict=True
    ):
        theirs = client.request(method, path, headers=b.headers, json=body)
        nobody = client.request(method, unknown_path, headers=b.headers, json=body)
        assert theirs.status_code == 404, f"{method} {path}: {theirs.status_code} {theirs.text}"
        assert nobody.status_code == 404, f"{method} {unknown_path}: {nobody.status_code}"
        # same shape and code: the answer does not tell whether the id exists
        assert theirs.json()["error"]["code"] == nobody.json()["error"]["code"]
        assert theirs.json()["error"]["message"].replace(path.split("/")[3], "ID") == nobody.json()["error"][
            "message"
        ].replace(unknown_path.split("/")[3], "ID")
    # and nothing of a's changed
    assert client.get(f"/api/alerts/{a.alert_id}", headers=a.headers).json()["acked_at"] is None
    source = client.get(f"/api/sources/{a.source_id}", headers=a.headers).json()
    assert source["every_seconds"] == 3600 and source["enabled"] is True
    assert client.get(f"/api/findings/{a.finding_id}", headers=a.headers).json()["rechecks"] == []
    assert client.get(f"/api/findings/{a.finding_id}", headers=a.headers).json()["exports"] == []


def test_the_owner_reaches_every_id_route(world: World) -> None:
    """The same routes work for their owner (so the 404s above are about ownership)."""
    client, b = world.client, world.b
    for method, path, _ in id_routes(b):
        if method != "GET":
            continue  # the changing ones are tested in test_api
        response = client.get(path, headers=b.headers)
        assert response.status_code == 200, f"{path}: {response.text}"


def test_lists_show_only_the_callers_records(world: World) -> None:
    client, a, b = world.client, world.a, world.b
    for tenant, other in ((a, b), (b, a)):
        h = tenant.headers
        works = client.get("/api/works", headers=h).json()
        assert [w["work_id"] for w in works["items"]] == [tenant.work_id] and works["total"] == 1
        findings = client.get("/api/findings", headers=h).json()["items"]
        assert [f["finding_id"] for f in findings] == [tenant.finding_id]
        assert client.get(f"/api/findings?work_id={other.work_id}", headers=h).json()["items"] == []
        alerts = client.get("/api/alerts", headers=h).json()["items"]
        assert [x["alert_id"] for x in alerts] == [tenant.alert_id]
        sources = client.get("/api/sources", headers=h).json()["items"]
        assert [s["source_id"] for s in sources] == [tenant.source_id]
        jobs = client.get("/api/jobs", headers=h).json()["items"]
        assert [j["job_id"] for j in jobs] == [tenant.job_id]
        assert client.get(f"/api/works?q={other.work_id}", headers=h).json()["items"] == []


def test_search_cannot_find_another_accounts_title(world: World) -> None:
    client, a, b = world.client, world.a, world.b
    assert client.get("/api/works?q=alice", headers=a.headers).json()["total"] == 1
    assert client.get("/api/works?q=alice", headers=b.headers).json()["total"] == 0


@pytest.mark.parametrize(
    "path",
    [
        "/works/{work}",
        "/ui/works/{work}/image",
        "/findings/{finding}",
        "/ui/findings/{finding}/image",
        "/ui/findings/{finding}/comparison.png",
        "/jobs/{job}",
    ],
)
def test_dashboard_pages_answer_404_for_another_accounts_ids(world: World, path: str) -> None:
    a, b = world.a, world.b
    url = path.format(work=a.work_id, finding=a.finding_id, job=a.job_id)
    unknown = path.format(work=UNKNOWN, finding=UNKNOWN, job=UNKNOWN)
    with logged_in(world, b) as browser:
        response = browser.get(url)
        nobody = browser.get(unknown)
    assert response.status_code == nobody.status_code == 404
    assert "alice" not in response.text
    text = response.text
    for known in (a.work_id, a.finding_id, a.job_id):
        text = text.replace(known, UNKNOWN)
    assert text == nobody.text


def test_dashboard_actions_answer_404_for_another_accounts_ids(world: World) -> None:
    client, a, b = world.client, world.a, world.b
    with logged_in(world, b) as browser:
        csrf = csrf_of(browser)
        for url in (
            f"/findings/{a.finding_id}/evidence",
            f"/findings/{a.finding_id}/recheck",
            f"/alerts/{a.alert_id}/ack",
            f"/sources/{a.source_id}/delete",
        ):
            response = browser.post(url, data={"csrf": csrf})
            assert response.status_code == 404, url
    assert client.get(f"/api/alerts/{a.alert_id}", headers=a.headers).json()["acked_at"] is None


def test_the_same_bytes_are_one_work_owned_by_both_with_their_own_titles(world: World) -> None:
    client, a, b = world.client, world.a, world.b
    data = world.monitor.blobs.get(client.get(f"/api/works/{a.work_id}", headers=a.headers).json()["sha256"])
    line = upload(client, b, data, "bobs-copy.jpg", title="bob's own title")["items"][0]
    try:
        assert line["work_id"] == a.work_id and line["created"] is True
        mine = client.get(f"/api/works/{a.work_id}", headers=b.headers).json()
        assert mine["title"] == "bob's own title" and mine["filename"] == "bobs-copy.jpg"
        theirs = client.get(f"/api/works/{a.work_id}", headers=a.headers).json()
        assert theirs["title"] == "alice title" and theirs["filename"] == "alice.jpg"
        assert "alice" not in str(mine) and "bob" not in str(theirs)
        # b now owns the work, so b sees its findings too
        ids = [f["finding_id"] for f in client.get("/api/findings", headers=b.headers).json()["items"]]
        assert a.finding_id in ids
    finally:
        from sqlalchemy import delete

        from monitor.registry.models import AccountWorkRow

        with world.monitor.accounts.engine.begin() as conn:
            conn.execute(
                delete(AccountWorkRow).where(
                    AccountWorkRow.account_id == b.account_id, AccountWorkRow.work_id == a.work_id
                )
            )


# ------------------------------------------------------------------ helpers


@contextmanager
def logged_in(world: World, tenant: Tenant) -> Iterator[TestClient]:
    """A browser-like client of the same app, logged in to the dashboard as ``tenant``."""
    with TestClient(world.client.app) as browser:
        response = browser.post("/login", data={"key": tenant.key, "next": "/"}, follow_redirects=False)
        assert response.status_code == 303 and "monitor_session" in browser.cookies
        yield browser


def csrf_of(browser: TestClient) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', browser.get("/scan").text)
    assert found
    return found.group(1)
