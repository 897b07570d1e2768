from __future__ import annotations

from pathlib import Path

from monitor.api.sessions import SessionSigner, session_secret
from tests.monitor.api.conftest import make_settings


def test_session_cookies_are_signed_and_expire() -> None:
    signer = SessionSigner(b"s" * 32, lifetime_seconds=60)
    cookie = signer.issue("acc", "key", now=1000)
    session = signer.read(cookie, now=1030)
    assert session is not None and (session.account_id, session.key_id) == ("acc", "key")
    assert signer.read(cookie, now=1061) is None  # expired
    account, key, expires, mac = cookie.split(".")
    assert signer.read(f"other.{key}.{expires}.{mac}", now=1030) is None  # altered
    assert signer.read(f"{account}.{key}.{int(expires) + 999}.{mac}", now=1030) is None
    assert SessionSigner(b"t" * 32, lifetime_seconds=60).read(cookie, now=1030) is None  # other secret
    assert signer.check_csrf(cookie, signer.csrf_token(cookie))
    assert not signer.check_csrf(cookie, signer.csrf_token(signer.issue("acc", "key", now=1001)))
    assert not signer.check_csrf(None, "x")


def test_the_generated_secret_is_kept_and_private(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    first = session_secret(settings)
    assert session_secret(settings) == first and len(first) == 64
    assert (settings.home / "keys" / "session.key").stat().st_mode & 0o077 == 0
