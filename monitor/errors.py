"""The monitor's one error tree.

Every error a user can meet is a :class:`MonitorError`; adapters translate third-party
exceptions (Pillow, OpenCV, httpx, SQLAlchemy, ...) into one of these at the boundary, so
the CLI and the API can show a clear message and pick an exit or HTTP code without
knowing which library failed.

    MonitorError
    ├── ConfigError                 settings missing or invalid
    ├── ImageError                  one input image cannot be used (recorded on that item)
    │   ├── EmptyImage              0-byte file or body
    │   ├── NotAnImage              HTML, text or other non-image bytes
    │   ├── UnsupportedFormat       SVG, PDF, or a raster format Pillow cannot read
    │   ├── TruncatedImage          the file ends before the image does / corrupt data
    │   └── ImageTooLarge           over the byte or pixel limit (decompression bombs)
    ├── FetchError                  a URL could not be fetched (recorded on that item)
    │   ├── FetchTimeout
    │   ├── HttpStatusError         the server answered 4xx/5xx (``status`` kept)
    │   ├── FetchRefused            blocked by policy (scheme, private address, robots)
    │   └── FetchTooLarge           body over the byte limit
    ├── FingerprintError            a serialized fingerprint is malformed
    ├── RegistryError               the registry cannot be read or written
    │   ├── RegistryUnavailable     the database is busy or unreachable (transient: retried)
    │   ├── DossierConflict         a concurrent dossier append won the race (retried)
    │   └── NotFound
    │       └── WorkNotFound
    ├── AnalysisBusy                another worker is analysing the same bytes (transient: retried)
    ├── WatermarkError              a marked copy cannot be made or written
    ├── SigningError                the installation signing key cannot be made, read or used
    ├── TimestampError              an RFC 3161 time-stamp cannot be had or does not verify
    └── EvidenceError               an evidence bundle cannot be written or read (not: tampered)

Each error has a stable ``code`` (a short snake_case string written into JSON output and
the database) and an ``exit_code`` for the CLI.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error the monitor raises on purpose."""

    code = "error"
    exit_code = 1

    def __init__(self, message: str, *, item: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.item = item

    def __str__(self) -> str:
        return self.message


class ConfigError(MonitorError):
    code = "config_error"
    exit_code = 2


class ImageError(MonitorError):
    code = "image_error"


class EmptyImage(ImageError):
    code = "empty"


class NotAnImage(ImageError):
    code = "not_an_image"


class UnsupportedFormat(ImageError):
    code = "unsupported_format"


class TruncatedImage(ImageError):
    code = "truncated"


class ImageTooLarge(ImageError):
    code = "too_large"


class FetchError(MonitorError):
    code = "fetch_error"


class FetchTimeout(FetchError):
    code = "fetch_timeout"


class HttpStatusError(FetchError):
    """The server answered with an HTTP error status (>= 400)."""

    code = "http_error"

    def __init__(self, status: int, url: str, *, item: str | None = None) -> None:
        super().__init__(f"HTTP {status} for {url}", item=item)
        self.status = status
        self.url = url


class FetchRefused(FetchError):
    code = "fetch_refused"


class FetchTooLarge(FetchError):
    code = "fetch_too_large"


class FingerprintError(MonitorError):
    code = "bad_fingerprint"


class RegistryError(MonitorError):
    code = "registry_error"


class DossierConflict(RegistryError):
    """Another writer appended to the same dossier first (the append is retried)."""

    code = "dossier_conflict"


class RegistryUnavailable(RegistryError):
    """The database is locked, busy or unreachable: a transient fault, worth retrying."""

    code = "registry_unavailable"


class NotFound(RegistryError):
    """A record asked for by id does not exist (or is not the caller's to see)."""

    code = "not_found"
    exit_code = 2


class WorkNotFound(NotFound):
    code = "work_not_found"
    exit_code = 2


class AnalysisBusy(MonitorError):
    """The same image bytes are being analysed by another worker right now; retry later."""

    code = "analysis_busy"


class WatermarkError(MonitorError):
    """A marked publication copy cannot be made or written."""

    code = "watermark_error"


class SigningError(MonitorError):
    code = "signing_error"


class TimestampError(MonitorError):
    """A time-stamping authority cannot be reached, refused, or its token does not verify."""

    code = "timestamp_error"


class EvidenceError(MonitorError):
    code = "evidence_error"


def describe(exc: MonitorError) -> str:
    """``"code: message"``, the form recorded on a failed item."""
    return f"{exc.code}: {exc.message}"
