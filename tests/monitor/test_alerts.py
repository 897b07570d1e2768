"""Alerts: severity, one alert per work x page across re-crawls, signed webhook with retries,
email through a real local SMTP server, the daily digest."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from monitor.alerts import (
    EmailChannel,
    SmtpConfig,
    WebhookChannel,
    alert_key,
    raise_alert,
    send_digest,
    severity_for,
)
from monitor.comparison import render_comparison
from monitor.findings import Finding
from tests.monitor.evidence_fakes import Scenario, build_scenario, http_server

SECRET = "s3cret-webhook-key"


def test_severity_from_verdict_and_stripping_flags() -> None:
    assert severity_for("partial", ["cropped"]) == "medium"
    assert severity_for("near_duplicate", ["resized"]) == "high"
    assert severity_for("exact", []) == "high"
    assert severity_for("partial", ["cropped", "visible_mark_cropped"]) == "high"
    assert severity_for("partial", ["visible_mark_removed", "metadata_stripped"]) == "critical"
    assert severity_for("exact", ["watermark_stripped"]) == "critical"
    assert severity_for("something_new", []) == "low"


def test_the_alert_key_is_the_work_and_the_page() -> None:
    assert alert_key("w", "https://Blog.Example.org/p.html#top") == alert_key(
        "w", "https://blog.example.org/p.html"
    )
    assert alert_key("w", "https://a.example/p") != alert_key("w", "https://a.example/q")
    assert alert_key("w", "https://a.example/p") != alert_key("v", "https://a.example/p")


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return build_scenario(tmp_path, flags=())


def _sighting(finding: Finding, n: int, **changes: Any) -> Finding:
    return replace(finding, id=f"{finding.id}-{n}", candidate_id=f"{finding.candidate_id}-{n}", **changes)


def test_one_alert_per_work_and_page_across_recrawls(scenario: Scenario) -> None:
    store = scenario.monitor.alert_store
    with http_server() as server:
        hook = WebhookChannel(f"{server.base}/hook", SECRET, attempts=1, backoff=0)
        first = raise_alert(scenario.finding, store=store, channels=[hook], work_title="Summer Palace")
        assert first.status == "created" and first.alert.severity == "medium"
        again = raise_alert(scenario.finding, store=store, channels=[hook])
        assert again.status == "duplicate" and not again.deliveries
        recrawl = raise_alert(_sighting(scenario.finding, 2), store=store, channels=[hook])
        assert recrawl.status == "seen" and not recrawl.deliveries
        assert recrawl.alert.id == first.alert.id and recrawl.alert.occurrences == 2
        worse = _sighting(scenario.finding, 3, flags=[*scenario.finding.flags, "visible_mark_removed"])
        escalated = raise_alert(worse, store=store, channels=[hook])
        assert escalated.status == "escalated" and escalated.alert.severity == "high"
        other_page = _sighting(scenario.finding, 4, page_url="https://other.example.net/copy.html")
        assert raise_alert(other_page, store=store, channels=[hook]).status == "created"
        events = [json.loads(body)["event"] for _, body in server.posts]
    assert events == ["alert.created", "alert.escalated", "alert.created"]
    assert len(store.list()) == 2


def test_the_webhook_is_signed_and_retried_with_backoff(scenario: Scenario) -> None:
    store = scenario.monitor.alert_store
    slept: list[float] = []
    with http_server() as server:
        server.post_statuses = [503, 500]
        hook = WebhookChannel(f"{server.base}/hook", SECRET, attempts=4, backoff=0.01, sleep=slept.append)
        outcome = raise_alert(scenario.finding, store=store, channels=[hook], work_title="Summer Palace")
        posts = list(server.posts)
    assert len(posts) == 3 and slept == [0.01, 0.02]
    for headers, body in posts:
        expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Monitor-Signature"] == f"sha256={expected}"
    payload = json.loads(posts[-1][1])
    assert payload["alert"]["alert_id"] == outcome.alert.id
    assert payload["finding"]["finding_id"] == scenario.finding.id
    assert payload["finding"]["image_sha256"] == scenario.finding.image_sha256
    log = store.deliveries(outcome.alert.id)
    assert [(d.attempt, d.ok, d.status_code) for d in log] == [
        (1, False, 503),
        (2, False, 500),
        (3, True, 200),
    ]
    assert all(d.channel == "webhook" for d in log)


def test_a_webhook_that_refuses_is_not_retried(scenario: Scenario) -> None:
    with http_server() as server:
        server.post_statuses = [400]
        hook = WebhookChannel(f"{server.base}/hook", SECRET, attempts=4, backoff=0)
        outcome = raise_alert(scenario.finding, store=scenario.monitor.alert_store, channels=[hook])
    assert [(d.attempt, d.ok, d.error) for d in outcome.deliveries] == [(1, False, "HTTP 400")]


def test_an_unreachable_webhook_is_logged_not_raised(scenario: Scenario) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hook = WebhookChannel(f"http://127.0.0.1:{port}/hook", SECRET, attempts=2, backoff=0, timeout=2)
    outcome = raise_alert(scenario.finding, store=scenario.monitor.alert_store, channels=[hook])
    assert [d.ok for d in outcome.deliveries] == [False, False]
    assert "ConnectError" in (outcome.deliveries[0].error or "")


# ------------------------------------------------------------------ email


class _Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Sink, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = _Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def _mail(port: int) -> EmailChannel:
    config = SmtpConfig(
        host="127.0.0.1", port=port, sender="monitor@example.org", recipients=("ada@example.org",)
    )
    return EmailChannel(config, attempts=1, backoff=0)


def test_the_email_has_text_html_and_the_picture_inline(scenario: Scenario, smtp: tuple[_Sink, int]) -> None:
    sink, port = smtp
    blobs = scenario.monitor.blobs

    def picture(f: Finding) -> bytes:
        return render_comparison(
            blobs.get(scenario.work.sha256), blobs.get(f.image_sha256), transform=f.transform, region=f.region
        )

    outcome = raise_alert(
        scenario.finding,
        store=scenario.monitor.alert_store,
        channels=[_mail(port)],
        work_title="Summer Palace",
        picture=picture,
    )
    assert [d.ok for d in outcome.deliveries] == [True]
    [(sender, rcpts, raw)] = sink.messages
    assert sender == "monitor@example.org" and rcpts == ["ada@example.org"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert "Summer Palace" in msg["Subject"] and "MEDIUM" in msg["Subject"]
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert scenario.finding.page_url in text.get_content()
    assert scenario.finding.image_sha256 in text.get_content()
    images = [part for part in msg.walk() if part.get_content_type() == "image/png"]
    assert len(images) == 1
    cid = str(images[0]["Content-ID"]).strip().strip("<>")
    assert f"cid:{cid}" in html.get_content()
    assert images[0].get_content().startswith(b"\x89PNG")


def test_the_daily_digest_sends_each_alert_once(scenario: Scenario, smtp: tuple[_Sink, int]) -> None:
    sink, port = smtp
    store = scenario.monitor.alert_store
    raise_alert(scenario.finding, store=store)
    raise_alert(_sighting(scenario.finding, 2, page_url="https://other.example.net/x.html"), store=store)
    deliveries = send_digest(store, _mail(port))
    assert len(deliveries) == 2 and all(d.ok and d.channel == "digest" for d in deliveries)
    assert len(sink.messages) == 1
    body = email.message_from_bytes(sink.messages[0][2], policy=email.policy.default)
    assert isinstance(body, EmailMessage)
    plain = body.get_body(("plain",))
    assert plain is not None and "https://other.example.net/x.html" in plain.get_content()
    assert send_digest(store, _mail(port)) == []
    assert len(sink.messages) == 1


def test_a_failed_email_is_logged(scenario: Scenario) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcome = raise_alert(scenario.finding, store=scenario.monitor.alert_store, channels=[_mail(port)])
    [delivery] = outcome.deliveries
    assert not delivery.ok and delivery.channel == "email" and delivery.error
    assert scenario.monitor.alert_store.deliveries(outcome.alert.id) == [delivery]
