"""Fetching http(s) URLs safely: the one adapter over httpx.

:class:`HttpFetcher` turns a URL into a :class:`FetchedResource` or a
:class:`~monitor.errors.FetchError`; no httpx exception ever leaves this module. Its rules:

* only ``http`` and ``https`` URLs (else :class:`~monitor.errors.FetchRefused`);
* redirects are followed by hand, at most ``max_redirects`` (5), and every hop is checked
  again (scheme and address);
* unless ``allow_private``, a host that resolves to a loopback, private, link-local,
  multicast, reserved, unspecified or otherwise non-global address (IPv4 or IPv6, including
  IPv4-mapped, 6to4 and NAT64 forms) is refused, naming the address. The check is made
  before each request and again when the connection is opened: the connection goes to the
  very address that was checked, so a DNS answer that changes in between (DNS rebinding)
  cannot reach an internal service;
* the body is streamed and abandoned as soon as it exceeds ``max_bytes``
  (:class:`~monitor.errors.FetchTooLarge`; a larger ``Content-Length`` is refused before
  reading);
* ``timeout`` bounds the whole fetch (all hops and the body), not only each network
  operation, so a server trickling bytes cannot hold a worker;
* an HTTP status >= 400 is an :class:`HttpStatusError` (a :class:`FetchError` with ``status``).

DNS goes through :func:`resolve_host` and the address policy through :func:`blocked_reason`,
both plain functions; tests pass their own ``resolver`` or an ``httpx.MockTransport``.
"""

from __future__ import annotations

import codecs
import ipaddress
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Self

import httpcore
import httpx

from monitor.errors import FetchError, FetchRefused, FetchTimeout, FetchTooLarge, HttpStatusError

if TYPE_CHECKING:
    from monitor.settings import Settings

__all__ = [
    "MAX_REDIRECTS",
    "FetchedResource",
    "HttpFetcher",
    "HttpStatusError",
    "IPAddress",
    "Resolver",
    "blocked_reason",
    "decode_html",
    "is_html",
    "resolve_host",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> addresses``; raises :class:`OSError` when the name does not resolve.
Resolver = Callable[[str, int], list[IPAddress]]

MAX_REDIRECTS = 5
_SCHEMES = ("http", "https")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


@dataclass(frozen=True)
class FetchedResource:
    """A fetched body and what the server said about it.

    ``url`` is the final URL after redirects, ``requested_url`` the one asked for; header
    names are lowercase (repeated headers joined with ", "); ``content_type`` is the media
    type alone, lowercase (``"image/jpeg"``), ``None`` when the server sent none.
    """

    url: str
    requested_url: str
    status: int
    headers: dict[str, str]
    content_type: str | None
    body: bytes = field(repr=False)
    fetched_at: datetime


# --------------------------------------------------------------------------- address policy


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` resolves to (a literal IP is returned as is, without DNS)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if family in (socket.AF_INET, socket.AF_INET6):
            address = ipaddress.ip_address(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
    return addresses


def blocked_reason(address: IPAddress) -> str | None:
    """Why a fetch must not reach ``address`` (e.g. ``"loopback"``); ``None`` for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = blocked_reason(embedded)
            return None if reason is None else f"{reason} (embedded {embedded})"
        if address in _NAT64_LOCAL:
            return "local-use NAT64"
        if address.is_site_local:
            return "site-local"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-global", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


# --------------------------------------------------------------------------- transport


class _GuardedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to the addresses ``vet`` returned for the host."""

    def __init__(self, vet: Callable[[str, int], list[IPAddress]]) -> None:
        self._vet = vet
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self._vet(host, port)  # FetchRefused passes through httpx untouched
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return self._backend.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _guarded_transport(backend: httpcore.NetworkBackend) -> httpx.HTTPTransport:
    """httpx's own transport, its connection pool rebuilt around ``backend``.

    httpx does not take a network backend, so the pool (``_pool``, same settings as httpx's
    defaults) is replaced; ``test_connection_goes_to_the_vetted_address`` pins this.
    """
    transport = httpx.HTTPTransport(retries=0)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=backend,
    )
    return transport


# --------------------------------------------------------------------------- fetcher


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _media_type(value: str | None) -> str | None:
    if not value:
        return None
    return value.split(";", 1)[0].strip().lower() or None


class HttpFetcher:
    """Fetches http(s) URLs under the rules in the module docstring. Safe to share between threads.

    ``transport`` replaces the network (``httpx.MockTransport`` in tests); ``resolver``
    replaces DNS, for the address policy and for the connection itself.
    """

    def __init__(
        self,
        user_agent: str,
        timeout: float,
        max_bytes: int,
        allow_private: bool = False,
        *,
        transport: httpx.BaseTransport | None = None,
        resolver: Resolver = resolve_host,
        max_redirects: int = MAX_REDIRECTS,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, not {timeout}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, not {max_bytes}")
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.allow_private = allow_private
        self.max_redirects = max_redirects
        self._resolver = resolver
        if transport is None:
            transport = _guarded_transport(_GuardedBackend(self._vetted_addresses))
        self._client = httpx.Client(
            transport=transport,
            headers={"User-Agent": user_agent},
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.BaseTransport | None = None
    ) -> HttpFetcher:
        return cls(
            user_agent=settings.user_agent,
            timeout=settings.fetch_timeout,
            max_bytes=settings.fetch_max_bytes,
            allow_private=settings.allow_private_addresses,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- policy

    def _vetted_addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses of ``host``, or :class:`FetchRefused` if policy forbids any of them."""
        addresses = self._resolver(host, port)
        if not self.allow_private:
            for address in addresses:
                reason = blocked_reason(address)
                if reason is not None:
                    shown = host if host == str(address) else f"{host} resolves to {address}, which"
                    raise FetchRefused(f"refused: {shown} is a {reason} address")
        return addresses

    def _check(self, url: httpx.URL, *, shown: str, requested: str) -> None:
        """Refuse ``url`` unless it is http(s) to a host the policy allows; ``shown`` names it in errors."""
        shown = shown or "''"
        if url.scheme not in _SCHEMES:
            raise FetchRefused(f"refused {shown}: only http and https URLs are fetched", item=requested)
        if not url.raw_host:
            raise FetchError(f"invalid URL {shown}: no host", item=requested)
        port = url.port or (443 if url.scheme == "https" else 80)
        if not 0 < port < 65536:
            raise FetchError(f"invalid URL {shown}: port {port}", item=requested)
        try:
            self._vetted_addresses(url.raw_host.decode("ascii"), port)
        except FetchRefused as exc:
            raise FetchRefused(f"{exc.message} (fetching {shown})", item=requested) from None
        except (OSError, UnicodeError) as exc:
            raise FetchError(f"cannot resolve the host of {shown}: {_describe(exc)}", item=requested) from exc

    # -- fetching

    def fetch(self, url: str) -> FetchedResource:
        """GET ``url`` (following redirects) and read the whole body, under the fetch rules."""
        deadline = time.monotonic() + self.timeout
        current = url
        try:
            target = httpx.URL(url)
            self._check(target, shown=url, requested=url)
            request = self._client.build_request("GET", target)
            for _ in range(self.max_redirects + 1):
                response = self._send(request, deadline, requested=url)
                try:
                    if response.next_request is None:
                        return self._read(response, deadline, requested=url)
                    request = response.next_request
                finally:
                    response.close()
                current = str(request.url)
                self._check(request.url, shown=current, requested=url)
        except FetchRefused as exc:
            if exc.item is None:  # raised by the connection guard, which knows only the host
                raise FetchRefused(f"{exc.message} (fetching {current})", item=url) from None
            raise
        except httpx.TimeoutException as exc:
            raise FetchTimeout(f"timed out after {self.timeout:g}s fetching {current}", item=url) from exc
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError, UnicodeError) as exc:
            raise FetchError(f"cannot fetch {current}: {_describe(exc)}", item=url) from exc
        raise FetchError(f"too many redirects (more than {self.max_redirects}) fetching {url}", item=url)

    def _remaining(self, deadline: float, url: object, requested: str) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchTimeout(f"timed out after {self.timeout:g}s fetching {url}", item=requested)
        return remaining

    def _send(self, request: httpx.Request, deadline: float, *, requested: str) -> httpx.Response:
        remaining = self._remaining(deadline, request.url, requested)
        request.extensions["timeout"] = httpx.Timeout(min(self.timeout, remaining)).as_dict()
        return self._client.send(request, stream=True)

    def _read(self, response: httpx.Response, deadline: float, *, requested: str) -> FetchedResource:
        url = str(response.url)
        if response.status_code >= 400:
            raise HttpStatusError(response.status_code, url, item=requested)
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchTooLarge(
                f"{url} declares {int(declared)} bytes, over the limit of {self.max_bytes}", item=requested
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchTooLarge(f"{url} is over the limit of {self.max_bytes} bytes", item=requested)
            chunks.append(chunk)
            self._remaining(deadline, url, requested)
        return FetchedResource(
            url=url,
            requested_url=requested,
            status=response.status_code,
            headers={name.lower(): value for name, value in response.headers.items()},
            content_type=_media_type(response.headers.get("content-type")),
            body=b"".join(chunks),
            fetched_at=datetime.now(UTC),
        )


# --------------------------------------------------------------------------- HTML bodies

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_UNTYPED = frozenset({None, "application/octet-stream", "binary/octet-stream"})
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def is_html(resource: FetchedResource) -> bool:
    """Whether the resource is an HTML page (by its type, or by its first bytes when untyped)."""
    if resource.content_type in _HTML_TYPES:
        return True
    if resource.content_type not in _UNTYPED:
        return False
    head = resource.body[:512].removeprefix(codecs.BOM_UTF8).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _codec(label: str | bytes | None, *, from_meta: bool = False) -> str | None:
    """Python's codec for an encoding label, as browsers read labels; ``None`` if unknown."""
    if not label:
        return None
    if isinstance(label, bytes):
        label = label.decode("ascii", "ignore")
    try:
        name = codecs.lookup(label.strip()).name
    except LookupError:
        return None
    if name in ("iso8859-1", "ascii"):
        return "cp1252"  # what browsers do with these labels
    if from_meta and name.startswith("utf-16"):
        return "utf-8"  # a <meta> readable as ASCII cannot be UTF-16
    return name


def decode_html(resource: FetchedResource) -> str:
    """The body as text: a BOM, else the header's charset, else a ``<meta>`` charset, else UTF-8.

    Undecodable bytes become U+FFFD; this never raises.
    """
    body = resource.body
    candidates: list[str | None] = [next((enc for bom, enc in _BOMS if body.startswith(bom)), None)]
    header = _CHARSET_PARAM.search(resource.headers.get("content-type", ""))
    candidates.append(_codec(header.group(1)) if header else None)
    meta = _META_CHARSET.search(body[:4096])
    candidates.append(_codec(meta.group(1), from_meta=True) if meta else None)
    for encoding in candidates:
        if encoding:
            try:
                return body.decode(encoding, errors="replace")
            except LookupError:  # a codec that is not a text encoding ("base64")
                continue
    return body.decode("utf-8", errors="replace")
