"""The crawlers' DNS resolver applies the address policy to the addresses Scrapy connects to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from twisted.internet.error import DNSLookupError

from crawlers.config import DNS_RESOLVER_SETTING, scrapy_settings
from crawlers.resolver import AddressRefused, PolicyResolver, refusal
from monitor.settings import Settings
from tests.fixtures.services import monitor_env, run_in_repo
from tests.fixtures.site import Blog


def test_every_answer_is_vetted_against_the_policy() -> None:
    resolver = PolicyResolver(None, 0, 5.0, allow_private=False)
    assert resolver.vet("93.184.216.34", "example.org") == "93.184.216.34"
    with pytest.raises(AddressRefused, match=r"rebind\.example resolves to 10\.0\.0\.7, which is a private"):
        resolver.vet("10.0.0.7", "rebind.example")
    assert isinstance(AddressRefused("x"), DNSLookupError)  # Twisted fails the connection cleanly
    assert resolver.refused == {
        "rebind.example": "refused: rebind.example resolves to 10.0.0.7, which is a private address"
    }
    assert refusal("127.0.0.1", "127.0.0.1") == "refused: 127.0.0.1 is a loopback address"
    assert refusal("v6.example", "::ffff:169.254.169.254") is not None


def test_the_crawlers_connect_through_the_policy_resolver(tmp_path: Path) -> None:
    values = scrapy_settings(Settings(home=tmp_path))
    assert values[DNS_RESOLVER_SETTING] == "crawlers.resolver.PolicyResolver"


@pytest.mark.slow
def test_a_name_resolving_to_loopback_is_refused_even_without_the_middleware(
    tmp_path: Path, blog: tuple[Blog, str, list[str]]
) -> None:
    _, base, requested = blog
    url = base.replace("127.0.0.1", "localhost")
    bypass = json.dumps({"crawlers.middlewares.AddressPolicyMiddleware": None})
    env = monitor_env(tmp_path / "home", None, allow_private_addresses=False, discovery__warc=False)
    done = run_in_repo(
        env, "-m", "scrapy", "crawl", "site", "-a", f"urls={url}", "-s", f"DOWNLOADER_MIDDLEWARES={bypass}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert requested == []  # not a page, not even robots.txt
    assert "refused: localhost resolves to 127.0.0.1, which is a loopback address" in done.stderr
