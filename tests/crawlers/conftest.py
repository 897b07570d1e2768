from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.services import RedisServer
from tests.fixtures.site import Blog, build_blog, serve


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis for this test only (it may be restarted)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def blog(tmp_path: Path) -> Iterator[tuple[Blog, str, list[str]]]:
    """The fixture blog, served on loopback: (blog, base URL, paths requested)."""
    site = build_blog(tmp_path / "site")
    with serve(site.root) as (base, requested):
        yield site, base, requested
