"""The one typed settings object.

Read once (``load_settings()``) by the entry point and handed to the components that need a
value. Sources, highest priority first: arguments to ``Settings(...)``, environment
variables ``MONITOR_*`` (nested with ``__``, e.g. ``MONITOR_MATCH__MIN_INLIERS=12``), the
TOML file named by ``MONITOR_CONFIG`` (default: ``config/monitor.toml`` under the current
directory, when it exists), then the defaults below.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from monitor.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("config") / "monitor.toml"


class IntakeSettings(BaseModel):
    """Limits on what the image decoder accepts."""

    max_bytes: int = Field(default=50 * 1024 * 1024, ge=1, description="Largest image file accepted.")
    max_pixels: int = Field(
        default=80_000_000, ge=1, description="Largest width*height decoded (decompression bomb guard)."
    )
    work_side: int = Field(
        default=1024, ge=128, description="Longest side of the working copy used for fingerprints."
    )


class MatchSettings(BaseModel):
    """Thresholds of the matcher. Distances are in bits, ratios in 0..1."""

    pdq_max_distance: int = Field(default=80, ge=0, le=256, description="PDQ distance to consider a pair.")
    phash_max_distance: int = Field(default=16, ge=0, le=64, description="pHash distance to consider a pair.")
    pdq_min_quality: int = Field(default=50, ge=0, le=100, description="Below this, no global-hash match.")
    global_min_ncc: float = Field(default=0.75, description="Aligned similarity needed for a global match.")
    local_max_features: int = Field(default=1000, ge=50, description="ORB features kept per candidate.")
    work_max_features: int = Field(default=1500, ge=50, description="ORB features kept per registered work.")
    index_features: int = Field(default=1000, ge=16, description="Features per work in the retrieval index.")
    descriptor_max_distance: int = Field(default=64, ge=1, le=256, description="Hamming radius for votes.")
    vote_ratio: float = Field(default=0.85, gt=0, le=1, description="Nearest work vs next work, for a vote.")
    vote_neighbours: int = Field(default=4, ge=1, description="Neighbours looked at per descriptor.")
    shortlist: int = Field(default=6, ge=1, description="Works verified geometrically per candidate.")
    min_votes: int = Field(default=5, ge=1, description="Votes a work needs to be verified.")
    min_inliers: int = Field(default=10, ge=4, description="RANSAC inliers for a local match.")
    strong_inliers: int = Field(default=40, ge=4, description="Inliers that need no pixel check.")
    local_min_ncc: float = Field(default=0.45, description="Aligned similarity needed for a local match.")
    ransac_threshold: float = Field(default=0.012, gt=0, description="Reprojection error, fraction of side.")


class Settings(BaseSettings):
    """Everything configurable, in one place."""

    model_config = SettingsConfigDict(
        env_prefix="MONITOR_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    home: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("image-monitor")),
        description="Holds the SQLite database, the blob store and the keys.",
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in home.")
    redis_url: str | None = None
    user_agent: str = "image-infringement-monitor/0.1 (+https://example.invalid/monitor-bot)"
    fetch_timeout: float = Field(default=20.0, gt=0)
    fetch_max_bytes: int = Field(default=30 * 1024 * 1024, ge=1)
    allow_private_addresses: bool = Field(
        default=False, description="Let fetches reach loopback/private/link-local addresses."
    )
    intake: IntakeSettings = IntakeSettings()
    match: MatchSettings = MatchSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'monitor.db'}"

    @property
    def blob_dir(self) -> Path:
        return self.home / "blobs"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"


def _config_file() -> Path | None:
    named = os.environ.get("MONITOR_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"MONITOR_CONFIG names {path}, which is not a file")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Read the settings once; invalid values become a :class:`ConfigError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from exc
