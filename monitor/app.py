"""Composition root: build the adapters from settings, once, for the CLI, API and workers."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from monitor.blobs import BlobStore
from monitor.errors import ConfigError, MonitorError
from monitor.matching import Matcher
from monitor.settings import Settings
from monitor.works import WorkRegistry

if TYPE_CHECKING:
    from monitor.fetching import HttpFetcher
    from monitor.services import MatchInspector, RegistrationStep


@dataclass
class Monitor:
    """The running installation: settings plus the adapters built from them."""

    settings: Settings
    registry: WorkRegistry
    blobs: BlobStore

    @cached_property
    def matcher(self) -> Matcher:
        from monitor.services import load_matcher

        return load_matcher(self.registry, self.settings)

    def fetcher(self) -> HttpFetcher:
        from monitor.fetching import HttpFetcher

        return HttpFetcher.from_settings(self.settings)

    @cached_property
    def registration_steps(self) -> list[RegistrationStep]:
        """What runs on a work after it is stored, in order: provenance and dossier, visible
        mark, invisible watermark (each feature adds its step here)."""
        steps: list[RegistrationStep] = []
        return steps

    @cached_property
    def inspectors(self) -> list[MatchInspector]:
        """What looks closer at each verified match during a scan (each feature adds its
        inspector here)."""
        inspectors: list[MatchInspector] = []
        return inspectors


def open_monitor(settings: Settings) -> Monitor:
    """Create the home directory, migrate the database, and wire the adapters."""
    from monitor.registry import SqlWorkRegistry, create_engine_for, upgrade_database

    try:
        settings.home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create MONITOR_HOME at {settings.home}: {exc.strerror or exc}") from exc
    try:
        engine = create_engine_for(settings.resolved_database_url)
        upgrade_database(engine)
    except MonitorError:
        raise
    except Exception as exc:  # driver missing, bad URL: the user must see what to fix
        raise ConfigError(f"cannot open the database {settings.resolved_database_url}: {exc}") from exc
    return Monitor(settings=settings, registry=SqlWorkRegistry(engine), blobs=BlobStore(settings.blob_dir))
