"""The registry: works and fingerprints in SQL (SQLite or PostgreSQL), the only place that knows SQL.

Usage::

    engine = create_engine_for(settings.resolved_database_url)
    upgrade_database(engine)
    registry = SqlWorkRegistry(engine)
"""

from __future__ import annotations

from monitor.registry.accounts import SqlAccountStore
from monitor.registry.alerts import SqlAlertStore
from monitor.registry.copies import SqlCopyRegistry
from monitor.registry.database import create_engine_for, upgrade_database
from monitor.registry.discovery import SqlDiscoveryStore
from monitor.registry.dossiers import SqlDossierStore
from monitor.registry.models import Base, FingerprintRow, WorkRow
from monitor.registry.repository import SqlWorkRegistry

__all__ = [
    "Base",
    "FingerprintRow",
    "SqlAccountStore",
    "SqlAlertStore",
    "SqlCopyRegistry",
    "SqlDiscoveryStore",
    "SqlDossierStore",
    "SqlWorkRegistry",
    "WorkRow",
    "create_engine_for",
    "upgrade_database",
]
