"""Accounts and API keys: keys shown once and stored hashed, authentication, ownership scope."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from monitor.accounts import authenticate, create_account, hash_key, issue_key, key_id_of
from monitor.app import open_monitor
from monitor.cli import app
from monitor.errors import ConfigError, NotFound
from monitor.registry.models import ApiKeyRow
from monitor.settings import Settings


@pytest.fixture
def mon(tmp_path: Path):  # type: ignore[no-untyped-def]
    return open_monitor(Settings(home=tmp_path / "home", database_url=None, redis_url=None))


def test_keys_are_random_well_formed_and_hashed() -> None:
    one, two = issue_key(), issue_key()
    assert one.key != two.key and one.key.startswith("mk_") and len(one.key) == 3 + 12 + 1 + 43
    assert key_id_of(one.key) == one.key_id and one.key_hash == hash_key(one.key)
    assert key_id_of("mk_short") is None and key_id_of(one.key + "x") is None


def test_only_the_hash_is_stored_and_keys_authenticate(mon) -> None:  # type: ignore[no-untyped-def]
    account, key = create_account(mon.accounts, "studio")
    with mon.accounts.engine.connect() as conn:
        rows = conn.execute(select(ApiKeyRow.id, ApiKeyRow.key_hash)).all()
    assert rows == [(key_id_of(key), hash_key(key))] and key not in str(rows)
    found = authenticate(mon.accounts, key)
    assert found is not None and found[0] == account
    assert authenticate(mon.accounts, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert authenticate(mon.accounts, "") is None
    assert mon.accounts.revoke_key(found[1])
    assert authenticate(mon.accounts, key) is None
    with pytest.raises(ConfigError):
        create_account(mon.accounts, "studio")
    with pytest.raises(ConfigError):
        create_account(mon.accounts, "../bad\nname")
    with pytest.raises(NotFound):
        mon.accounts.get_account("nope")


def test_cli_account_create_prints_the_key_once_and_list_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_HOME", str(tmp_path / "home"))
    made = CliRunner().invoke(app, ["account", "create", "agency", "--json"])
    assert made.exit_code == 0, made.output
    body = json.loads(made.stdout)
    assert body["name"] == "agency" and body["api_key"].startswith("mk_")
    listed = CliRunner().invoke(app, ["account", "list", "--json"])
    assert listed.exit_code == 0 and body["api_key"] not in listed.stdout
    assert json.loads(listed.stdout)["works"] == 0
    again = CliRunner().invoke(app, ["account", "create", "agency"])
    assert again.exit_code == 2 and "already exists" in again.output
    extra = CliRunner().invoke(app, ["account", "key", "agency", "--json"])
    assert extra.exit_code == 0 and json.loads(extra.stdout)["api_key"] != body["api_key"]
