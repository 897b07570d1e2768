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
from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from monitor.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("config") / "monitor.toml"


class IntakeSettings(BaseModel):
    """How images are taken in: what the decoder accepts, and how far a batch is prepared ahead."""

    max_bytes: int = Field(default=50 * 1024 * 1024, ge=1, description="Largest image file accepted.")
    max_pixels: int = Field(
        default=80_000_000, ge=1, description="Largest width*height decoded (decompression bomb guard)."
    )
    work_side: int = Field(
        default=1024, ge=128, description="Longest side of the working copy used for fingerprints."
    )
    prefetch_threads: int = Field(
        default=1,
        ge=0,
        description=(
            "Threads that read, decode and fingerprint the next images of a batch (register, scan of "
            "files) while the current one is matched or stored; 0: one image at a time, all in one thread."
        ),
    )


class MatchSettings(BaseModel):
    """Thresholds of the matcher. Distances are in bits, ratios in 0..1."""

    pdq_max_distance: int = Field(default=80, ge=0, le=256, description="PDQ distance to consider a pair.")
    phash_max_distance: int = Field(default=16, ge=0, le=64, description="pHash distance to consider a pair.")
    pdq_min_quality: int = Field(
        default=50,
        ge=0,
        le=100,
        description=(
            "Below this, a work's global-hash hit must also agree in fine detail "
            "(low_quality_min_detail), and so must the hit of a picture rectangle found on a page."
        ),
    )
    candidate_pdq_min_quality: int = Field(
        default=20,
        ge=0,
        le=100,
        description=(
            "The same gate for a whole scanned picture: lower, because a thumbnail of a "
            "textured work keeps near hashes but loses PDQ quality; the pixel check still "
            "decides. Picture rectangles found on a page keep the works' gate."
        ),
    )
    low_quality_min_detail: float = Field(
        default=0.2,
        description=(
            "A global-hash hit where the work or the candidate (or its rectangle) is under its PDQ "
            "quality gate (a smooth gradient, a near-blank) must correlate this well in its fine "
            "detail, what is left once each picture's smooth shading is taken away, and reach "
            "global_far_min_ncc in the pixels; a picture with no such detail (flat, or smooth "
            "throughout) never matches on global hashes. Above 1: such hits never match."
        ),
    )
    global_min_ncc: float = Field(default=0.75, description="Aligned similarity needed for a global match.")
    global_far_min_ncc: float = Field(
        default=0.90,
        description=(
            "Aligned similarity needed for a whole-picture global match whose hash distance is in "
            "the far half of the allowed one (weak hash evidence needs strong pixel evidence)."
        ),
    )
    toned_min_detail: float = Field(
        default=0.5,
        description=(
            "A whole picture's PDQ hit within half of pdq_max_distance whose pixels fall short of "
            "the check (a copy whose tones were pushed: a deep-fried meme, a strong filter, a hard "
            "contrast, clipped where the work has texture) is kept when its fine detail "
            "correlates this well and its pixels reach toned_min_ncc. Above 1: never."
        ),
    )
    toned_min_ncc: float = Field(
        default=0.5,
        description="Aligned similarity a PDQ hit kept by its fine detail needs (toned_min_detail).",
    )
    toned_far_max_hue: float = Field(
        default=0.1,
        le=1,
        description=(
            "The same for a PDQ hit in the far half of pdq_max_distance (a copy deep-fried for "
            "several rounds), when both pictures have colour and at most this share of the "
            "pixels they both saturate differ in hue (a line drawing and its coloured version "
            "agree in their detail, not in their colours). Below 0: never."
        ),
    )
    cut_aspects: list[float] = Field(
        default=[1.0, 0.8, 1.7778],
        description=(
            "Aspect ratios (width / height) of the centred cuts of each work whose PDQ is indexed "
            "too: the square, 4:5 and 16:9 that social networks, profile pictures and link "
            "previews cut from the middle of a picture. Empty: none."
        ),
    )
    cut_min_share: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description=(
            "A centred cut is indexed only when it leaves out at least this share of the work "
            "(nearer the work's own shape, the whole picture's hashes find it)."
        ),
    )
    round_cut: bool = Field(
        default=True,
        description=(
            "Index each work's centred square filled round too (outside the disk inscribed in it, "
            "the mean level within), and look up a square candidate whose corners outside that "
            "disk are a flat fill (a round profile picture) the same way, within half of "
            "pdq_max_distance."
        ),
    )
    max_hue_disagreement: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "Where a verified match's two pictures are both saturated, the share of those pixels "
            "whose hues may differ by more than 60 degrees (two drawings of one template in "
            "other colours are not a copy); 1 turns the check off."
        ),
    )
    local_max_features: int = Field(default=1000, ge=50, description="ORB features kept per candidate.")
    work_max_features: int = Field(default=1500, ge=50, description="ORB features kept per registered work.")
    index_features: int = Field(default=1000, ge=16, description="Features per work in the retrieval index.")
    descriptor_max_distance: int = Field(default=64, ge=1, le=256, description="Hamming radius for votes.")
    vote_ratio: float = Field(default=0.85, gt=0, le=1, description="Nearest work vs next work, for a vote.")
    vote_neighbours: int = Field(default=4, ge=1, description="Neighbours looked at per descriptor.")
    shortlist: int = Field(default=6, ge=1, description="Works verified geometrically per candidate.")
    min_votes: int = Field(default=5, ge=1, description="Votes a work needs to be verified.")
    shortlist_votes: int = Field(
        default=20,
        ge=1,
        description="Votes that get a work verified even beyond the shortlist (a collage of many works).",
    )
    candidate_feature_side: int = Field(
        default=800,
        ge=0,
        description="Longest side of the copy a candidate's local features come from; 0: the working copy.",
    )
    undo_upscaling: bool = Field(
        default=True,
        description=(
            "A candidate that was enlarged (a detail blown up) also takes local features from a copy "
            "shrunk back by the enlargement, where its real detail is."
        ),
    )
    rematch_min_inliers: int | None = Field(
        default=None,
        ge=0,
        description=(
            "When the index's tentative matches give at least this many RANSAC inliers but no match, "
            "match every feature of the work again (more recall on small crops, more false positives); "
            "unset: never."
        ),
    )
    rematch_top: int = Field(
        default=3,
        ge=0,
        description=(
            "The best-voted works (this many) whose tentative matches from the index give no match are "
            "matched again feature by feature with Lowe's ratio test within the work (small crops, "
            "stretched copies); 0: never."
        ),
    )
    repeat_twins: int = Field(
        default=4,
        ge=0,
        le=16,
        description=(
            "When a rematch finds nothing and many candidate features failed Lowe's test only because "
            "the work repeats them (alike frames, a pattern), each such feature is tried against this "
            "many of its nearest twins in the work and RANSAC keeps the one that fits; 0 or 1: never."
        ),
    )
    repeat_min_votes: int = Field(
        default=30,
        ge=1,
        description="repeat_twins is tried only for a work with this many votes (in one orientation).",
    )
    rematch_min_votes: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Beyond rematch_top: any work with at least this many votes whose tentative matches give "
            "no match is matched again the same way; unset: none beyond rematch_top."
        ),
    )
    min_inliers: int = Field(default=10, ge=4, description="RANSAC inliers for a local match.")
    affine_min_inliers: int = Field(
        default=20,
        ge=4,
        description=(
            "RANSAC inliers for a local match by an affine map (a stretched copy): its six degrees "
            "of freedom find chance agreement among unrelated matches more easily than a similarity."
        ),
    )
    local_min_ncc: float = Field(
        default=0.70,
        description="Aligned similarity needed for a local match (geometry alone never makes one).",
    )
    strong_min_inliers: int = Field(
        default=50,
        ge=4,
        description="A local match with at least this many inliers and a high inlier ratio is strong.",
    )
    strong_inlier_ratio: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="Inlier ratio at or above which a local match with many inliers is strong.",
    )
    strong_min_ncc: float = Field(
        default=0.40,
        description=(
            "Aligned similarity a strong local match needs: a copy under an overlay across the whole "
            "picture (someone else's tiled watermark) keeps its geometry but loses correlation."
        ),
    )
    ransac_threshold: float = Field(default=0.012, gt=0, description="Reprojection error, fraction of side.")
    weak_max_inliers: int = Field(
        default=50,
        ge=0,
        description="A local match with fewer inliers than this and a low inlier ratio is weak.",
    )
    weak_inlier_ratio: float = Field(
        default=0.4,
        ge=0,
        le=1,
        description="Inlier ratio below which a local match with few inliers is weak.",
    )
    placed_top: int = Field(
        default=3,
        ge=0,
        description=(
            "When no work's features or hashes explain a candidate, the best-voted works (this many) "
            "are searched for its own pixels: a corner or piece of a smooth or repetitive work, "
            "whose features all have look-alikes (placed_min_ncc, placed_min_detail); 0: never."
        ),
    )
    placed_min_ncc: float = Field(
        default=0.95,
        le=1,
        description="The aligned similarity a place found by the placed_top search needs.",
    )
    placed_min_detail: float = Field(
        default=0.9,
        le=1,
        description="The fine-detail correlation a place found by the placed_top search needs.",
    )
    weak_min_edge_agreement: float = Field(
        default=0.88,
        ge=0,
        le=1,
        description="Edge agreement a weak local match needs (strong edges of each found in the other).",
    )
    chance_min_ncc: float = Field(
        default=0.95,
        ge=-1,
        le=1,
        description=(
            "Aligned similarity from which a weak local match is kept without comparing its inliers "
            "with what the same matches give when paired at random."
        ),
    )
    threads: int = Field(
        default=1,
        ge=0,
        description=(
            "Threads faiss (OpenMP) and OpenCV use per process; 0: the libraries' default (every core). "
            "One candidate is little work: parallelism comes from worker processes, and OpenMP threads "
            "spin-waiting beside other busy processes slow every analysis down."
        ),
    )


class DiscoverySettings(BaseModel):
    """Crawlers and workers (issue 5): politeness, per-crawl limits, queues, the sweep."""

    depth: int = Field(default=2, ge=0, description="Links followed from the start pages (site spider).")
    max_pages: int = Field(default=1000, ge=1, description="Pages fetched per crawl (images not counted).")
    max_bytes: int = Field(default=500 * 1024 * 1024, ge=1, description="Bytes downloaded per crawl.")
    concurrency: int = Field(default=16, ge=1, description="Requests in flight per crawler process.")
    concurrency_per_domain: int = Field(default=8, ge=1, description="Requests in flight per domain.")
    download_delay: float = Field(default=0.0, ge=0, description="Seconds between requests to a domain.")
    autothrottle: bool = Field(default=True, description="Adapt the delay to the server's latency.")
    autothrottle_target_concurrency: float = Field(default=4.0, gt=0, description="AutoThrottle target.")
    obey_robots: bool = Field(default=True, description="Obey robots.txt.")
    context_chars: int = Field(default=1500, ge=0, description="Text kept around each image (both sides).")
    warc: bool = Field(default=True, description="Write a WARC file of the page and image responses.")
    distributed: bool = Field(
        default=False, description="Share the scheduler and dupefilter on Redis (scrapy-redis)."
    )
    sweep_after: float = Field(default=600.0, gt=0, description="Requeue candidates pending this long (s).")
    sweep_every: float = Field(default=300.0, gt=0, description="How often beat runs the sweep (s).")
    watch_every: float = Field(default=60.0, gt=0, description="How often beat looks for due sources (s).")
    analysis_lease: float = Field(
        default=300.0, gt=0, description="An analysis claimed longer ago than this is taken over (s)."
    )
    visibility_timeout: float = Field(
        default=3600.0, gt=0, description="Redis broker: an unacknowledged task is redelivered after (s)."
    )
    max_retries: int = Field(default=8, ge=0, description="Retries of a task after transient faults.")
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description=(
            "Niceness of worker processes (`monitor worker`) and of an embedded crawl's analysis "
            "process: analysis yields the CPU to a crawl, the API and interactive use on the same "
            "machine, and catches up when they are idle; 0 keeps the normal priority. Crawls a worker "
            "runs for watched sources run at the same niceness."
        ),
    )
    analysis_process: bool = Field(
        default=True,
        description=(
            "Embedded crawls (no Redis): analyse candidates in a child process beside the crawl; "
            "false analyses them on a thread of the crawl's own process (which slows the crawl)."
        ),
    )
    test_analysis_delay: float = Field(
        default=0.0, ge=0, description="Tests only: sleep this long inside each analysis (s)."
    )


class WebhookSettings(BaseModel):
    """Alerts POSTed as signed JSON (``X-Monitor-Signature: sha256=<HMAC-SHA256 of the body>``)."""

    url: str | None = Field(default=None, description="Where alerts are POSTed; unset: no webhook.")
    secret: SecretStr | None = Field(default=None, description="HMAC key; required with url.")
    attempts: int = Field(default=4, ge=1, description="Tries per alert (connection errors, 5xx, 429).")
    backoff: float = Field(default=2.0, ge=0, description="Seconds before the 2nd try; doubles after.")
    timeout: float = Field(default=10.0, gt=0, description="Seconds per try.")


class EmailSettings(BaseModel):
    """Alerts mailed over SMTP (text + HTML with the side-by-side picture inline)."""

    host: str | None = Field(default=None, description="SMTP server; unset: no email.")
    port: int = Field(default=25, ge=1, le=65535)
    user: str | None = None
    password: SecretStr | None = None
    sender: str | None = Field(default=None, description="The From address.")
    to: list[str] = Field(default_factory=list, description="Recipients.")
    starttls: bool = False
    ssl: bool = False
    timeout: float = Field(default=20.0, gt=0)
    attempts: int = Field(default=3, ge=1)
    backoff: float = Field(default=5.0, ge=0)


class ContactSettings(BaseModel):
    """The rights holder, as named in takedown notices (blank lines are left for what is unset)."""

    name: str | None = None
    email: str | None = None
    address: str | None = None
    phone: str | None = None


class AlertSettings(BaseModel):
    """Alert channels, the daily digest, and the contact printed in notices."""

    min_severity: str = Field(default="low", description="Channels are notified from this severity up.")
    digest: bool = Field(default=False, description="Email a daily digest instead of one mail per alert.")
    digest_hour: int = Field(default=8, ge=0, le=23, description="Hour (UTC) beat sends the daily digest.")
    sweep_after: float = Field(
        default=600.0,
        gt=0,
        description="Findings still without an alert this long are alerted by the sweep (s).",
    )
    sweep_every: float = Field(default=300.0, gt=0, description="How often beat runs the alert sweep (s).")
    recheck_every: float = Field(
        default=86400.0,
        ge=0,
        description="Beat rechecks findings last seen online this long ago (s); 0: never.",
    )
    webhook: WebhookSettings = WebhookSettings()
    email: EmailSettings = EmailSettings()
    contact: ContactSettings = ContactSettings()


class DossierSettings(BaseModel):
    """Authorship dossier (generation logs, RFC 3161 time-stamps) and attribution checks
    (visible marks, copyright metadata)."""

    tsa_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for the TSA.")
    tsa_certs: Path | None = Field(
        default=None, description="PEM file of trusted TSA certificates (or their issuers)."
    )
    process_max_items: int = Field(default=5000, ge=1, description="Files kept from one --process folder.")
    mark_font_fraction: float = Field(
        default=0.045, gt=0, le=0.5, description="Stamped mark text height, fraction of the shorter side."
    )
    mark_opacity: float = Field(default=0.7, gt=0, le=1, description="Opacity of the stamped mark.")
    mark_cropped_below: float = Field(
        default=0.5, ge=0, le=1, description="Share of the mark box left in a candidate, below: cropped."
    )
    mark_rest_coverage: float = Field(
        default=0.5, ge=0, le=1, description="Share of the work a candidate must show to judge its mark."
    )
    mark_min_similarity: float = Field(
        default=0.5, description="Mark patch correlation below which the mark counts as removed."
    )
    surround_min_similarity: float = Field(
        default=0.5, description="Correlation the surroundings need before a removal is judged."
    )


class WatermarkSettings(BaseModel):
    """Invisible watermark of published copies (``monitor register --watermark``)."""

    key: SecretStr | None = Field(
        default=None, description="Embedding key, 64 hex digits; default: generated under home/keys."
    )
    key_file: Path | None = Field(default=None, description="Where the generated key lives.")
    default_channel: str = Field(default="site", description="Channel of --watermark without --channel.")
    jpeg_quality: int = Field(default=95, ge=95, le=100, description="Quality of marked JPEG copies.")
    min_psnr: float = Field(default=40.5, ge=30, description="Marked copies keep at least this PSNR (dB).")
    min_ssim: float = Field(
        default=0.982, ge=0.9, le=1, description="Marked copies keep at least this SSIM (mean of R, G, B)."
    )
    strong_match: float = Field(
        default=0.6, description="Visual similarity a match needs before a missing mark is flagged."
    )


class ApiSettings(BaseModel):
    """The HTTP API and dashboard (``monitor serve``)."""

    host: str = Field(default="127.0.0.1", description="Address ``monitor serve`` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port ``monitor serve`` listens on.")
    max_upload_bytes: int = Field(
        default=200 * 1024 * 1024, ge=1024, description="Largest request body (an upload of several files)."
    )
    max_files: int = Field(default=50, ge=1, description="Files per upload request.")
    max_scan_urls: int = Field(default=20, ge=1, description="URLs per scan request.")
    scan_timeout: float = Field(default=900.0, gt=0, description="A scan job is stopped after (s).")
    session_secret: SecretStr | None = Field(
        default=None, description="Signs dashboard cookies; default: generated under home/keys."
    )
    session_hours: float = Field(default=12.0, gt=0, description="A dashboard login lasts this long.")
    secure_cookies: bool = Field(default=False, description="Send the session cookie over HTTPS only.")


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
    tsa_url: str | None = Field(
        default=None, description="RFC 3161 time-stamping authority for dossier entries (MONITOR_TSA_URL)."
    )
    dossier: DossierSettings = DossierSettings()
    match: MatchSettings = MatchSettings()
    alerts: AlertSettings = AlertSettings()
    discovery: DiscoverySettings = DiscoverySettings()
    watermark: WatermarkSettings = WatermarkSettings()
    api: ApiSettings = ApiSettings()

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
    def watermark_key_file(self) -> Path:
        return self.watermark.key_file or self.home / "keys" / "watermark.key"

    @property
    def warc_dir(self) -> Path:
        return self.home / "warc"

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
