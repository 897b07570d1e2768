"""The dashboard in a real browser: log in with a key, upload a work, scan a loopback page,
see the finding in the inbox, open it, export the evidence. Screenshots of the main pages are
written to the test's folder, and to ``docs/screenshots`` with ``UPDATE_SCREENSHOTS=1``."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from tests.e2e.conftest import Service

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "docs" / "screenshots"


def test_login_upload_scan_open_and_export(service: Service, chromium: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = tmp_path / "shots"
    shots.mkdir()
    work_file = tmp_path / "night-walk-original.jpg"
    work_file.write_bytes(service.blog.work)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)

            # log in with the key (keyboard only: type, Enter)
            page.goto(f"{service.url}/works")
            expect(page).to_have_url(f"{service.url}/login?next=/works")
            page.screenshot(path=shots / "login.png")
            page.get_by_label("API key").fill(service.key)
            page.keyboard.press("Enter")
            expect(page.get_by_role("heading", name="Your works")).to_be_visible()

            # upload a work, with progress shown by the small local script
            page.get_by_role("link", name="Upload", exact=True).click()
            page.get_by_label("Images").set_input_files(str(work_file))
            page.get_by_label("Title").fill("Night walk")
            page.get_by_label("Owner / rights holder").fill("J. Painter")
            page.screenshot(path=shots / "upload.png")
            page.get_by_role("button", name="Upload and register").click()
            expect(page.get_by_role("heading", name="Night walk")).to_be_visible()
            expect(page.get_by_role("status")).to_contain_text("Registered")

            # scan the loopback blog's poem page; the job page reloads itself until done
            page.get_by_role("link", name="Scan", exact=True).click()
            page.get_by_label("Page or image URLs").fill(f"{service.blog_url}poems/night-walk.html")
            page.get_by_role("button", name="Scan", exact=True).click()
            expect(page.locator("#job-status")).to_contain_text("finished", timeout=90_000)
            expect(page.get_by_role("heading", name="Your works found")).to_be_visible()

            # the inbox shows it with its thumbnail
            page.get_by_role("link", name="Findings", exact=True).click()
            row = page.locator(".inbox .row").first
            expect(row).to_contain_text("partial")
            expect(row).to_contain_text("Night walk")
            page.screenshot(path=shots / "inbox.png", full_page=True)

            # open it: work and candidate side by side, region drawn, flags explained, page context
            row.get_by_role("link").click()
            expect(page.locator("svg .region")).to_have_count(2)
            expect(page.get_by_text("only part of the work is shown")).to_be_visible()
            expect(page.get_by_text("Night walk — a poem")).to_be_visible()
            expect(page.get_by_text("The night was long and the road was cold")).to_be_visible()
            page.screenshot(path=shots / "finding.png", full_page=True)

            # export the evidence: a signed zip downloads
            with page.expect_download() as download:
                page.get_by_role("button", name="Export evidence").click()
            bundle = tmp_path / "evidence.zip"
            download.value.save_as(bundle)
            names = zipfile.ZipFile(bundle).namelist()
            assert {"manifest.json", "manifest.sig", "candidate/capture.warc.gz", "report.pdf"} <= set(names)

            page.get_by_role("link", name="Works", exact=True).click()
            expect(page.locator(".gallery li")).to_have_count(1)
            page.screenshot(path=shots / "works.png")
        finally:
            browser.close()

    if os.environ.get("UPDATE_SCREENSHOTS"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        for shot in shots.glob("*.png"):
            shutil.copyfile(shot, SHOTS / shot.name)
