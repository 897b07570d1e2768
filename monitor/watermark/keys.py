"""The installation's watermark key: 256 random bits, created on first use, never logged.

The key seeds every keyed choice of the mark (which chips carry which payload bit, with
which sign) through HMAC-SHA256, and authenticates the payload (a keyed checksum), so
without it the mark can be neither read nor forged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from monitor.errors import ConfigError

KEY_BYTES = 32


@dataclass(frozen=True)
class WatermarkKey:
    """A secret key. ``repr`` and ``str`` never show it; ``key_id`` names it safely."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise ConfigError(f"a watermark key has {KEY_BYTES} bytes, not {len(self.secret)}")

    @classmethod
    def generate(cls) -> WatermarkKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_hex(cls, text: str) -> WatermarkKey:
        try:
            return cls(bytes.fromhex(text.strip()))
        except ValueError:
            raise ConfigError(f"a watermark key is {2 * KEY_BYTES} hex digits") from None

    @property
    def key_id(self) -> str:
        """A public name for the key (16 hex digits); reveals nothing about it."""
        return self.mac(b"key-id")[:8].hex()

    def mac(self, message: bytes) -> bytes:
        return hmac.new(self.secret, message, hashlib.sha256).digest()

    def rng(self, label: str) -> np.random.Generator:
        """A generator seeded from ``HMAC(key, label)``: the same label, the same stream."""
        return np.random.default_rng(int.from_bytes(self.mac(label.encode()), "big"))


def load_or_create_key(path: Path) -> WatermarkKey:
    """The key stored in ``path`` (hex), created there (mode 0600) when the file is missing."""
    try:
        return WatermarkKey.from_hex(path.read_text())
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot read the watermark key file {path}: {exc.strerror or exc}") from exc
    key = WatermarkKey.generate()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return WatermarkKey.from_hex(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot create the watermark key file {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "w") as fh:
        fh.write(key.secret.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return key
