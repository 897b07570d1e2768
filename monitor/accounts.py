"""Accounts, API keys, and what each account may see.

Every work, watched source, finding, alert, export and job belongs to an account; one account
never reads, lists, guesses or downloads another's. Ownership is recorded in link tables
(``account_works``, ``account_sources``) so the other features' records stay as they are:

* the same bytes registered by two accounts are one work owned by both; each account keeps its
  own title, owner and file name for it and never sees the other's;
* findings, alerts and evidence exports are an account's when their work is;
* a watched source (one per URL and spider) may be watched by several accounts.

:class:`AccountScope` is the one place the API asks: each lookup by id answers
:class:`~monitor.errors.NotFound` for an id that does not exist *and* for an id of another
account, so ids are never confirmed.

API keys look like ``mk_<key id>_<secret>``: 256 random bits, shown once at creation, stored
only as their SHA-256 (a digest of a high-entropy secret cannot be brute-forced, so no slow
password hash is needed). The storage port is :class:`AccountStore` (SQL in
``monitor.registry.accounts``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from monitor.errors import ConfigError, NotFound, WorkNotFound
from monitor.findings import Finding, FindingStore
from monitor.works import Work, WorkRegistry

if TYPE_CHECKING:
    from monitor.alerts import Alert
    from monitor.discovery import DiscoveryStore, Source

__all__ = [
    "KEY_PREFIX",
    "Account",
    "AccountScope",
    "AccountStore",
    "AccountWork",
    "FindingFilter",
    "NewKey",
    "authenticate",
    "create_account",
    "hash_key",
    "issue_key",
    "key_id_of",
]

KEY_PREFIX = "mk_"
_KEY = re.compile(r"^mk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[\w][\w .@+-]{0,199}$", re.UNICODE)


# ------------------------------------------------------------------ records


@dataclass(frozen=True, kw_only=True)
class Account:
    id: str
    name: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"account_id": self.id, "name": self.name, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True, kw_only=True)
class NewKey:
    """A freshly issued key: ``key`` is shown once and never stored."""

    key_id: str
    key: str
    key_hash: str


@dataclass(frozen=True, kw_only=True)
class AccountWork:
    """A work as one account sees it: the shared record plus the account's own labels."""

    work: Work
    title: str | None
    owner: str | None
    filename: str | None
    added_at: datetime

    @property
    def id(self) -> str:
        return self.work.id

    def to_json(self) -> dict[str, Any]:
        w = self.work
        return {
            "work_id": w.id,
            "sha256": w.sha256,
            "title": self.title,
            "owner": self.owner,
            "filename": self.filename,
            "format": w.format,
            "width": w.width,
            "height": w.height,
            "size_bytes": w.size_bytes,
            "registered_at": self.added_at.isoformat(),
        }


class AccountStore(Protocol):
    """Accounts, keys, ownership links (SQL in ``monitor.registry.SqlAccountStore``)."""

    def add_account(self, name: str) -> Account:
        """A new account; :class:`~monitor.errors.ConfigError` when the name is taken."""
        ...

    def get_account(self, account_id: str) -> Account: ...

    def find_account(self, name: str) -> Account | None: ...

    def list_accounts(self) -> list[Account]: ...

    def add_key(self, account_id: str, *, key_id: str, key_hash: str) -> None: ...

    def account_for_key(self, key_id: str) -> tuple[Account, str] | None:
        """The account and stored hash of a live (not revoked) key id, or ``None``."""
        ...

    def key_is_live(self, key_id: str, account_id: str) -> bool: ...

    def link_work(
        self, account_id: str, work_id: str, *, title: str | None, owner: str | None, filename: str | None
    ) -> bool:
        """Make the work the account's (``False``: it already was; labels are then left as they are)."""
        ...

    def account_work(self, account_id: str, work_id: str) -> AccountWork | None: ...

    def account_works(
        self, account_id: str, *, query: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[AccountWork]:
        """Newest first; ``query`` matches title, owner, file name, work id or SHA-256 (substring)."""
        ...

    def count_account_works(self, account_id: str, *, query: str | None = None) -> int: ...

    def work_ids(self, account_id: str) -> list[str]: ...

    def link_source(self, account_id: str, source_id: str) -> bool: ...

    def unlink_source(self, account_id: str, source_id: str) -> bool: ...

    def source_ids(self, account_id: str) -> list[str]: ...

    def source_watchers(self, source_id: str) -> int: ...

    def update_source(
        self,
        source_id: str,
        *,
        every_seconds: int | None = None,
        depth: int | None = None,
        max_pages: int | None = None,
        enabled: bool | None = None,
    ) -> None: ...


# ------------------------------------------------------------------ keys


def hash_key(key: str) -> str:
    """The stored form of an API key: SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def issue_key() -> NewKey:
    """A new random key ``mk_<12 hex>_<43 base64url>`` (48 + 256 random bits)."""
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(key_id=key_id, key=key, key_hash=hash_key(key))


def key_id_of(key: str) -> str | None:
    """The public id inside a well-formed key, else ``None``."""
    found = _KEY.match(key.strip())
    return found.group(1) if found else None


def create_account(store: AccountStore, name: str) -> tuple[Account, str]:
    """A new account and its first API key (returned once, stored hashed)."""
    name = name.strip()
    if not _NAME.match(name):
        raise ConfigError("an account name is 1-200 letters, digits, spaces or . @ + - _")
    if store.find_account(name) is not None:
        raise ConfigError(f"an account named {name!r} already exists")
    account = store.add_account(name)
    return account, add_key(store, account.id)


def add_key(store: AccountStore, account_id: str) -> str:
    """Issue one more key for the account; the key is returned once."""
    new = issue_key()
    store.add_key(account_id, key_id=new.key_id, key_hash=new.key_hash)
    return new.key


def authenticate(store: AccountStore, key: str) -> tuple[Account, str] | None:
    """The account and key id of a valid key, or ``None`` (malformed, unknown, revoked)."""
    key_id = key_id_of(key)
    if key_id is None:
        return None
    found = store.account_for_key(key_id)
    if found is None:
        return None
    account, stored = found
    if not hmac.compare_digest(stored, hash_key(key.strip())):
        return None
    return account, key_id


# ------------------------------------------------------------------ what an account sees


@dataclass(frozen=True, kw_only=True)
class FindingFilter:
    """Filters of the finding list; every one optional. ``site`` matches the page's (or the
    image's) host name and its subdomains."""

    verdict: str | None = None
    flag: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    site: str | None = None
    work_id: str | None = None
    severity: str | None = None

    def matches(self, finding: Finding) -> bool:
        from monitor.alerts import severity_for

        if self.verdict is not None and finding.verdict != self.verdict:
            return False
        if self.flag is not None and self.flag not in finding.flags:
            return False
        if self.until is not None and finding.created_at > self.until:
            return False
        if self.severity is not None and severity_for(finding.verdict, finding.flags) != self.severity:
            return False
        if self.site is not None:
            host = (urlsplit(finding.page_url or finding.image_url).hostname or "").lower()
            site = self.site.strip().lower().removeprefix("www.")
            if host.removeprefix("www.") != site and not host.endswith("." + site):
                return False
        return True


@dataclass
class AccountScope:
    """The records one account may see, through the features' own stores.

    Every ``get``-style method raises :class:`NotFound` (or :class:`WorkNotFound`) both for
    unknown ids and for other accounts' ids, with the same message."""

    account: Account
    accounts: AccountStore
    registry: WorkRegistry
    findings: FindingStore
    discovery: DiscoveryStore | None = None
    alerts: Any = None  # monitor.alerts.AlertStore
    _work_ids: set[str] | None = field(default=None, repr=False)

    @property
    def account_id(self) -> str:
        return self.account.id

    def owned_work_ids(self) -> set[str]:
        if self._work_ids is None:
            self._work_ids = set(self.accounts.work_ids(self.account.id))
        return self._work_ids

    def forget(self) -> None:
        """Drop the cached work ids (after registering works)."""
        self._work_ids = None

    # -- works

    def work(self, work_id: str) -> AccountWork:
        found = self.accounts.account_work(self.account.id, work_id)
        if found is None:
            raise WorkNotFound(f"no work has id {work_id!r}", item=work_id)
        return found

    def works(
        self, *, query: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[AccountWork]:
        return self.accounts.account_works(self.account.id, query=query, limit=limit, offset=offset)

    def count_works(self, *, query: str | None = None) -> int:
        return self.accounts.count_account_works(self.account.id, query=query)

    def claim(self, work: Work, *, title: str | None, owner: str | None, filename: str | None) -> AccountWork:
        """Make a (just registered) work the account's, with the account's own labels."""
        self.accounts.link_work(self.account.id, work.id, title=title, owner=owner, filename=filename)
        self.forget()
        return self.work(work.id)

    # -- findings

    def finding(self, finding_id: str) -> Finding:
        try:
            found = self.findings.get_finding(finding_id)
        except NotFound:
            found = None
        if found is None or found.work_id not in self.owned_work_ids():
            raise NotFound(f"no finding has id {finding_id!r}", item=finding_id)
        return found

    def list_findings(
        self, filters: FindingFilter | None = None, *, limit: int | None = 100, offset: int = 0
    ) -> list[Finding]:
        """Newest first, the account's works only, filtered."""
        filters = filters or FindingFilter()
        owned = self.owned_work_ids()
        if filters.work_id is not None:
            if filters.work_id not in owned:
                return []
            owned = {filters.work_id}
        if not owned:
            return []
        found = self.findings.list_findings(since=filters.since, work_ids=sorted(owned))
        kept = [f for f in found if filters.matches(f)]
        end = None if limit is None else offset + limit
        return kept[offset:end]

    # -- alerts

    def alert(self, alert_id: str) -> Alert:
        if self.alerts is None:
            raise NotFound(f"no alert has id {alert_id!r}", item=alert_id)
        try:
            found = self.alerts.get(alert_id)
        except NotFound:
            found = None
        if found is None or found.work_id not in self.owned_work_ids():
            raise NotFound(f"no alert has id {alert_id!r}", item=alert_id)
        return found

    def list_alerts(
        self,
        *,
        since: datetime | None = None,
        unacked: bool = False,
        severity: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[Alert]:
        if self.alerts is None:
            return []
        owned = self.owned_work_ids()
        found = [
            a
            for a in self.alerts.list(since=since, unacked=unacked, limit=None)
            if a.work_id in owned and (severity is None or a.severity == severity)
        ]
        end = None if limit is None else offset + limit
        return found[offset:end]

    def ack_alert(self, alert_id: str, *, at: datetime) -> Alert:
        self.alert(alert_id)
        return self.alerts.ack(alert_id, at=at)

    # -- exports

    def exports(self, finding_id: str) -> list[dict[str, Any]]:
        self.finding(finding_id)
        if self.alerts is None or not hasattr(self.alerts, "exports"):
            return []
        return list(self.alerts.exports(finding_id))

    # -- watched sources

    def _discovery(self) -> DiscoveryStore:
        if self.discovery is None:
            raise ConfigError("watched sources need the discovery store")
        return self.discovery

    def source(self, source_id: str) -> Source:
        if source_id not in set(self.accounts.source_ids(self.account.id)):
            raise NotFound(f"no watched source has id {source_id!r}", item=source_id)
        return self._discovery().get_source(source_id)

    def sources(self) -> list[Source]:
        mine = set(self.accounts.source_ids(self.account.id))
        return [s for s in self._discovery().list_sources() if s.id in mine]

    def watch(
        self,
        url: str,
        *,
        spider: str = "site",
        every: str = "6h",
        depth: int | None = None,
        max_pages: int | None = None,
    ) -> tuple[Source, bool]:
        """Watch a source (shared with other accounts watching the same URL and spider).
        ``created`` is ``False`` when this account already watched it."""
        from monitor.discovery import watch_source

        source, _ = watch_source(
            self._discovery(), url, spider=spider, every=every, depth=depth, max_pages=max_pages
        )
        created = self.accounts.link_source(self.account.id, source.id)
        if not source.enabled:
            self.accounts.update_source(source.id, enabled=True)
            source = self._discovery().get_source(source.id)
        return source, created

    def update_source(
        self,
        source_id: str,
        *,
        every: str | None = None,
        depth: int | None = None,
        max_pages: int | None = None,
        enabled: bool | None = None,
    ) -> Source:
        """Change a watched source. A source also watched by another account keeps its period
        and limits (changing them would change the other account's crawls): that is refused."""
        from monitor.discovery import parse_every

        self.source(source_id)
        changes_crawl = every is not None or depth is not None or max_pages is not None or enabled is False
        if changes_crawl and self.accounts.source_watchers(source_id) > 1:
            raise ConfigError("this source is also watched by another account: remove it and add it again")
        self.accounts.update_source(
            source_id,
            every_seconds=parse_every(every) if every is not None else None,
            depth=depth,
            max_pages=max_pages,
            enabled=enabled,
        )
        return self._discovery().get_source(source_id)

    def unwatch(self, source_id: str) -> None:
        """Stop watching; a source no account watches any more is disabled (kept for its history)."""
        self.source(source_id)
        self.accounts.unlink_source(self.account.id, source_id)
        if self.accounts.source_watchers(source_id) == 0:
            self.accounts.update_source(source_id, enabled=False)
