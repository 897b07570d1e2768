"""The authorship dossier: an append-only, hash-chained record of each work's creation.

Each entry is the canonical JSON (sorted keys, no spaces, UTF-8) of::

    {"v": 1, "work_id": ..., "seq": n, "kind": ..., "time": "...Z", "prev": <hash of entry n-1>,
     "content_hash": ..., "payload": {...}}

and its hash is the SHA-256 of those bytes; the first entry's ``prev`` is 64 zeros.
:func:`verify_chain` recomputes every hash and link, so a changed, removed or reordered
entry shows. With a time-stamping authority configured (``MONITOR_TSA_URL``), each entry
hash is also sent to it (RFC 3161) and the signed token is stored with the entry; it proves
the entry existed at that time to anyone who trusts the TSA, even against the owner of the
database. A TSA that cannot be reached costs the token, never the entry: the error is kept.

Entry kinds: ``registered`` (the work's bytes and every provenance source in the file),
``process`` (a generation log: iterations, logs, notes, chosen and discarded), and
``published_copy`` (the copy the owner publishes: visible mark and CMI).

Re-registering the same bytes adds nothing: ``(work, kind, content_hash)`` is unique.

The dossier is kept by a :class:`DossierStore` (``monitor.registry.SqlDossierStore``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from monitor.errors import DossierConflict, TimestampError
from monitor.provenance import read_provenance

if TYPE_CHECKING:
    from monitor.blobs import BlobStore
    from monitor.services import Registration
    from monitor.settings import Settings

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
GENESIS = "0" * 64
#: Attempts at appending when concurrent writers race for the same ``seq``.
APPEND_ATTEMPTS = 20

PROCESS_IMAGE = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif"}
)
PROCESS_JSON = frozenset({".json", ".jsonl"})
PROCESS_TEXT = frozenset({".txt", ".md", ".log", ".csv", ".yaml", ".yml", ".toml", ".ini"})
#: File-name words that mark a generation-log item as the chosen one or a discarded one.
CHOSEN_WORDS = frozenset({"chosen", "final", "selected", "pick", "picked", "winner"})
DISCARDED_WORDS = frozenset({"discarded", "discard", "rejected", "reject", "unused", "dropped"})
#: Keys of a JSON log that list chosen / discarded items (file names, relative paths or SHA-256).
CHOSEN_KEYS = ("chosen", "selected", "final")
DISCARDED_KEYS = ("discarded", "rejected")
EXCERPT_CHARS = 2000


# ---------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Timestamp:
    """An RFC 3161 time-stamp token over an entry hash, or why there is none."""

    tsa_url: str
    token: bytes | None = None
    time: datetime | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        import base64

        return {
            "tsa_url": self.tsa_url,
            "time": _iso(self.time) if self.time else None,
            "token": base64.b64encode(self.token).decode() if self.token else None,
            "error": self.error,
        }


@dataclass(frozen=True)
class DossierEntry:
    work_id: str
    seq: int
    kind: str
    payload: dict[str, Any]
    content_hash: str
    created_at: datetime
    prev_hash: str
    entry_hash: str
    timestamp: Timestamp | None = None

    def body(self) -> bytes:
        """The canonical bytes the entry hash is taken over."""
        return entry_body(
            self.work_id,
            self.seq,
            self.kind,
            self.created_at,
            self.prev_hash,
            self.content_hash,
            self.payload,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "work_id": self.work_id,
            "seq": self.seq,
            "kind": self.kind,
            "time": _iso(self.created_at),
            "prev_hash": self.prev_hash,
            "entry_hash": self.entry_hash,
            "content_hash": self.content_hash,
            "payload": self.payload,
            "timestamp": self.timestamp.to_json() if self.timestamp else None,
        }


class DossierStore(Protocol):
    """Storage of dossier entries (SQL in ``monitor.registry``)."""

    def entries(self, work_id: str) -> list[DossierEntry]:
        """Every entry of the work, in ``seq`` order."""
        ...

    def last_entry(self, work_id: str) -> DossierEntry | None: ...

    def find_entry(self, work_id: str, kind: str, content_hash: str) -> DossierEntry | None: ...

    def insert_entry(self, entry: DossierEntry) -> None:
        """Store a new entry; :class:`~monitor.errors.DossierConflict` when its ``seq`` or its
        ``(kind, content_hash)`` is taken for the work."""
        ...


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def content_digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(jsonable(value))).hexdigest()


def jsonable(value: Any) -> Any:
    """``value`` with what strict JSON cannot hold made plain: non-finite numbers and bytes
    become strings, tuples lists, keys strings (metadata is whatever a file carried)."""
    import math

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def entry_body(
    work_id: str,
    seq: int,
    kind: str,
    created_at: datetime,
    prev_hash: str,
    content_hash: str,
    payload: dict[str, Any],
) -> bytes:
    return canonical_json(
        {
            "v": FORMAT_VERSION,
            "work_id": work_id,
            "seq": seq,
            "kind": kind,
            "time": _iso(created_at),
            "prev": prev_hash,
            "content_hash": content_hash,
            "payload": payload,
        }
    )


# ---------------------------------------------------------------------------- appending


class Timestamper(Protocol):
    def stamp(self, digest_hex: str) -> Timestamp:
        """A token over ``digest_hex``, or a :class:`Timestamp` carrying the error. Never raises."""
        ...


def append_entry(
    store: DossierStore,
    work_id: str,
    kind: str,
    payload: dict[str, Any],
    *,
    content_hash: str | None = None,
    timestamper: Timestamper | None = None,
) -> tuple[DossierEntry, bool]:
    """Append an entry to the work's chain; ``(entry, created)``. An entry of the same kind and
    content already there is returned as is (``created=False``)."""
    payload = json.loads(canonical_json(jsonable(payload)))  # what is hashed is what is stored
    content_hash = content_hash or content_digest(payload)
    for _ in range(APPEND_ATTEMPTS):
        existing = store.find_entry(work_id, kind, content_hash)
        if existing is not None:
            return existing, False
        last = store.last_entry(work_id)
        seq = 1 if last is None else last.seq + 1
        prev = GENESIS if last is None else last.entry_hash
        now = datetime.now(UTC)
        body = entry_body(work_id, seq, kind, now, prev, content_hash, payload)
        digest = hashlib.sha256(body).hexdigest()
        stamp = timestamper.stamp(digest) if timestamper is not None else None
        entry = DossierEntry(work_id, seq, kind, payload, content_hash, now, prev, digest, stamp)
        try:
            store.insert_entry(entry)
        except DossierConflict:
            continue  # another writer appended first: re-read the head and try again
        return entry, True
    raise DossierConflict(f"cannot append to the dossier of {work_id}: too many concurrent writers")


# ---------------------------------------------------------------------------- verification


@dataclass
class ChainReport:
    work_id: str
    entries: int
    ok: bool
    head_hash: str | None
    problems: list[dict[str, Any]] = field(default_factory=list)
    timestamps: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "work_id": self.work_id,
            "ok": self.ok,
            "entries": self.entries,
            "head_hash": self.head_hash,
            "problems": self.problems,
            "timestamps": self.timestamps,
        }


def verify_chain(
    work_id: str, entries: Sequence[DossierEntry], *, trusted_tsa: Sequence[bytes] = ()
) -> ChainReport:
    """Recompute every hash and link, and re-check every timestamp token."""
    problems: list[dict[str, Any]] = []
    stamps: list[dict[str, Any]] = []
    prev = GENESIS
    for expected_seq, entry in enumerate(entries, start=1):
        if entry.work_id != work_id:
            problems.append({"seq": entry.seq, "problem": f"entry belongs to work {entry.work_id}"})
        if entry.seq != expected_seq:
            problems.append({"seq": entry.seq, "problem": f"expected entry {expected_seq} (missing entries)"})
        if entry.prev_hash != prev:
            problems.append({"seq": entry.seq, "problem": "previous-entry hash does not match the chain"})
        recomputed = hashlib.sha256(entry.body()).hexdigest()
        if recomputed != entry.entry_hash:
            problems.append({"seq": entry.seq, "problem": "entry hash does not match its content (altered)"})
        if entry.timestamp is not None:
            check: dict[str, Any] = {"seq": entry.seq, "tsa_url": entry.timestamp.tsa_url}
            if entry.timestamp.token is None:
                check.update(status="missing", error=entry.timestamp.error)
            else:
                try:
                    info = verify_token(entry.timestamp.token, entry.entry_hash, trusted=trusted_tsa)
                    check.update(status="valid", **info)
                except TimestampError as exc:
                    check.update(status="invalid", error=exc.message)
                    problems.append({"seq": entry.seq, "problem": f"timestamp token: {exc.message}"})
            stamps.append(check)
        prev = entry.entry_hash
    return ChainReport(
        work_id=work_id,
        entries=len(entries),
        ok=not problems,
        head_hash=entries[-1].entry_hash if entries else None,
        problems=problems,
        timestamps=stamps,
    )


# ---------------------------------------------------------------------------- RFC 3161


def build_timestamp_request(digest: bytes, nonce: int) -> bytes:
    """A DER ``TimeStampReq`` for a SHA-256 digest, asking for the TSA certificate."""
    from asn1crypto import tsp

    return tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
            "nonce": nonce,
            "cert_req": True,
        }
    ).dump()


class RfcTimestamper:
    """Client of an RFC 3161 time-stamping authority over HTTP(S)."""

    def __init__(self, url: str, *, timeout: float = 10.0, trusted: Sequence[bytes] = ()) -> None:
        self.url = url
        self.timeout = timeout
        self.trusted = tuple(trusted)

    @classmethod
    def from_settings(cls, settings: Settings) -> RfcTimestamper | None:
        if not settings.tsa_url:
            return None
        return cls(settings.tsa_url, timeout=settings.dossier.tsa_timeout, trusted=load_trusted_tsa(settings))

    def stamp(self, digest_hex: str) -> Timestamp:
        try:
            token, moment = self.request(bytes.fromhex(digest_hex))
        except TimestampError as exc:
            log.warning("no timestamp from %s: %s", self.url, exc.message)
            return Timestamp(self.url, error=exc.message)
        return Timestamp(self.url, token=token, time=moment)

    def request(self, digest: bytes) -> tuple[bytes, datetime]:
        """Ask for a token over ``digest``; returns ``(token DER, genTime)`` after checking the
        response status, message imprint, nonce and signature."""
        import httpx

        nonce = secrets.randbits(63)
        try:
            response = httpx.post(
                self.url,
                content=build_timestamp_request(digest, nonce),
                headers={
                    "Content-Type": "application/timestamp-query",
                    "Accept": "application/timestamp-reply",
                },
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise TimestampError(
                f"the TSA at {self.url} cannot be reached ({type(exc).__name__}: {exc})"
            ) from exc
        if response.status_code != 200:
            raise TimestampError(f"the TSA at {self.url} answered HTTP {response.status_code}")
        try:
            resp = _response_spec().load(response.content)
            status = resp["status"]["status"].native
            if status not in ("granted", "granted_with_mods"):
                text = resp["status"]["status_string"].native if resp["status"]["status_string"] else None
                raise TimestampError(
                    f"the TSA refused the request ({status}{': ' + str(text) if text else ''})"
                )
            if resp["time_stamp_token"].native is None:
                raise TimestampError("the TSA granted the request but sent no token")
            token = resp["time_stamp_token"].dump()
        except TimestampError:
            raise
        except Exception as exc:  # asn1crypto raises ValueError/TypeError on malformed DER
            raise TimestampError(f"the TSA answer is not a time-stamp response ({exc})") from exc
        info = verify_token(token, digest.hex(), trusted=self.trusted)
        if info.get("nonce") != nonce:
            raise TimestampError("the TSA answered with another nonce (replayed or mixed-up response)")
        return token, datetime.fromisoformat(info["time"])


@functools.cache
def _response_spec() -> Any:
    """``TimeStampResp`` with the token OPTIONAL, as in RFC 3161 (asn1crypto requires it, so
    a rejection, which carries none, would not parse)."""
    from asn1crypto import cms, core, tsp

    class TimeStampResp(core.Sequence):
        _fields = [  # noqa: RUF012 - asn1crypto's declarative spec
            ("status", tsp.PKIStatusInfo),
            ("time_stamp_token", cms.ContentInfo, {"optional": True}),
        ]

    return TimeStampResp


def verify_token(token: bytes, digest_hex: str, *, trusted: Sequence[bytes] = ()) -> dict[str, Any]:
    """Check an RFC 3161 token over ``digest_hex``: message imprint, CMS signed attributes
    (content type, message digest), the signature with the embedded TSA certificate, the
    certificate's time-stamping purpose, and, when ``trusted`` PEM/DER certificates are given,
    that the TSA certificate is one of them or issued by one. Returns facts of the token;
    raises :class:`TimestampError`."""
    try:
        return _verify_token(token, digest_hex, trusted)
    except TimestampError:
        raise
    except Exception as exc:
        raise TimestampError(f"the token cannot be read ({type(exc).__name__}: {exc})") from exc


def _verify_token(token: bytes, digest_hex: str, trusted: Sequence[bytes]) -> dict[str, Any]:
    from asn1crypto import cms
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.x509.oid import ExtendedKeyUsageOID

    info = cms.ContentInfo.load(token)
    if info["content_type"].native != "signed_data":
        raise TimestampError("the token is not CMS SignedData")
    signed = info["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise TimestampError("the token does not hold a TSTInfo")
    tst_der = encap["content"].contents
    tst = encap["content"].parsed
    imprint = tst["message_imprint"]
    algorithm = imprint["hash_algorithm"]["algorithm"].native
    if algorithm != "sha256" or imprint["hashed_message"].native != bytes.fromhex(digest_hex):
        raise TimestampError("the token's message imprint is not this entry's hash")
    signer_infos = signed["signer_infos"]
    if len(signer_infos) != 1:
        raise TimestampError("the token must have exactly one signer")
    signer = signer_infos[0]
    certs = [c.chosen for c in signed["certificates"] or [] if c.name == "certificate"]
    cert = _signer_cert(signer["sid"], certs)
    attrs = signer["signed_attrs"]
    if not attrs:
        raise TimestampError("the token has no signed attributes")
    values = {a["type"].native: a["values"][0] for a in attrs}
    if values.get("content_type") is None or values["content_type"].native != "tst_info":
        raise TimestampError("the signed content type is not TSTInfo")
    digest_name = signer["digest_algorithm"]["algorithm"].native
    if (
        values.get("message_digest") is None
        or values["message_digest"].native != hashlib.new(digest_name, tst_der).digest()
    ):
        raise TimestampError("the signed message digest does not match the TSTInfo")
    to_verify = b"\x31" + attrs.dump()[1:]  # signed over the SET OF, not the [0] tag
    crypto_cert = x509.load_der_x509_certificate(cert.dump())
    try:
        _verify_signature(crypto_cert, signer, digest_name, to_verify)
    except InvalidSignature as exc:
        raise TimestampError("the TSA signature does not verify") from exc
    try:
        eku = crypto_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or ExtendedKeyUsageOID.TIME_STAMPING not in eku:
        raise TimestampError("the signing certificate is not a time-stamping certificate")
    trusted_ok: bool | None = None
    if trusted:
        trusted_ok = _issued_by_trusted(crypto_cert, trusted)
        if not trusted_ok:
            raise TimestampError("the TSA certificate is not trusted (MONITOR_DOSSIER__TSA_CERTS)")
    gen_time: datetime = tst["gen_time"].native
    return {
        "time": _iso(gen_time),
        "serial": str(tst["serial_number"].native),
        "nonce": tst["nonce"].native,
        "tsa": crypto_cert.subject.rfc4514_string(),
        "tsa_cert_sha256": hashlib.sha256(cert.dump()).hexdigest(),
        "trusted": trusted_ok,
    }


def _signer_cert(sid: Any, certs: list[Any]) -> Any:
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            if (
                cert.issuer == sid.chosen["issuer"]
                and cert.serial_number == sid.chosen["serial_number"].native
            ):
                return cert
        elif cert.key_identifier == sid.chosen.native:
            return cert
    raise TimestampError("the token does not carry the TSA certificate")


def _verify_signature(cert: Any, signer: Any, digest_name: str, data: bytes) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}.get(
        digest_name
    )
    if algorithm is None:
        raise TimestampError(f"digest algorithm {digest_name} is not supported")
    key = cert.public_key()
    signature = signer["signature"].native
    if isinstance(key, rsa.RSAPublicKey):
        sig_alg = signer["signature_algorithm"]["algorithm"].native
        pad = (
            padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.AUTO)
            if sig_alg == "rsassa_pss"
            else padding.PKCS1v15()
        )
        key.verify(signature, data, pad, algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, data)
    else:
        raise TimestampError(f"{type(key).__name__} TSA keys are not supported")


def _issued_by_trusted(cert: Any, trusted: Sequence[bytes]) -> bool:
    from cryptography import x509

    for raw in trusted:
        try:
            anchor = (
                x509.load_pem_x509_certificate(raw)
                if raw.lstrip().startswith(b"-----")
                else x509.load_der_x509_certificate(raw)
            )
        except ValueError:
            continue
        if anchor == cert:
            return True
        try:
            cert.verify_directly_issued_by(anchor)
            return True
        except Exception:
            continue
    return False


def load_trusted_tsa(settings: Settings) -> tuple[bytes, ...]:
    """The PEM certificates in ``settings.dossier.tsa_certs`` (one file, may hold several)."""
    path = settings.dossier.tsa_certs
    if path is None:
        return ()
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        from monitor.errors import ConfigError

        raise ConfigError(f"cannot read the TSA certificates at {path}: {exc.strerror or exc}") from exc
    marker = b"-----END CERTIFICATE-----"
    return tuple(part + marker for part in text.split(marker) if b"-----BEGIN" in part)


# ---------------------------------------------------------------------------- generation logs


@dataclass
class ProcessItem:
    order: int
    path: str
    sha256: str
    size: int
    kind: str  # image | json | text | other
    status: str | None = None  # chosen | discarded | None
    stored: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "order": self.order,
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "kind": self.kind,
            "status": self.status,
        }
        if not self.stored:
            body["stored"] = False
        body.update(self.details)
        return body


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in PROCESS_IMAGE:
        return "image"
    if suffix in PROCESS_JSON:
        return "json"
    if suffix in PROCESS_TEXT:
        return "text"
    return "other"


def _words(rel: str) -> set[str]:
    import re

    return {w for w in re.split(r"[^a-z0-9]+", rel.lower()) if w}


def read_process_log(
    source: Path, *, blobs: BlobStore, work_sha256: str, max_items: int, max_bytes: int
) -> dict[str, Any]:
    """Store every file of a generation log (a folder walked in sorted order of relative
    path, or one file) by SHA-256 and describe it. Chosen/discarded convention, first match
    wins: an item with the registered work's SHA-256 is ``chosen``; a JSON log naming items
    (file name, relative path or SHA-256) under ``chosen``/``selected``/``final`` or
    ``discarded``/``rejected``; a path word ``chosen``/``final``/``selected``/``pick`` or
    ``discarded``/``rejected``/``unused``."""
    from monitor.errors import ImageError

    if not source.exists():
        raise ImageError(f"--process: no such file or folder: {source}")
    if source.is_dir():
        files = sorted(
            (
                p
                for p in source.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts)
            ),
            key=lambda p: p.relative_to(source).as_posix(),
        )
        root = source
    else:
        files, root = [source], source.parent
    truncated = len(files) > max_items
    items: list[ProcessItem] = []
    logs: list[Any] = []
    for order, path in enumerate(files[:max_items], start=1):
        rel = path.relative_to(root).as_posix()
        kind = _kind(path)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                digest = _hash_file(path)
                items.append(
                    ProcessItem(
                        order,
                        rel,
                        digest,
                        size,
                        kind,
                        stored=False,
                        details={"note": "larger than the intake limit: hashed, not stored"},
                    )
                )
                continue
            data = path.read_bytes()
        except OSError as exc:
            items.append(
                ProcessItem(
                    order,
                    rel,
                    "",
                    0,
                    kind,
                    stored=False,
                    details={"error": f"cannot read: {exc.strerror or exc}"},
                )
            )
            continue
        digest = blobs.put(data)
        item = ProcessItem(order, rel, digest, len(data), kind)
        if kind == "image":
            item.details["provenance"] = read_provenance(data).summary()
        elif kind == "json":
            try:
                parsed = json.loads(data.decode("utf-8")) if path.suffix.lower() == ".json" else None
            except (UnicodeDecodeError, ValueError) as exc:
                item.details["warning"] = f"not valid JSON ({exc})"
                parsed = None
            if isinstance(parsed, dict):
                item.details["keys"] = sorted(str(k) for k in parsed)[:50]
                logs.append(parsed)
        elif kind == "text":
            item.details["excerpt"] = data[: EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS]
        items.append(item)
    _mark_choices(items, logs, work_sha256)
    summary = {
        "items": len(items),
        "images": sum(i.kind == "image" for i in items),
        "chosen": [i.path for i in items if i.status == "chosen"],
        "discarded": [i.path for i in items if i.status == "discarded"],
        "contains_registered_work": any(i.sha256 == work_sha256 for i in items),
    }
    if truncated:
        summary["truncated_at"] = max_items
    return {
        "source": str(source),
        "items": [i.to_json() for i in items],
        "summary": summary,
    }


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _names(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {str(v) for v in value if isinstance(v, str | int)}
    return set()


def _mark_choices(items: list[ProcessItem], logs: list[Any], work_sha256: str) -> None:
    chosen: set[str] = set()
    discarded: set[str] = set()
    for entry in logs:
        for key in CHOSEN_KEYS:
            chosen |= _names(entry.get(key))
        for key in DISCARDED_KEYS:
            discarded |= _names(entry.get(key))
    for item in items:
        keys = {item.path, Path(item.path).name, item.sha256}
        words = _words(item.path)
        if item.sha256 == work_sha256 or keys & chosen:
            item.status = "chosen"
        elif keys & discarded:
            item.status = "discarded"
        elif words & CHOSEN_WORDS:
            item.status = "chosen"
        elif words & DISCARDED_WORDS:
            item.status = "discarded"


# ---------------------------------------------------------------------------- registration step


class DossierStep:
    """Registration step 1: provenance of the file, the ``registered`` entry, and the
    generation log (``--process``) as a ``process`` entry."""

    name = "dossier"

    def __init__(
        self,
        store: DossierStore,
        blobs: BlobStore,
        settings: Settings,
        timestamper: Timestamper | None = None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.settings = settings
        self.timestamper = timestamper

    def __call__(self, registration: Registration) -> None:
        work = registration.work
        prov = read_provenance(registration.data)
        raw_refs = {
            name: {"sha256": self.blobs.put(data), "size": len(data)}
            for name, data in sorted(prov.raw.items())
        }
        parsed = prov.to_json()
        parsed["raw"] = raw_refs
        payload = {
            "work": {
                "sha256": work.sha256,
                "pixel_sha256": work.pixel_sha256,
                "format": work.format,
                "width": work.width,
                "height": work.height,
                "size_bytes": work.size_bytes,
                "title": work.title,
                "owner": work.owner,
                "source_path": work.source_path,
                "registered_at": _iso(work.created_at) if work.created_at else None,
            },
            "provenance": parsed,
        }
        entry, _ = self._append(work.id, "registered", payload, content_hash=work.sha256)
        process = registration.options.process
        if process is not None:
            log_payload = read_process_log(
                process,
                blobs=self.blobs,
                work_sha256=work.sha256,
                max_items=self.settings.dossier.process_max_items,
                max_bytes=self.settings.intake.max_bytes,
            )
            digest = content_digest([(i["path"], i["sha256"], i["status"]) for i in log_payload["items"]])
            entry, created = self._append(work.id, "process", log_payload, content_hash=digest)
            registration.extra["dossier"] = {
                "process": {"entry": entry.seq, "created": created, **log_payload["summary"]},
                "timestamp": _stamp_state(entry),
            }

    def _append(
        self, work_id: str, kind: str, payload: dict[str, Any], *, content_hash: str
    ) -> tuple[DossierEntry, bool]:
        return append_entry(
            self.store, work_id, kind, payload, content_hash=content_hash, timestamper=self.timestamper
        )


def _stamp_state(entry: DossierEntry) -> str | None:
    if entry.timestamp is None:
        return None
    return "stamped" if entry.timestamp.token else f"error: {entry.timestamp.error}"
