"""Composition root: build the adapters from settings, once, for the CLI, API and workers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from monitor.blobs import BlobStore
from monitor.errors import ConfigError, MonitorError
from monitor.matching import Matcher
from monitor.settings import Settings
from monitor.works import WorkRegistry

if TYPE_CHECKING:
    from monitor.alerts import AlertChannel, AlertOutcome
    from monitor.discovery import AnalysisServices
    from monitor.dossier import RfcTimestamper
    from monitor.evidence import EvidenceSources
    from monitor.fetching import HttpFetcher
    from monitor.findings import Finding
    from monitor.recheck import RecheckOutcome
    from monitor.registry import SqlAccountStore, SqlAlertStore, SqlDiscoveryStore, SqlDossierStore
    from monitor.services import LiveMatcher, MatchInspector, RegistrationStep
    from monitor.signing import InstallationKey
    from monitor.watermark import CopyRegistry


@dataclass
class Monitor:
    """The running installation: settings plus the adapters built from them."""

    settings: Settings
    registry: WorkRegistry
    blobs: BlobStore

    @cached_property
    def live_matcher(self) -> LiveMatcher:
        from monitor.services import LiveMatcher

        return LiveMatcher(self.registry, self.settings)

    @property
    def matcher(self) -> Matcher:
        """The matcher over every registered work: built on first use, then brought up to date
        with the works registered since (in memory) on each use."""
        return self.live_matcher.get()

    @cached_property
    def discovery(self) -> SqlDiscoveryStore:
        """Sources, crawls, candidates, analyses and findings, in the registry's database."""
        from monitor.registry import SqlDiscoveryStore

        engine = getattr(self.registry, "engine", None)
        if engine is None:
            raise ConfigError("discovery needs the SQL registry (open the monitor with open_monitor)")
        return SqlDiscoveryStore(engine)

    @cached_property
    def dossiers(self) -> SqlDossierStore:
        """Authorship dossiers and attribution records, in the registry's database."""
        from monitor.registry import SqlDossierStore

        engine = getattr(self.registry, "engine", None)
        if engine is None:
            raise ConfigError("the dossier needs the SQL registry (open the monitor with open_monitor)")
        return SqlDossierStore(engine)

    @cached_property
    def timestamper(self) -> RfcTimestamper | None:
        """The RFC 3161 client when ``tsa_url`` (``MONITOR_TSA_URL``) is set."""
        from monitor.dossier import RfcTimestamper

        return RfcTimestamper.from_settings(self.settings)

    @cached_property
    def copies(self) -> CopyRegistry:
        """Invisibly marked publication copies (issue 3), in the registry's database."""
        from monitor.registry import SqlCopyRegistry

        engine = getattr(self.registry, "engine", None)
        if engine is None:
            raise ConfigError("marked copies need the SQL registry (open the monitor with open_monitor)")
        return SqlCopyRegistry(engine)

    # -- accounts, API keys and jobs (issue 7)

    @cached_property
    def accounts(self) -> SqlAccountStore:
        """Accounts, API keys, ownership links and jobs, in the registry's database."""
        from monitor.registry import SqlAccountStore

        engine = getattr(self.registry, "engine", None)
        if engine is None:
            raise ConfigError("accounts need the SQL registry (open the monitor with open_monitor)")
        return SqlAccountStore(engine)

    # -- alerts, evidence, rechecks (issue 6)

    @cached_property
    def alert_store(self) -> SqlAlertStore:
        """Alerts, their delivery log and evidence exports, in the registry's database."""
        from monitor.registry import SqlAlertStore

        engine = getattr(self.registry, "engine", None)
        if engine is None:
            raise ConfigError("alerts need the SQL registry (open the monitor with open_monitor)")
        return SqlAlertStore(engine)

    @cached_property
    def signing_key(self) -> InstallationKey:
        """The installation's Ed25519 key (created under MONITOR_HOME on first use)."""
        from monitor.signing import InstallationKey

        return InstallationKey.load_or_create(self.settings.home)

    @cached_property
    def alert_channels(self) -> list[AlertChannel]:
        """Webhook and email, as the settings turn them on (the inbox is the alert store)."""
        from monitor.alerts import channels_from_settings

        return channels_from_settings(self.settings.alerts, user_agent=self.settings.user_agent)

    def analysis_services(self, matcher: Callable[[], Matcher] | None = None) -> AnalysisServices:
        """What :func:`monitor.discovery.analyse_candidates` takes, from this installation;
        ``matcher`` gets the matcher (default: this monitor's, built once)."""
        from monitor.discovery import AnalysisServices

        return AnalysisServices(
            store=self.discovery,
            blobs=self.blobs,
            matcher=matcher if matcher is not None else lambda: self.matcher,
            registry=self.registry,
            settings=self.settings,
            inspectors=self.inspectors,
        )

    def evidence_sources(self) -> EvidenceSources:
        from monitor.dossier import load_trusted_tsa
        from monitor.evidence import Contact, EvidenceSources, HomeCaptures
        from monitor.evidence_sources import AttributionEvidence, DossierEvidence

        contact = self.settings.alerts.contact
        return EvidenceSources(
            findings=self.discovery,
            registry=self.registry,
            blobs=self.blobs,
            key=self.signing_key,
            dossiers=DossierEvidence(self.dossiers, self.blobs, trusted_tsa=load_trusted_tsa(self.settings)),
            published=AttributionEvidence(self.dossiers, self.blobs, self.copies),
            captures=HomeCaptures(self.settings.home),
            contact=Contact(contact.name, contact.email, contact.address, contact.phone),
            max_pixels=self.settings.intake.max_pixels,
        )

    def comparison_picture(self, finding: Finding) -> bytes | None:
        """``comparison.png`` of a finding (for the alert email)."""
        from monitor.comparison import render_comparison
        from monitor.evidence_sources import AttributionEvidence

        work = self.registry.get(finding.work_id)
        published = AttributionEvidence(self.dossiers, self.blobs)
        copies = published.published_copies(work.id)
        return render_comparison(
            copies[0].data if copies else self.blobs.get(work.sha256),
            self.blobs.get(finding.image_sha256),
            transform=finding.transform,
            region=finding.region,
            mark_box=published.visible_mark(work.id),
            max_pixels=self.settings.intake.max_pixels,
        )

    def raise_alert(self, finding: Finding) -> AlertOutcome:
        """The alert for a finding, delivered on the configured channels (what the alert task calls)."""
        from monitor.alerts import raise_alert

        try:
            title = self.registry.get(finding.work_id).title
        except MonitorError:
            title = None
        return raise_alert(
            finding,
            store=self.alert_store,
            channels=self.alert_channels,
            work_title=title,
            picture=self.comparison_picture,
            min_severity=self.settings.alerts.min_severity,
        )

    def alert_finding(self, finding_id: str) -> AlertOutcome:
        """:meth:`raise_alert` for a stored finding (``NotFound`` when there is none)."""
        return self.raise_alert(self.discovery.get_finding(finding_id))

    def recheck(self, finding_id: str) -> RecheckOutcome:
        """Visit a finding's page and image again and record the result (``monitor recheck``)."""
        from monitor.recheck import recheck_finding
        from monitor.services import analyse_bytes

        def still_matches(finding: Finding, data: bytes) -> bool:
            result = analyse_bytes(
                data,
                source=finding.image_url,
                matcher=self.matcher,
                registry=self.registry,
                settings=self.settings,
            )
            return any(m.work_id == finding.work_id for m in result.matches)

        with self.fetcher() as fetcher:
            return recheck_finding(
                finding_id,
                findings=self.discovery,
                log=self.discovery,
                fetcher=fetcher,
                blobs=self.blobs,
                home=self.settings.home,
                still_matches=still_matches,
            )

    def fetcher(self) -> HttpFetcher:
        from monitor.fetching import HttpFetcher

        return HttpFetcher.from_settings(self.settings)

    @cached_property
    def registration_steps(self) -> list[RegistrationStep]:
        """What runs on a work after it is stored, in order: provenance and dossier, visible
        mark, invisible watermark (each feature adds its step here)."""
        from monitor.attribution import VisibleMarkStep
        from monitor.dossier import DossierStep
        from monitor.watermark import WatermarkStep

        steps: list[RegistrationStep] = [
            DossierStep(self.dossiers, self.blobs, self.settings, self.timestamper),
            VisibleMarkStep(
                self.dossiers, self.blobs, self.settings, dossier=self.dossiers, timestamper=self.timestamper
            ),
            WatermarkStep(self.copies, self.blobs, self.settings),
        ]
        return steps

    @cached_property
    def inspectors(self) -> list[MatchInspector]:
        """What looks closer at each verified match during a scan (each feature adds its
        inspector here)."""
        from monitor.attribution import AttributionInspector
        from monitor.watermark import WatermarkInspector

        inspectors: list[MatchInspector] = [
            AttributionInspector(self.dossiers, self.blobs, self.settings),
            WatermarkInspector(self.copies, self.blobs, self.settings),
        ]
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
