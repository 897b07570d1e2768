"""Items the spiders yield: one image seen on one page."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from monitor.findings import PageCapture


@dataclass
class CandidateItem:
    """An image seen on a page (``page`` is ``None`` for an image URL crawled by itself).

    ``body`` holds the exact bytes as fetched until the capture pipeline has stored them under
    ``sha256``; an image already fetched earlier in the crawl arrives with ``sha256`` and no
    ``body``. ``error`` (``code: message``) is set when the image could not be fetched.
    """

    image_url: str
    page: PageCapture | None = None
    body: bytes | None = field(default=None, repr=False)
    sha256: str | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    fetched_at: datetime | None = None
    warc_path: str | None = None
    error: str | None = None
