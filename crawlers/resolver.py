"""The crawlers' DNS resolver: Scrapy's caching resolver with the monitor's address policy.

:class:`~crawlers.middlewares.AddressPolicyMiddleware` refuses a request whose host resolves to
a private, loopback or link-local address before anything is fetched, but it resolves the name
itself; Twisted then resolves it again to connect. A name that answers a public address to the
first lookup and a private one to the second (DNS rebinding) would get through that window.
:class:`PolicyResolver` closes it: it is the resolver Scrapy connects with
(``TWISTED_DNS_RESOLVER``), and it applies :func:`monitor.fetching.blocked_reason` to every
answer — cached or fresh — so a connection only ever goes to an address that was checked.
A refused name fails like a name that does not resolve (:class:`AddressRefused` is a
:class:`~twisted.internet.error.DNSLookupError`); the reason is kept in :attr:`refused` and
logged.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from typing import Any

from scrapy.resolver import CachingThreadedResolver
from twisted.internet.defer import Deferred
from twisted.internet.error import DNSLookupError

from monitor.fetching import blocked_reason
from monitor.settings import Settings, load_settings

log = logging.getLogger(__name__)


class AddressRefused(DNSLookupError):
    """The name resolved to an address the settings do not allow."""


def refusal(name: str, address: str) -> str | None:
    """Why connecting to ``address`` (the answer for ``name``) is refused, or ``None``."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"refused: {name} resolves to {address!r}, which is not an IP address"
    reason = blocked_reason(parsed)
    if reason is None:
        return None
    shown = name if name == address else f"{name} resolves to {address}, which"
    return f"refused: {shown} is a {reason} address"


class PolicyResolver(CachingThreadedResolver):
    """:class:`scrapy.resolver.CachingThreadedResolver` that vets every address it returns."""

    def __init__(self, reactor: Any, cache_size: int, timeout: float, *, allow_private: bool) -> None:
        super().__init__(reactor, cache_size, timeout)
        self.allow_private = allow_private
        self.refused: dict[str, str] = {}

    @classmethod
    def from_crawler(cls, crawler: Any, reactor: Any) -> PolicyResolver:
        # ``crawler`` is the CrawlerProcess here: only its settings are used.
        settings = crawler.settings.get("MONITOR_SETTINGS")
        if not isinstance(settings, Settings):
            settings = load_settings()
        cache_size = (
            crawler.settings.getint("DNSCACHE_SIZE") if crawler.settings.getbool("DNSCACHE_ENABLED") else 0
        )
        return cls(
            reactor,
            cache_size,
            crawler.settings.getfloat("DNS_TIMEOUT"),
            allow_private=settings.allow_private_addresses,
        )

    def getHostByName(self, name: str, timeout: Sequence[int] = ()) -> Deferred[str]:
        answer: Deferred[str] = super().getHostByName(name, timeout)
        if not self.allow_private:
            answer.addCallback(self.vet, name)
        return answer

    def vet(self, address: str, name: str) -> str:
        """``address`` when the policy allows it; else :class:`AddressRefused`."""
        reason = refusal(name, address)
        if reason is None:
            return address
        if name not in self.refused:
            log.warning("%s (at connection time)", reason)
        self.refused[name] = reason
        raise AddressRefused(reason)
