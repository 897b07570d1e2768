"""End-to-end fixtures: ``monitor serve`` on a free loopback port, a loopback fixture blog, and
Debian's Chromium driven by Playwright (``executable_path``; browsers are never downloaded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.services import REPO, free_port
from tests.fixtures.site import Blog, build_blog, serve

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.is_file():
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@dataclass
class Service:
    url: str
    key: str
    home: Path
    blog: Blog
    blog_url: str


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update(
        MONITOR_HOME=str(home),
        MONITOR_ALLOW_PRIVATE_ADDRESSES="true",
        MONITOR_DISCOVERY__AUTOTHROTTLE="false",
        MONITOR_DISCOVERY__OBEY_ROBOTS="true",
    )
    return env


@pytest.fixture
def service(tmp_path: Path, chromium: Path) -> Iterator[Service]:
    home = tmp_path / "home"
    env = _env(home)
    made = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "account", "create", "e2e", "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    key = json.loads(made.stdout)["api_key"]
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("monitor serve did not start: " + (tmp_path / "serve.log").read_text())
            time.sleep(0.2)
        blog = build_blog(tmp_path / "site")
        with serve(blog.root) as (base, _):
            yield Service(url, key, home, blog, base)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
