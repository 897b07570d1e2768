"""Content-addressed blob store: files named by the SHA-256 of their bytes.

``<root>/ab/cd/abcd…`` — deterministic paths, written atomically (temporary file, fsync,
rename), so a crash never leaves a half-written blob under a real name and storing the same
bytes twice is harmless.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from monitor.errors import RegistryError


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise RegistryError(f"not a SHA-256 hex digest: {sha256[:70]!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data``; returns its SHA-256 hex digest."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if target.exists():
            return digest
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise RegistryError(f"cannot write to the blob store at {self.root}: {exc}") from exc
        return digest

    def get(self, sha256: str) -> bytes:
        try:
            return self.path_for(sha256).read_bytes()
        except FileNotFoundError as exc:
            raise RegistryError(f"blob {sha256} is missing from {self.root}") from exc

    def __contains__(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()
