"""Alerts: one per finding (work × page), graded, delivered to the owner's channels.

* :func:`severity_for` grades a finding from its verdict and flags; flags that show the
  attribution was stripped (watermark, visible mark, copyright metadata) raise the grade.
* :func:`raise_alert` turns a :class:`~monitor.findings.Finding` into an :class:`Alert`. The
  alert is keyed by the work and the page (:func:`alert_key`), so the same reuse seen again
  by a later crawl (a new candidate, a new finding) adds a sighting to the existing alert
  instead of a new one; running it twice for the same finding changes nothing. Channels are
  notified when the alert is created and when a later sighting raises its severity.
* Channels: :class:`WebhookChannel` (JSON body signed with HMAC-SHA256 in
  ``X-Monitor-Signature``, retries with exponential backoff), :class:`EmailChannel` (SMTP,
  text and HTML with the side-by-side picture inline as a CID image). The in-app inbox is the
  alert store itself (``monitor alerts``, ``monitor alerts ack``). Every attempt of every
  channel is written to the delivery log. :func:`send_digest` mails one daily summary of the
  alerts not yet digested.

The store is the :class:`AlertStore` port (SQL in ``monitor.registry.alerts``).
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import html
import json
import logging
import smtplib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, MIMEPart
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

import httpx

from monitor.errors import ConfigError, MonitorError
from monitor.findings import Finding

if TYPE_CHECKING:
    from monitor.settings import AlertSettings

log = logging.getLogger(__name__)

__all__ = [
    "SEVERITIES",
    "STRIPPING_FLAGS",
    "Alert",
    "AlertChannel",
    "AlertMessage",
    "AlertOutcome",
    "AlertStore",
    "Delivery",
    "EmailChannel",
    "NewAlert",
    "WebhookChannel",
    "alert_key",
    "channels_from_settings",
    "raise_alert",
    "send_digest",
    "severity_for",
    "sign_body",
    "unalerted_findings",
]

#: Severity levels, lowest first.
SEVERITIES = ("low", "medium", "high", "critical")
#: Flags that show the reuser removed the owner's attribution.
STRIPPING_FLAGS = frozenset(
    {"watermark_stripped", "visible_mark_cropped", "visible_mark_removed", "metadata_stripped"}
)
_BASE_SEVERITY = {"exact": "high", "near_duplicate": "high", "partial": "medium"}

SIGNATURE_HEADER = "X-Monitor-Signature"
DIGEST_CHANNEL = "digest"


def severity_rank(severity: str) -> int:
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ConfigError(f"unknown severity {severity!r}: use one of {', '.join(SEVERITIES)}") from None


def severity_for(verdict: str, flags: Sequence[str]) -> str:
    """``exact`` and ``near_duplicate`` copies are ``high``, ``partial`` ones ``medium``; one kind
    of stripped attribution raises that by one level, two or more kinds by two (up to ``critical``)."""
    level = SEVERITIES.index(_BASE_SEVERITY.get(verdict, "low"))
    stripped = len(STRIPPING_FLAGS.intersection(flags))
    level += min(stripped, 2)
    return SEVERITIES[min(level, len(SEVERITIES) - 1)]


def alert_key(work_id: str, where: str) -> str:
    """The identity of an alert: the work and the page (or the image URL when there is no page).
    The URL's fragment is dropped and its scheme and host lowercased."""
    parts = urlsplit(where.strip())
    normal = parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower(), fragment="").geturl()
    return hashlib.sha256(f"{work_id}\n{normal}".encode()).hexdigest()[:32]


def sign_body(body: bytes, secret: str) -> str:
    """The ``X-Monitor-Signature`` value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# ------------------------------------------------------------------ records


@dataclass(frozen=True, kw_only=True)
class NewAlert:
    key: str
    finding_id: str
    work_id: str
    candidate_id: str
    page_url: str | None
    image_url: str
    image_sha256: str
    verdict: str
    similarity: float
    flags: list[str]
    severity: str
    summary: str


@dataclass(frozen=True, kw_only=True)
class Alert(NewAlert):
    """An alert in the inbox. ``finding_id`` is the latest sighting; ``occurrences`` counts them."""

    id: str
    first_finding_id: str
    created_at: datetime
    last_seen_at: datetime
    occurrences: int = 1
    acked_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "alert_id": self.id,
            "severity": self.severity,
            "work_id": self.work_id,
            "finding_id": self.finding_id,
            "first_finding_id": self.first_finding_id,
            "candidate_id": self.candidate_id,
            "page_url": self.page_url,
            "image_url": self.image_url,
            "image_sha256": self.image_sha256,
            "verdict": self.verdict,
            "similarity": round(float(self.similarity), 4),
            "flags": list(self.flags),
            "summary": self.summary,
            "occurrences": self.occurrences,
            "created_at": self.created_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
            "acked_at": self.acked_at.isoformat() if self.acked_at else None,
        }


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One attempt at delivering an alert on a channel (the delivery log)."""

    alert_id: str
    channel: str
    event: str
    attempt: int
    ok: bool
    at: datetime
    target: str | None = None
    status_code: int | None = None
    error: str | None = None
    duration_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "channel": self.channel,
            "event": self.event,
            "attempt": self.attempt,
            "ok": self.ok,
            "at": self.at.isoformat(),
            "target": self.target,
            "status_code": self.status_code,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }


class AlertStore(Protocol):
    """Alerts, the findings that raised them, and the delivery log."""

    def create(self, alert: NewAlert, *, at: datetime) -> tuple[Alert, bool]:
        """Insert the alert, or return the one with the same ``key`` (``created=False``), also
        when another process inserts it at the same time."""
        ...

    def attach(self, alert_id: str, finding_id: str, *, at: datetime) -> bool:
        """Record that ``finding_id`` is a sighting of the alert; False when it already was."""
        ...

    def update_sighting(
        self,
        alert_id: str,
        *,
        finding_id: str,
        verdict: str,
        similarity: float,
        flags: list[str],
        severity: str,
        summary: str,
        at: datetime,
    ) -> Alert:
        """A later sighting: latest finding, flags and severity, one more occurrence. A raised
        severity puts the alert back among the unacknowledged."""
        ...

    def get(self, alert_id: str) -> Alert:
        """The alert, or :class:`~monitor.errors.NotFound`."""
        ...

    def list(
        self, *, since: datetime | None = None, unacked: bool = False, limit: int | None = None
    ) -> builtins.list[Alert]:
        """Newest sighting first; ``since`` compares with the last sighting."""
        ...

    def ack(self, alert_id: str, *, at: datetime) -> Alert:
        """Acknowledge (idempotent: the first acknowledgement time is kept)."""
        ...

    def add_delivery(self, delivery: Delivery) -> None: ...

    def deliveries(self, alert_id: str) -> builtins.list[Delivery]:
        """Oldest first."""
        ...

    def not_delivered(self, channel: str, *, limit: int | None = None) -> builtins.list[Alert]:
        """Alerts without a successful delivery on ``channel`` (oldest first)."""
        ...


# ------------------------------------------------------------------ channels


@dataclass(frozen=True)
class AlertMessage:
    """What a channel sends: the alert, its finding, the work's title, the side-by-side picture."""

    event: str  # "alert.created" | "alert.escalated"
    alert: Alert
    finding: Finding
    work_title: str | None = None
    picture: bytes | None = field(default=None, repr=False)  # comparison.png

    def payload(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "alert": self.alert.to_json(),
            "finding": self.finding.to_json(),
            "work_title": self.work_title,
        }


class AlertChannel(Protocol):
    """Delivers one message; returns every attempt it made (the last one says whether it worked).
    It never raises for a delivery failure: failures are attempts with ``ok=False``."""

    name: str

    def send(self, message: AlertMessage) -> list[Delivery]: ...


def _retryable_status(status: int) -> bool:
    return status >= 500 or status in (408, 425, 429)


class WebhookChannel:
    """POSTs the message as JSON, signed: ``X-Monitor-Signature: sha256=<hex HMAC-SHA256 of the
    body>`` with the shared secret. Connection errors, timeouts, 5xx, 408, 425 and 429 are
    retried after ``backoff``, ``2 × backoff``, ... seconds; other answers are final."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        attempts: int = 4,
        backoff: float = 1.0,
        timeout: float = 10.0,
        user_agent: str = "image-infringement-monitor",
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"the webhook URL must be http(s), not {url!r}")
        if not secret:
            raise ConfigError("alerts.webhook.secret is required when alerts.webhook.url is set")
        if attempts < 1:
            raise ConfigError("alerts.webhook.attempts must be >= 1")
        self.url = url
        self._secret = secret
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.user_agent = user_agent
        self._transport = transport
        self._sleep = sleep
        self._clock = clock

    def body(self, message: AlertMessage) -> bytes:
        return json.dumps(
            message.payload(), sort_keys=True, ensure_ascii=False, separators=(",", ":")
        ).encode()

    def send(self, message: AlertMessage) -> list[Delivery]:
        body = self.body(message)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
            SIGNATURE_HEADER: sign_body(body, self._secret),
            "X-Monitor-Event": message.event,
            "X-Monitor-Alert": message.alert.id,
        }
        attempts: list[Delivery] = []
        with httpx.Client(
            transport=self._transport, timeout=self.timeout, follow_redirects=False, trust_env=False
        ) as client:
            for attempt in range(1, self.attempts + 1):
                started = time.monotonic()
                at = self._clock()
                status: int | None = None
                error: str | None = None
                try:
                    response = client.post(self.url, content=body, headers=headers)
                    status = response.status_code
                    ok = 200 <= status < 300
                    retry = not ok and _retryable_status(status)
                    if not ok:
                        error = f"HTTP {status}"
                except httpx.HTTPError as exc:
                    ok, retry, error = False, True, f"{type(exc).__name__}: {exc}"
                attempts.append(
                    Delivery(
                        alert_id=message.alert.id,
                        channel=self.name,
                        event=message.event,
                        attempt=attempt,
                        ok=ok,
                        at=at,
                        target=self.url,
                        status_code=status,
                        error=error,
                        duration_ms=int((time.monotonic() - started) * 1000),
                    )
                )
                if ok or not retry or attempt == self.attempts:
                    break
                self._sleep(self.backoff * 2 ** (attempt - 1))
        return attempts


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False
    timeout: float = 20.0


class EmailChannel:
    """Sends each message as one email: a plain-text part and an HTML part that shows the
    side-by-side picture inline (``multipart/related``, ``cid:``). Connection errors and
    transient (4xx) SMTP answers are retried after ``backoff``, ``2 × backoff``, ... seconds."""

    name = "email"

    def __init__(
        self,
        config: SmtpConfig,
        *,
        attempts: int = 3,
        backoff: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not config.recipients:
            raise ConfigError("alerts.email.to names nobody")
        self.config = config
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._sleep = sleep
        self._clock = clock

    # -- composing

    def compose(self, message: AlertMessage) -> EmailMessage:
        alert = message.alert
        where = alert.page_url or alert.image_url
        title = message.work_title or alert.work_id
        subject = f"[monitor] {alert.severity.upper()}: {title} found on {urlsplit(where).netloc or where}"
        text = _alert_text(message)
        body_html = _alert_html(message, cid=None)
        msg = self._envelope(subject)
        msg.set_content(text)
        if message.picture:
            cid = make_msgid(idstring="comparison", domain="monitor.invalid")
            msg.add_alternative(_alert_html(message, cid=cid[1:-1]), subtype="html")
            html_part = cast(MIMEPart, msg.get_payload()[1])  # type: ignore[index]
            html_part.add_related(
                message.picture, maintype="image", subtype="png", cid=cid, filename="comparison.png"
            )
        else:
            msg.add_alternative(body_html, subtype="html")
        return msg

    def compose_digest(self, alerts: Sequence[Alert], *, day: str) -> EmailMessage:
        msg = self._envelope(f"[monitor] daily digest {day}: {len(alerts)} alert(s)")
        lines = [f"{len(alerts)} alert(s) not yet in a digest:", ""]
        rows = []
        for a in alerts:
            where = a.page_url or a.image_url
            lines.append(f"- {a.severity.upper():8} {a.work_id}  {a.verdict}  {where}  ({a.summary})")
            e = html.escape
            rows.append(
                f"<tr><td>{e(a.severity)}</td><td>{e(a.work_id)}</td><td>{e(a.verdict)}</td>"
                f'<td><a href="{e(where)}">{e(where)}</a></td><td>{e(a.summary)}</td></tr>'
            )
        msg.set_content("\n".join(lines) + "\n")
        msg.add_alternative(
            "<html><body><p>"
            + html.escape(lines[0])
            + '</p><table border="1" cellpadding="4"><tr><th>severity</th><th>work</th><th>verdict</th>'
            "<th>where</th><th>summary</th></tr>" + "".join(rows) + "</table></body></html>",
            subtype="html",
        )
        return msg

    def _envelope(self, subject: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = subject
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.config.recipients)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="monitor.invalid")
        return msg

    # -- sending

    def send(self, message: AlertMessage) -> list[Delivery]:
        return self._deliver(self.compose(message), alert_ids=[message.alert.id], event=message.event)

    def send_digest(self, alerts: Sequence[Alert], *, day: str) -> list[Delivery]:
        return self._deliver(
            self.compose_digest(alerts, day=day),
            alert_ids=[a.id for a in alerts],
            event="digest",
            channel="digest",
        )

    def _deliver(
        self, msg: EmailMessage, *, alert_ids: Sequence[str], event: str, channel: str | None = None
    ) -> list[Delivery]:
        c = self.config
        target = f"smtp://{c.host}:{c.port}"
        out: list[Delivery] = []
        for attempt in range(1, self.attempts + 1):
            started = time.monotonic()
            at = self._clock()
            error: str | None = None
            code: int | None = None
            retry = False
            try:
                self._send_once(msg)
                ok = True
            except smtplib.SMTPResponseException as exc:
                ok, code = False, int(exc.smtp_code)
                error = f"SMTP {exc.smtp_code}: {_smtp_text(exc.smtp_error)}"
                retry = 400 <= code < 500
            except smtplib.SMTPRecipientsRefused as exc:
                ok, error = False, f"recipients refused: {', '.join(sorted(exc.recipients))}"
            except (smtplib.SMTPException, OSError) as exc:
                ok, retry, error = False, True, f"{type(exc).__name__}: {exc}"
            duration = int((time.monotonic() - started) * 1000)
            for alert_id in alert_ids:
                out.append(
                    Delivery(
                        alert_id=alert_id,
                        channel=channel or self.name,
                        event=event,
                        attempt=attempt,
                        ok=ok,
                        at=at,
                        target=target,
                        status_code=code,
                        error=error,
                        duration_ms=duration,
                    )
                )
            if ok or not retry or attempt == self.attempts:
                break
            self._sleep(self.backoff * 2 ** (attempt - 1))
        return out

    def _send_once(self, msg: EmailMessage) -> None:
        c = self.config
        smtp_class = smtplib.SMTP_SSL if c.ssl else smtplib.SMTP
        with smtp_class(c.host, c.port, timeout=c.timeout) as smtp:
            if c.starttls and not c.ssl:
                smtp.starttls()
            if c.user:
                smtp.login(c.user, c.password or "")
            smtp.send_message(msg, from_addr=c.sender, to_addrs=list(c.recipients))


def _smtp_text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _explain(finding: Finding) -> list[str]:
    d = finding.details
    parts = [f"verdict {finding.verdict}, similarity {finding.similarity:.2f}"]
    if d.get("inliers") is not None:
        parts.append(f"{d['inliers']} matching keypoints")
    if d.get("coverage_work") is not None:
        parts.append(f"{float(d['coverage_work']) * 100:.0f}% of the work shown")
    return parts


def _alert_text(message: AlertMessage) -> str:
    a, f = message.alert, message.finding
    lines = [
        f"Severity: {a.severity}",
        f"Work: {message.work_title or ''} ({a.work_id})",
        f"Page: {a.page_url or '-'}",
        f"Image: {a.image_url}",
        f"Image SHA-256: {a.image_sha256}",
        "Match: " + "; ".join(_explain(f)),
        f"Flags: {', '.join(a.flags) or '-'}",
        f"Seen {a.occurrences} time(s), first {a.created_at.isoformat()}, last {a.last_seen_at.isoformat()}",
        f"Finding: {f.id}   (monitor export {f.id} --out evidence.zip)",
    ]
    return "\n".join(lines) + "\n"


def _alert_html(message: AlertMessage, *, cid: str | None) -> str:
    a, f = message.alert, message.finding
    e = html.escape
    page = f'<a href="{e(a.page_url)}">{e(a.page_url)}</a>' if a.page_url else "-"
    rows = [
        ("Severity", f"<b>{e(a.severity.upper())}</b>"),
        ("Work", f"{e(message.work_title or '')} ({e(a.work_id)})"),
        ("Page", page),
        ("Image", f'<a href="{e(a.image_url)}">{e(a.image_url)}</a>'),
        ("Image SHA-256", f"<code>{e(a.image_sha256)}</code>"),
        ("Match", e("; ".join(_explain(f)))),
        ("Flags", e(", ".join(a.flags) or "-")),
        ("Finding", f"<code>{e(f.id)}</code>"),
    ]
    table = "".join(f'<tr><th align="left">{k}</th><td>{v}</td></tr>' for k, v in rows)
    picture = (
        f'<p><img src="cid:{e(cid)}" alt="the registered work beside the found copy"></p>' if cid else ""
    )
    return f"<html><body><h2>{e(a.summary)}</h2><table>{table}</table>{picture}</body></html>"


# ------------------------------------------------------------------ the use case


@dataclass
class AlertOutcome:
    """What :func:`raise_alert` did: ``status`` is ``created``, ``escalated``, ``seen`` (a new
    sighting, no notification) or ``duplicate`` (this finding was already counted)."""

    alert: Alert
    status: str
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def notified(self) -> bool:
        return self.status in ("created", "escalated")

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "alert": self.alert.to_json(),
            "deliveries": [d.to_json() for d in self.deliveries],
        }


def summarise(finding: Finding, work_title: str | None = None) -> str:
    what = f"'{work_title}'" if work_title else f"work {finding.work_id}"
    where = urlsplit(finding.page_url or finding.image_url).netloc or (finding.page_url or finding.image_url)
    stripped = sorted(STRIPPING_FLAGS.intersection(finding.flags))
    tail = f", attribution stripped ({', '.join(stripped)})" if stripped else ""
    return f"{what} found on {where}: {finding.verdict.replace('_', ' ')}{tail}"


def raise_alert(
    finding: Finding,
    *,
    store: AlertStore,
    channels: Sequence[AlertChannel] = (),
    work_title: str | None = None,
    picture: Callable[[Finding], bytes | None] | None = None,
    min_severity: str = "low",
    now: datetime | None = None,
) -> AlertOutcome:
    """Record the alert for ``finding`` and notify ``channels`` when it is new or got worse.

    Idempotent: the same finding twice is a ``duplicate`` and sends nothing. ``picture`` makes
    the side-by-side image for the email (only called when a channel will be notified); a
    failure to draw it is logged and the alert goes out without it.
    """
    now = now or datetime.now(UTC)
    severity = severity_for(finding.verdict, finding.flags)
    summary = summarise(finding, work_title)
    new = NewAlert(
        key=alert_key(finding.work_id, finding.page_url or finding.image_url),
        finding_id=finding.id,
        work_id=finding.work_id,
        candidate_id=finding.candidate_id,
        page_url=finding.page_url,
        image_url=finding.image_url,
        image_sha256=finding.image_sha256,
        verdict=finding.verdict,
        similarity=float(finding.similarity),
        flags=sorted(finding.flags),
        severity=severity,
        summary=summary,
    )
    alert, created = store.create(new, at=now)
    if created:
        status = "created"
    elif not store.attach(alert.id, finding.id, at=now):
        return AlertOutcome(alert, "duplicate")
    else:
        escalated = severity_rank(severity) > severity_rank(alert.severity)
        alert = store.update_sighting(
            alert.id,
            finding_id=finding.id,
            verdict=finding.verdict,
            similarity=float(finding.similarity),
            flags=sorted(finding.flags),
            severity=severity if escalated else alert.severity,
            summary=summary,
            at=now,
        )
        status = "escalated" if escalated else "seen"
    outcome = AlertOutcome(alert, status)
    if not outcome.notified or severity_rank(alert.severity) < severity_rank(min_severity) or not channels:
        return outcome
    image: bytes | None = None
    if picture is not None:
        try:
            image = picture(finding)
        except MonitorError as exc:
            log.warning("alert %s goes out without its picture: %s", alert.id, exc)
    message = AlertMessage(f"alert.{status}", alert, finding, work_title=work_title, picture=image)
    for channel in channels:
        attempts = channel.send(message)
        for delivery in attempts:
            store.add_delivery(delivery)
        outcome.deliveries.extend(attempts)
    return outcome


class UnalertedFindings(Protocol):
    """Findings that no alert counts yet (implemented by the SQL alert store)."""

    def findings_without_alert(self, older_than: datetime, *, limit: int) -> list[str]: ...


def unalerted_findings(
    store: UnalertedFindings, *, after: float, now: datetime | None = None, limit: int = 500
) -> list[str]:
    """Ids of findings without an alert ``after`` seconds after they were found: their alert
    task was lost (a broker restart, a worker that died, an embedded crawl that stopped).
    :func:`raise_alert` is idempotent, so alerting them again is harmless."""
    now = now or datetime.now(UTC)
    return store.findings_without_alert(now - timedelta(seconds=after), limit=limit)


def send_digest(
    store: AlertStore, channel: EmailChannel, *, now: datetime | None = None, limit: int = 500
) -> list[Delivery]:
    """Mail one summary of every alert not yet in a successful digest; ``[]`` when there is none.
    A failed digest is retried by the next run (its alerts stay undigested)."""
    now = now or datetime.now(UTC)
    alerts = store.not_delivered(DIGEST_CHANNEL, limit=limit)
    if not alerts:
        return []
    deliveries = channel.send_digest(alerts, day=now.date().isoformat())
    for delivery in deliveries:
        store.add_delivery(delivery)
    return deliveries


def channels_from_settings(
    settings: AlertSettings, *, user_agent: str = "image-infringement-monitor"
) -> list[AlertChannel]:
    """The channels the settings turn on (the inbox needs none: it is the store). With the daily
    digest on, email goes out in the digest only."""
    channels: list[AlertChannel] = []
    hook = settings.webhook
    if hook.url:
        secret = hook.secret.get_secret_value() if hook.secret else ""
        channels.append(
            WebhookChannel(
                hook.url,
                secret,
                attempts=hook.attempts,
                backoff=hook.backoff,
                timeout=hook.timeout,
                user_agent=user_agent,
            )
        )
    email = email_channel_from_settings(settings)
    if email is not None and not settings.digest:
        channels.append(email)
    return channels


def email_channel_from_settings(settings: AlertSettings) -> EmailChannel | None:
    mail = settings.email
    if not mail.host:
        return None
    if not mail.sender:
        raise ConfigError("alerts.email.sender is required when alerts.email.host is set")
    config = SmtpConfig(
        host=mail.host,
        port=mail.port,
        sender=mail.sender,
        recipients=tuple(mail.to),
        user=mail.user,
        password=mail.password.get_secret_value() if mail.password else None,
        starttls=mail.starttls,
        ssl=mail.ssl,
        timeout=mail.timeout,
    )
    return EmailChannel(config, attempts=mail.attempts, backoff=mail.backoff)
