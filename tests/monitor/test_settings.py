from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.settings import load_settings

REPO = Path(__file__).resolve().parent.parent.parent


def test_toml_then_env_then_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text("fetch_timeout = 7.5\n[match]\nmin_inliers = 14\nshortlist = 3\n")
    monkeypatch.setenv("MONITOR_CONFIG", str(cfg))
    monkeypatch.setenv("MONITOR_MATCH__SHORTLIST", "9")
    s = load_settings(home=tmp_path)
    assert s.fetch_timeout == 7.5
    assert s.match.min_inliers == 14
    assert s.match.shortlist == 9  # env beats the file
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'monitor.db'}"
    assert s.blob_dir == tmp_path / "blobs"


def test_repo_config_file_is_valid_and_matches_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_CONFIG", str(REPO / "config" / "monitor.toml"))
    from_file = load_settings()
    monkeypatch.delenv("MONITOR_CONFIG")
    monkeypatch.chdir(REPO.parent)
    assert from_file.match == load_settings().match
    assert from_file.intake == load_settings().intake


def test_invalid_values_and_missing_file_are_config_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_MATCH__MIN_INLIERS", "-3")
    with pytest.raises(ConfigError, match="min_inliers"):
        load_settings()
    monkeypatch.delenv("MONITOR_MATCH__MIN_INLIERS")
    monkeypatch.setenv("MONITOR_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="not a file"):
        load_settings()
