"""HttpFetcher against a real HTTP server on loopback, and the address policy. Never touches the internet."""

from __future__ import annotations

import io
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from monitor.errors import FetchError, FetchRefused, FetchTimeout, FetchTooLarge, MonitorError
from monitor.fetching import (
    FetchedResource,
    HttpFetcher,
    HttpStatusError,
    IPAddress,
    blocked_reason,
    decode_html,
    is_html,
    resolve_host,
)
from monitor.pages import extract_images
from monitor.settings import Settings

PUBLIC = "93.184.216.34"  # a public literal: allowed by policy, never connected to here
USER_AGENT = "monitor-tests/1.0 (+https://example.invalid/bot)"
MAX_BYTES = 100_000


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 60)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()
PAGE = (
    '<!DOCTYPE html><html><head><meta charset="iso-8859-1"><title>Café</title>'
    '<meta property="og:image" content="/image.png"></head>'
    '<body><p>Un café</p><img src="image.png?v=2" alt="Tasse"></body></html>'
).encode("latin-1")


# --------------------------------------------------------------------------- the test server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.seen.append((path, dict(self.headers.items())))
        try:
            self._route(path)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str, status: int = 302) -> None:
        self._send(status, headers={"Location": location})

    def _route(self, path: str) -> None:
        stop = self.server.stop
        if path == "/image.png":
            self._send(200, PNG, {"Content-Type": "image/png"})
        elif path == "/page.html":
            self._send(200, PAGE, {"Content-Type": "text/html; charset=ISO-8859-1"})
        elif path == "/untyped":
            self._send(200, b"\n  <!doctype HTML><html><p>no content type</p></html>")
        elif path == "/ua":
            self._send(200, self.headers.get("User-Agent", "").encode(), {"Content-Type": "text/plain"})
        elif path == "/host":
            self._send(200, self.headers.get("Host", "").encode(), {"Content-Type": "text/plain"})
        elif path == "/redirect":
            self._redirect("/image.png")
        elif path == "/redirect-absolute":
            self._redirect(f"http://127.0.0.1:{self.server.server_port}/page.html", 301)
        elif path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            self._redirect(f"/chain/{left - 1}" if left > 0 else "/image.png", 307)
        elif path == "/loop":
            self._redirect("/loop")
        elif path == "/redirect-to-file":
            self._redirect("file:///etc/passwd")
        elif path == "/missing":
            self._send(404, b"not here", {"Content-Type": "text/plain"})
        elif path == "/broken":
            self._send(500, b"oops", {"Content-Type": "text/plain"})
        elif path.startswith("/bytes/"):
            self._send(200, b"x" * int(path.rsplit("/", 1)[1]), {"Content-Type": "application/octet-stream"})
        elif path == "/slow":
            stop.wait(3.0)
            self._send(200, PNG, {"Content-Type": "image/png"})
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                if stop.wait(0.05):
                    break
                self.wfile.write(b"x")
                self.wfile.flush()
        elif path in ("/big", "/endless"):
            # No Content-Length: the body runs until the connection closes.
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Connection", "close")
            self.end_headers()
            chunks = 4 if path == "/big" else 20_000  # 256 KiB, or 1.25 GiB unless the client hangs up
            for _ in range(chunks):
                if stop.is_set():
                    break
                self.wfile.write(b"\xff" * 65_536)
        elif path == "/declared-huge":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
            self.wfile.write(b"\xff\xd8\xff")
            self.close_connection = True
        else:
            self._send(404)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stop = threading.Event()
        self.seen: list[tuple[str, dict[str, str]]] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up on purpose (timeouts, size limits)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def paths(self) -> list[str]:
        return [path for path, _ in self.seen]


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.stop.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


_REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tripwire: a test that would ask DNS about a name fails instead (numeric hosts still work)."""

    def numeric_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ipaddress.ip_address(host.split("%")[0] if isinstance(host, str) else host)
        except ValueError:
            raise AssertionError(f"a test tried to resolve {host!r}") from None
        return _REAL_GETADDRINFO(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)


def offline_resolver(host: str, port: int) -> list[IPAddress]:
    """Literal addresses, "localhost", and nothing else (like DNS answering NXDOMAIN)."""
    if host == "localhost":
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: Name or service not known") from None


def make_fetcher(**overrides: Any) -> HttpFetcher:
    values: dict[str, Any] = {
        "user_agent": USER_AGENT,
        "timeout": 2.0,
        "max_bytes": MAX_BYTES,
        "allow_private": True,
        "resolver": offline_resolver,
    }
    values.update(overrides)
    return HttpFetcher(**values)


@pytest.fixture
def fetcher() -> Iterator[HttpFetcher]:
    with make_fetcher() as fetcher:
        yield fetcher


# --------------------------------------------------------------------------- real server, private allowed


def test_fetch_image(server: _Server, fetcher: HttpFetcher) -> None:
    before = datetime.now(UTC)
    resource = fetcher.fetch(f"{server.base}/image.png")

    assert resource.url == resource.requested_url == f"{server.base}/image.png"
    assert resource.status == 200
    assert resource.content_type == "image/png"
    assert resource.headers["content-type"] == "image/png"
    assert resource.headers["content-length"] == str(len(PNG))
    assert resource.body == PNG
    assert before <= resource.fetched_at <= datetime.now(UTC)
    assert resource.fetched_at.utcoffset() == timedelta(0)
    assert Image.open(io.BytesIO(resource.body)).size == (32, 24)
    assert not is_html(resource)


def test_fetch_html_page_and_extract_its_images(server: _Server, fetcher: HttpFetcher) -> None:
    resource = fetcher.fetch(f"{server.base}/page.html")

    assert resource.content_type == "text/html"
    assert is_html(resource)
    html = decode_html(resource)
    assert "<title>Café</title>" in html
    assert [image.url for image in extract_images(html, resource.url)] == [
        f"{server.base}/image.png",
        f"{server.base}/image.png?v=2",
    ]


def test_untyped_html_is_sniffed(server: _Server, fetcher: HttpFetcher) -> None:
    resource = fetcher.fetch(f"{server.base}/untyped")

    assert resource.content_type is None
    assert is_html(resource)


def test_user_agent_is_sent(server: _Server, fetcher: HttpFetcher) -> None:
    assert fetcher.fetch(f"{server.base}/ua").body.decode() == USER_AGENT


def test_redirect_is_followed(server: _Server, fetcher: HttpFetcher) -> None:
    resource = fetcher.fetch(f"{server.base}/redirect")

    assert resource.requested_url == f"{server.base}/redirect"
    assert resource.url == f"{server.base}/image.png"
    assert resource.body == PNG


def test_absolute_redirect_is_followed(server: _Server, fetcher: HttpFetcher) -> None:
    resource = fetcher.fetch(f"{server.base}/redirect-absolute")
    assert resource.url == f"{server.base}/page.html"


def test_five_redirects_are_followed_six_are_not(server: _Server, fetcher: HttpFetcher) -> None:
    assert fetcher.fetch(f"{server.base}/chain/4").url == f"{server.base}/image.png"  # 5 redirects

    with pytest.raises(FetchError, match=r"too many redirects \(more than 5\)") as info:
        fetcher.fetch(f"{server.base}/chain/5")  # 6 redirects
    assert info.value.item == f"{server.base}/chain/5"


def test_redirect_loop_ends(server: _Server, fetcher: HttpFetcher) -> None:
    with pytest.raises(FetchError, match="too many redirects"):
        fetcher.fetch(f"{server.base}/loop")


def test_redirect_to_another_scheme_is_refused(server: _Server, fetcher: HttpFetcher) -> None:
    with pytest.raises(FetchRefused, match="only http and https"):
        fetcher.fetch(f"{server.base}/redirect-to-file")


@pytest.mark.parametrize(("path", "status"), [("/missing", 404), ("/broken", 500)])
def test_http_error_status(server: _Server, fetcher: HttpFetcher, path: str, status: int) -> None:
    with pytest.raises(HttpStatusError) as info:
        fetcher.fetch(f"{server.base}{path}")

    error = info.value
    assert isinstance(error, FetchError)
    assert error.status == status
    assert str(error) == f"HTTP {status} for {server.base}{path}"
    assert error.code == "http_error"
    assert error.item == f"{server.base}{path}"


def test_slow_server_times_out(server: _Server) -> None:
    with make_fetcher(timeout=0.3) as fetcher:
        started = time.monotonic()
        with pytest.raises(
            FetchTimeout, match=r"timed out after 0\.3s fetching http://127\.0\.0\.1:\d+/slow"
        ):
            fetcher.fetch(f"{server.base}/slow")
    assert time.monotonic() - started < 2.0


def test_trickling_body_times_out_as_a_whole(server: _Server) -> None:
    # A byte every 50 ms never trips a per-read timeout; the fetch's own deadline stops it.
    with make_fetcher(timeout=0.5) as fetcher:
        started = time.monotonic()
        with pytest.raises(FetchTimeout):
            fetcher.fetch(f"{server.base}/trickle")
    assert time.monotonic() - started < 2.0


def test_body_at_the_limit_is_accepted(server: _Server) -> None:
    with make_fetcher(max_bytes=1000) as fetcher:
        assert len(fetcher.fetch(f"{server.base}/bytes/1000").body) == 1000
        with pytest.raises(FetchTooLarge, match="over the limit of 1000"):
            fetcher.fetch(f"{server.base}/bytes/1001")


def test_body_without_length_over_the_limit(server: _Server, fetcher: HttpFetcher) -> None:
    with pytest.raises(FetchTooLarge, match=f"over the limit of {MAX_BYTES} bytes") as info:
        fetcher.fetch(f"{server.base}/big")
    assert info.value.code == "fetch_too_large"


def test_endless_body_is_abandoned_early(server: _Server, fetcher: HttpFetcher) -> None:
    started = time.monotonic()
    with pytest.raises(FetchTooLarge):
        fetcher.fetch(f"{server.base}/endless")
    assert time.monotonic() - started < 2.0


def test_declared_length_over_the_limit_is_refused_before_reading(
    server: _Server, fetcher: HttpFetcher
) -> None:
    with pytest.raises(FetchTooLarge, match=f"declares {10**9} bytes"):
        fetcher.fetch(f"{server.base}/declared-huge")


def test_fetcher_is_reusable_after_errors(server: _Server, fetcher: HttpFetcher) -> None:
    for path in ("/big", "/missing", "/declared-huge"):
        with pytest.raises(FetchError):
            fetcher.fetch(f"{server.base}{path}")
    assert fetcher.fetch(f"{server.base}/image.png").body == PNG


def test_connection_refused_is_a_fetch_error(fetcher: HttpFetcher) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError, match=rf"cannot fetch http://127\.0\.0\.1:{port}/x: ConnectError") as info:
        fetcher.fetch(f"http://127.0.0.1:{port}/x")
    assert type(info.value) is FetchError
    assert isinstance(info.value.__cause__, httpx.ConnectError)


# --------------------------------------------------------------------------- real server, private refused


def test_loopback_is_refused_by_default(server: _Server) -> None:
    seen = len(server.seen)
    with make_fetcher(allow_private=False) as fetcher, pytest.raises(FetchRefused) as info:
        fetcher.fetch(f"{server.base}/image.png")

    assert "127.0.0.1 is a loopback address" in str(info.value)
    assert f"{server.base}/image.png" in str(info.value)
    assert info.value.code == "fetch_refused"
    assert len(server.seen) == seen  # nothing was sent


def test_localhost_name_is_refused(server: _Server) -> None:
    with (
        make_fetcher(allow_private=False) as fetcher,
        pytest.raises(FetchRefused, match=r"localhost resolves to 127\.0\.0\.1, which is a loopback address"),
    ):
        fetcher.fetch(f"http://localhost:{server.server_port}/image.png")


def test_connection_goes_to_the_vetted_address(server: _Server) -> None:
    # The name is resolved by our resolver only: the system DNS has never heard of it.
    asked: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[IPAddress]:
        asked.append((host, port))
        return [ipaddress.ip_address("127.0.0.1")]

    with make_fetcher(resolver=resolver) as fetcher:
        resource = fetcher.fetch(f"http://images.test:{server.server_port}/host")

    assert resource.body.decode() == f"images.test:{server.server_port}"
    assert ("images.test", server.server_port) in asked


def test_dns_rebinding_between_check_and_connect_is_refused(server: _Server) -> None:
    answers = iter([[ipaddress.ip_address(PUBLIC)], [ipaddress.ip_address("127.0.0.1")]])

    def rebinding(host: str, port: int) -> list[IPAddress]:
        return next(answers)

    seen = len(server.seen)
    with (
        make_fetcher(allow_private=False, resolver=rebinding) as fetcher,
        pytest.raises(
            FetchRefused, match=r"rebind\.test resolves to 127\.0\.0\.1, which is a loopback"
        ) as info,
    ):
        fetcher.fetch(f"http://rebind.test:{server.server_port}/image.png")

    assert f"http://rebind.test:{server.server_port}/image.png" in str(info.value)
    assert len(server.seen) == seen


# --------------------------------------------------------------------------- redirects across the policy


def _mock(
    routes: dict[str, Callable[[httpx.Request], httpx.Response]], log: list[str]
) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        log.append(str(request.url))
        return routes[request.url.path](request)

    return httpx.MockTransport(handle)


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/image.png",
        "http://localhost:{port}/image.png",
        "http://[::1]:{port}/image.png",
        "http://[::ffff:127.0.0.1]:{port}/image.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/admin",
        "http://0.0.0.0:{port}/",
    ],
)
def test_redirect_from_a_public_host_to_a_private_one_is_refused(server: _Server, target: str) -> None:
    location = target.format(port=server.server_port)
    log: list[str] = []
    transport = _mock(
        {
            "/start": lambda request: httpx.Response(302, headers={"Location": location}),
            "/image.png": lambda request: httpx.Response(200, content=PNG),
        },
        log,
    )
    seen = len(server.seen)
    with (
        make_fetcher(allow_private=False, transport=transport) as fetcher,
        pytest.raises(FetchRefused) as info,
    ):
        fetcher.fetch(f"http://{PUBLIC}/start")

    assert log == [f"http://{PUBLIC}/start"]  # the second hop was never sent
    assert len(server.seen) == seen
    assert "address" in str(info.value)
    assert info.value.item == f"http://{PUBLIC}/start"


def test_redirects_between_public_hosts_are_followed() -> None:
    log: list[str] = []
    transport = _mock(
        {
            "/a": lambda request: httpx.Response(301, headers={"Location": "https://[2606:4700::1111]/b"}),
            "/b": lambda request: httpx.Response(303, headers={"Location": "/c.png"}),
            "/c.png": lambda request: httpx.Response(
                200, content=PNG, headers={"Content-Type": "Image/PNG; q=1"}
            ),
        },
        log,
    )
    with make_fetcher(allow_private=False, transport=transport) as fetcher:
        resource = fetcher.fetch(f"http://{PUBLIC}/a")

    assert log == [f"http://{PUBLIC}/a", "https://[2606:4700::1111]/b", "https://[2606:4700::1111]/c.png"]
    assert resource.url == "https://[2606:4700::1111]/c.png"
    assert resource.requested_url == f"http://{PUBLIC}/a"
    assert resource.content_type == "image/png"
    assert resource.body == PNG


def test_redirect_to_another_scheme_is_refused_with_a_mock() -> None:
    log: list[str] = []
    transport = _mock(
        {"/": lambda request: httpx.Response(302, headers={"Location": "ftp://files.example/a.jpg"})}, log
    )
    with (
        make_fetcher(transport=transport) as fetcher,
        pytest.raises(FetchRefused, match="only http and https"),
    ):
        fetcher.fetch(f"http://{PUBLIC}/")
    assert log == [f"http://{PUBLIC}/"]


def test_hostname_resolving_to_a_private_address_is_refused() -> None:
    def resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(PUBLIC), ipaddress.ip_address("10.0.0.5")]

    log: list[str] = []
    transport = _mock({"/": lambda request: httpx.Response(200)}, log)
    with (
        make_fetcher(allow_private=False, transport=transport, resolver=resolver) as fetcher,
        pytest.raises(
            FetchRefused, match=r"intranet\.test resolves to 10\.0\.0\.5, which is a private address"
        ),
    ):
        fetcher.fetch("http://intranet.test/")
    assert log == []


def test_unresolvable_host_is_a_fetch_error() -> None:
    def resolver(host: str, port: int) -> list[IPAddress]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    transport = _mock({}, [])
    with (
        make_fetcher(allow_private=False, transport=transport, resolver=resolver) as fetcher,
        pytest.raises(FetchError, match=r"cannot resolve the host of http://nowhere\.test/"),
    ):
        fetcher.fetch("http://nowhere.test/")


# --------------------------------------------------------------------------- URLs refused or invalid


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example/a.jpg",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "gopher://x/",
    ],
)
def test_non_http_schemes_are_refused(url: str) -> None:
    log: list[str] = []
    with (
        make_fetcher(transport=_mock({}, log)) as fetcher,
        pytest.raises(FetchRefused, match="only http and https"),
    ):
        fetcher.fetch(url)
    assert log == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "refused '': only http and https"),
        ("not a url", "refused not a url: only http and https"),
        ("//host.example/a.jpg", "refused //host.example/a.jpg: only http and https"),
        ("http://", "invalid URL http://: no host"),
        ("http:///a.jpg", "invalid URL http:///a.jpg: no host"),
        ("http://[::1/", "cannot fetch http://[::1/: InvalidURL"),
        (f"http://{PUBLIC}:99999/", f"invalid URL http://{PUBLIC}:99999/: port 99999"),
        ("http://exa mple.com/", "cannot resolve the host of http://exa mple.com/"),
    ],
)
def test_invalid_urls_are_fetch_errors(url: str, message: str) -> None:
    log: list[str] = []
    with make_fetcher(transport=_mock({}, log)) as fetcher, pytest.raises(FetchError) as info:
        fetcher.fetch(url)
    assert str(info.value).startswith(message)
    assert info.value.item == url
    assert log == []


# --------------------------------------------------------------------------- httpx errors never escape


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.ReadTimeout("read timed out"), FetchTimeout),
        (httpx.ConnectTimeout("connect timed out"), FetchTimeout),
        (httpx.ReadError("connection reset"), FetchError),
        (httpx.RemoteProtocolError("peer closed connection"), FetchError),
        (httpx.ProxyError("proxy"), FetchError),
        (ConnectionResetError("reset"), FetchError),
    ],
)
def test_transport_errors_are_translated(raised: Exception, expected: type[FetchError]) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise raised

    with make_fetcher(transport=httpx.MockTransport(handle)) as fetcher, pytest.raises(expected) as info:
        fetcher.fetch(f"http://{PUBLIC}/x.jpg")

    assert type(info.value) is expected
    assert f"http://{PUBLIC}/x.jpg" in str(info.value)
    assert info.value.__cause__ is raised


def test_error_while_streaming_the_body_is_translated() -> None:
    class Failing(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b"partial"
            raise httpx.ReadError("connection lost")

    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=Failing()))
    with (
        make_fetcher(transport=transport) as fetcher,
        pytest.raises(FetchError, match="ReadError: connection lost"),
    ):
        fetcher.fetch(f"http://{PUBLIC}/x.jpg")


def test_bad_location_header_is_translated() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(302, headers={"Location": "http://[bad"}))
    with make_fetcher(transport=transport) as fetcher, pytest.raises(FetchError) as info:
        fetcher.fetch(f"http://{PUBLIC}/")
    assert not isinstance(info.value.__cause__, MonitorError)


def test_redirect_without_location_is_returned_as_is() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(300, content=b"choices"))
    with make_fetcher(transport=transport) as fetcher:
        resource = fetcher.fetch(f"http://{PUBLIC}/")
    assert (resource.status, resource.body) == (300, b"choices")


def test_headers_are_lowercase_and_repeated_ones_joined() -> None:
    headers = [("Content-Type", "IMAGE/JPEG"), ("X-Thing", "a"), ("x-thing", "b")]
    transport = httpx.MockTransport(lambda request: httpx.Response(200, headers=headers, content=b"\xff\xd8"))
    with make_fetcher(transport=transport) as fetcher:
        resource = fetcher.fetch(f"http://{PUBLIC}/")
    assert resource.headers["x-thing"] == "a, b"
    assert resource.content_type == "image/jpeg"


# --------------------------------------------------------------------------- construction


def test_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        user_agent="ua/1",
        fetch_timeout=3.5,
        fetch_max_bytes=1234,
        allow_private_addresses=True,
    )
    with HttpFetcher.from_settings(settings) as fetcher:
        assert (fetcher.user_agent, fetcher.timeout, fetcher.max_bytes, fetcher.allow_private) == (
            "ua/1",
            3.5,
            1234,
            True,
        )


@pytest.mark.parametrize(("timeout", "max_bytes"), [(0, 10), (-1, 10), (1, 0)])
def test_invalid_limits_are_rejected(timeout: float, max_bytes: int) -> None:
    with pytest.raises(ValueError):
        HttpFetcher(USER_AGENT, timeout, max_bytes, False)


# --------------------------------------------------------------------------- address policy


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("100.64.0.1", "non-global"),  # carrier-grade NAT
        ("192.0.2.10", "private"),  # documentation
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("ff02::1", "multicast"),
        ("fec0::1", "site-local"),
        ("2001:db8::1", "private"),  # documentation
        ("::ffff:127.0.0.1", "loopback (embedded 127.0.0.1)"),
        ("::ffff:10.1.2.3", "private (embedded 10.1.2.3)"),
        ("::ffff:169.254.169.254", "link-local (embedded 169.254.169.254)"),
        ("2002:7f00:1::", "loopback (embedded 127.0.0.1)"),  # 6to4
        ("64:ff9b::a00:1", "private (embedded 10.0.0.1)"),  # NAT64
        ("64:ff9b:1::1", "local-use NAT64"),
    ],
)
def test_blocked_addresses(address: str, reason: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address",
    [PUBLIC, "8.8.8.8", "172.32.0.1", "2606:4700::1111", "::ffff:93.184.216.34", "64:ff9b::5db8:d822"],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_literal_addresses_are_not_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args: object, **kwargs: object) -> object:
        raise AssertionError("DNS was used")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert resolve_host(PUBLIC, 80) == [ipaddress.ip_address(PUBLIC)]
    assert resolve_host("::1", 80) == [ipaddress.ip_address("::1")]
    assert resolve_host("[::ffff:127.0.0.1]", 80) == [ipaddress.ip_address("::ffff:127.0.0.1")]


def test_public_literal_passes_the_policy_without_connecting() -> None:
    log: list[str] = []
    transport = _mock({"/photo.jpg": lambda request: httpx.Response(200, content=b"\xff\xd8")}, log)
    with make_fetcher(allow_private=False, transport=transport) as fetcher:
        assert fetcher.fetch(f"http://{PUBLIC}/photo.jpg").body == b"\xff\xd8"
    assert log == [f"http://{PUBLIC}/photo.jpg"]


@pytest.mark.parametrize(
    "host",
    ["10.0.0.1", "172.16.5.4", "192.168.0.10", "169.254.169.254", "[::1]", "[fc00::1]", "[::ffff:127.0.0.1]"],
)
def test_private_literals_are_refused_without_connecting(host: str) -> None:
    log: list[str] = []
    with (
        make_fetcher(allow_private=False, transport=_mock({}, log)) as fetcher,
        pytest.raises(FetchRefused) as info,
    ):
        fetcher.fetch(f"http://{host}/")
    assert host.strip("[]") in str(info.value)
    assert log == []


def test_private_literals_are_allowed_when_configured() -> None:
    log: list[str] = []
    transport = _mock({"/": lambda request: httpx.Response(200, content=b"ok")}, log)
    with make_fetcher(allow_private=True, transport=transport) as fetcher:
        assert fetcher.fetch("http://10.0.0.1/").body == b"ok"


# --------------------------------------------------------------------------- HTML helpers


def resource(body: bytes, content_type: str | None = None) -> FetchedResource:
    headers = {} if content_type is None else {"content-type": content_type}
    media = None if content_type is None else content_type.split(";")[0].strip().lower()
    return FetchedResource(
        url="https://site.example/",
        requested_url="https://site.example/",
        status=200,
        headers=headers,
        content_type=media,
        body=body,
        fetched_at=datetime.now(UTC),
    )


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"<p>x</p>", "text/html; charset=utf-8", True),
        (b"<?xml version='1.0'?><html/>", "application/xhtml+xml", True),
        (b"<!DOCTYPE html><html></html>", None, True),
        (b"\xef\xbb\xbf  \n<html lang=en>", "application/octet-stream", True),
        (b"<HTML><BODY>", "binary/octet-stream", True),
        (b"<!doctype html>", "image/png", False),
        (b"<!doctype html>", "text/plain", False),
        (PNG, None, False),
        (b"", None, False),
        (b"<div>fragment</div>", None, False),
    ],
)
def test_is_html(body: bytes, content_type: str | None, expected: bool) -> None:
    assert is_html(resource(body, content_type)) is expected


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("<p>café</p>".encode(), "text/html; charset=utf-8", "<p>café</p>"),
        ("<p>café</p>".encode("latin-1"), 'text/html; charset="ISO-8859-1"', "<p>café</p>"),
        (
            b"<p>\x93quoted\x94</p>",
            "text/html; charset=iso-8859-1",
            "<p>\u201cquoted\u201d</p>",
        ),  # as browsers
        (
            '<meta charset="koi8-r"><p>мир</p>'.encode("koi8-r"),
            "text/html",
            '<meta charset="koi8-r"><p>мир</p>',
        ),
        (
            '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251"><p>мир</p>'.encode(
                "cp1251"
            ),
            None,
            '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251"><p>мир</p>',
        ),
        (
            '<meta charset="utf-8"><p>café</p>'.encode("latin-1"),
            "text/html",
            '<meta charset="utf-8"><p>caf\ufffd</p>',
        ),
        ("<p>café</p>".encode("utf-8-sig"), "text/html; charset=iso-8859-1", "<p>café</p>"),  # BOM wins
        ("<p>café</p>".encode(), "text/html; charset=no-such-charset", "<p>café</p>"),
        ("<p>café</p>".encode(), "text/html; charset=base64", "<p>café</p>"),  # not a text encoding
        ('<meta charset="utf-16"><p>é</p>'.encode(), None, '<meta charset="utf-16"><p>é</p>'),
        (b"<p>\xff\xfe broken</p>", None, "<p>\ufffd\ufffd broken</p>"),
    ],
)
def test_decode_html(body: bytes, content_type: str | None, expected: str) -> None:
    assert decode_html(resource(body, content_type)) == expected


def test_header_charset_wins_over_meta() -> None:
    body = '<meta charset="utf-8"><p>café</p>'.encode("latin-1")
    assert decode_html(resource(body, "text/html; charset=latin-1")).endswith("<p>café</p>")
