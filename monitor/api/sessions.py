"""Dashboard sessions: a signed cookie naming the account and the API key used to log in.

The cookie is ``<account id>.<key id>.<expiry>.<HMAC-SHA256>``, keyed with the session secret
(``api.session_secret``, or a random secret generated once under ``MONITOR_HOME/keys`` so that
several API processes on one home agree). Revoking the key ends its sessions: every request
checks the key is still live. Forms carry a CSRF token derived from the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import ConfigError
from monitor.settings import Settings

COOKIE = "monitor_session"


def session_secret(settings: Settings) -> bytes:
    """The configured secret, or the one kept in ``home/keys/session.key`` (made on first use)."""
    if settings.api.session_secret is not None:
        return settings.api.session_secret.get_secret_value().encode()
    path = settings.home / "keys" / "session.key"
    try:
        if path.is_file():
            return path.read_bytes().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_hex(32).encode()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secret)
        try:
            os.link(tmp, path)  # first writer wins; others read the winner's secret
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        return Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot keep the session secret at {path}: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class Session:
    account_id: str
    key_id: str
    expires: int


class SessionSigner:
    def __init__(self, secret: bytes, *, lifetime_seconds: float) -> None:
        self._secret = secret
        self.lifetime = int(lifetime_seconds)

    def _mac(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def issue(self, account_id: str, key_id: str, *, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + self.lifetime)
        body = f"{account_id}.{key_id}.{expires}"
        return f"{body}.{self._mac(body)}"

    def read(self, cookie: str | None, *, now: float | None = None) -> Session | None:
        if not cookie or cookie.count(".") != 3:
            return None
        account_id, key_id, expires, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(f"{account_id}.{key_id}.{expires}")):
            return None
        try:
            until = int(expires)
        except ValueError:
            return None
        if until < (now if now is not None else time.time()):
            return None
        return Session(account_id, key_id, until)

    def csrf_token(self, cookie: str) -> str:
        return self._mac(f"csrf:{cookie}")[:32]

    def check_csrf(self, cookie: str | None, token: str | None) -> bool:
        return bool(cookie and token) and hmac.compare_digest(self.csrf_token(cookie or ""), token or "")
