"""The dashboard pages: login, gallery, upload without JavaScript, inbox, finding page, actions."""

from __future__ import annotations

import io
import re
import zipfile

from fastapi.testclient import TestClient

from tests.fixtures.site import registered_work
from tests.monitor.api.conftest import World, china_work
from tests.monitor.api.test_isolation import csrf_of, logged_in


def test_pages_need_a_login_and_a_valid_key(world: World) -> None:
    with TestClient(world.client.app) as browser:
        first = browser.get("/findings?severity=high", follow_redirects=False)
        assert (
            first.status_code == 303
            and first.headers["location"] == "/login?next=/findings%3Fseverity%3Dhigh"
        )
        assert browser.get("/ui/works/x/image", follow_redirects=False).status_code == 303
        page = browser.get("/login")
        assert page.status_code == 200 and 'type="password"' in page.text
        wrong = browser.post("/login", data={"key": "mk_nope", "next": "/"})
        assert (
            wrong.status_code == 401
            and "not valid" in wrong.text
            and "monitor_session" not in browser.cookies
        )
        evil = browser.post(
            "/login", data={"key": world.a.key, "next": "//evil.example/"}, follow_redirects=False
        )
        assert evil.headers["location"] == "/"
        session = browser.cookies["monitor_session"]
        # two characters of its signature changed (a session whose signature ends in "00" is
        # changed to "11": forging it with "00" would leave it valid, one login in 256)
        forged = session[:-2] + ("11" if session.endswith("00") else "00")
        browser.cookies.clear()
        browser.cookies.set("monitor_session", forged)
        assert browser.get("/works", follow_redirects=False).status_code == 303


def test_gallery_search_work_page(world: World) -> None:
    with logged_in(world, world.a) as browser:
        gallery = browser.get("/works")
        assert "alice title" in gallery.text and f"/ui/works/{world.a.work_id}/image" in gallery.text
        assert "No works" in browser.get("/works?q=zzz").text
        page = browser.get(f"/works/{world.a.work_id}")
        assert (
            "Authorship dossier" in page.text
            and "registered" in page.text
            and world.a.finding_id in page.text
        )
        image = browser.get(f"/ui/works/{world.a.work_id}/image?size=100")
        assert image.headers["content-type"] == "image/jpeg"


def test_inbox_and_finding_page(world: World) -> None:
    a = world.a
    with logged_in(world, a) as browser:
        inbox = browser.get("/")
        assert f"/findings/{a.finding_id}" in inbox.text and "sev-high" in inbox.text
        assert f"/ui/findings/{a.finding_id}/image" in inbox.text
        assert "No findings match" in browser.get("/findings?verdict=exact").text
        page = browser.get(f"/findings/{a.finding_id}").text
        assert '<rect x="0" y="0" width="281" height="314" class="region"' in page  # the matched region
        assert 'class="region"' in page and "<polygon" in page  # and mapped back onto the work
        assert "only part of the work is shown" in page  # flags in plain words
        assert "http://alice.example/poem.html" in page and "The night was long" in page  # page context
        assert 'action="/findings/' + a.finding_id + '/evidence"' in page and "/recheck" in page
        assert browser.get(f"/ui/findings/{a.finding_id}/comparison.png").content.startswith(b"\x89PNG")


def test_evidence_export_from_the_page_needs_the_form_token(world: World) -> None:
    a = world.a
    with logged_in(world, a) as browser:
        refused = browser.post(f"/findings/{a.finding_id}/evidence", data={"csrf": "0" * 32})
        assert refused.status_code == 400
        bundle = browser.post(f"/findings/{a.finding_id}/evidence", data={"csrf": csrf_of(browser)})
        assert (
            bundle.status_code == 200
            and "manifest.json" in zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
        )


def test_upload_without_javascript_and_alerts_and_sources(world: World) -> None:
    b = world.b
    with logged_in(world, b) as browser:
        form = browser.get("/works/new").text
        assert 'enctype="multipart/form-data"' in form and "/static/upload.js" in form
        csrf = csrf_of(browser)
        done = browser.post(
            "/works",
            data={"csrf": csrf, "title": "portrait", "owner": "Bob"},
            files=[("files", ("p.jpg", registered_work(), "image/jpeg"))],
            follow_redirects=False,
        )
        assert done.status_code == 303 and done.headers["location"].startswith("/works/")
        work_page = browser.get(done.headers["location"])
        assert "portrait" in work_page.text and "Registered" in work_page.text
        batch = browser.post(
            "/works",
            data={"csrf": csrf},
            files=[("files", ("1.jpg", china_work())), ("files", ("2.jpg", registered_work()))],
            follow_redirects=False,
        )
        assert batch.status_code == 303 and batch.headers["location"].startswith("/jobs/")
        world.client.app.state.context.dispatcher.join(30)
        job_page = browser.get(batch.headers["location"]).text
        assert "finished" in job_page and 'http-equiv="refresh"' not in job_page
        alerts = browser.get("/alerts").text
        assert b.alert_id in alerts and "Acknowledge" in alerts
        sources = browser.get("/sources").text
        assert "http://bob.example/" in sources
        assert browser.post("/scan", data={"csrf": csrf, "urls": "not-a-url"}).status_code == 400
    # undo: keep the shared world as it was for other tests
    from sqlalchemy import delete

    from monitor.registry.models import AccountWorkRow

    with world.monitor.accounts.engine.begin() as conn:
        conn.execute(
            delete(AccountWorkRow).where(
                AccountWorkRow.account_id == b.account_id, AccountWorkRow.work_id != b.work_id
            )
        )


def test_everything_is_served_locally_and_keyboard_reachable(world: World) -> None:
    with logged_in(world, world.a) as browser:
        for path in (
            "/",
            "/works",
            "/works/new",
            f"/findings/{world.a.finding_id}",
            "/scan",
            "/alerts",
            "/sources",
        ):
            page = browser.get(path)
            assert page.status_code == 200, path
            assert "default-src 'self'" in page.headers["content-security-policy"]
            for ref in re.findall(r'<(?:script|link|img|image)[^>]*?(?:src|href)="([^"]+)"', page.text):
                assert ref.startswith("/"), f"{path} loads {ref}"
            assert 'href="#main"' in page.text  # skip link
            assert 'tabindex="-1"' in page.text and "onclick" not in page.text
        assert browser.get("/static/style.css").status_code == 200
        assert browser.get("/static/upload.js").status_code == 200
        out = browser.post("/logout", data={"csrf": csrf_of(browser)}, follow_redirects=False)
        assert out.status_code == 303 and browser.get("/works", follow_redirects=False).status_code == 303
