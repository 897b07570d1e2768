"""The installation's Ed25519 signing key, for evidence manifests.

Generated on first use under ``MONITOR_HOME/keys/`` (PKCS#8 PEM, mode 0600, in a 0700
directory), never logged. Creation is atomic (written to a private temporary file, then
hard-linked to its name), so two processes starting at once end up with the same key.
Signatures are plain Ed25519 over the exact bytes: ``openssl pkeyutl -verify -pubin -inkey
public_key.pem -rawin -in manifest.json -sigfile manifest.sig`` checks them too.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from monitor.errors import SigningError

log = logging.getLogger(__name__)

KEY_FILE = Path("keys") / "installation-ed25519.pem"


def key_fingerprint(public: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


class InstallationKey:
    """The private key of this installation and what can be published about it."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()

    def __repr__(self) -> str:
        return f"InstallationKey(fingerprint={self.fingerprint[:16]}…)"

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.public)

    def public_pem(self) -> bytes:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    @classmethod
    def load_or_create(cls, home: Path) -> InstallationKey:
        """The key under ``home``, generated first if there is none."""
        path = home / KEY_FILE
        if not path.exists():
            _create(path)
        return cls(_load(path))


def _create(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")  # mkstemp makes it 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):  # another process made it meanwhile: keep theirs
                os.link(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        raise SigningError(f"cannot create the signing key at {path}: {exc.strerror or exc}") from exc
    log.info("created the installation signing key at %s", path)


def _load(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("the signing key %s was readable by others (mode %o); setting it to 0600", path, mode)
            path.chmod(0o600)
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read the signing key at {path}: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"the signing key at {path} is not a usable PEM key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"the signing key at {path} is not an Ed25519 key")
    return key


def load_public_pem(data: bytes) -> Ed25519PublicKey:
    """A public key from PEM bytes, or :class:`SigningError`."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SigningError("not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError("the public key is not an Ed25519 key")
    return key


def verify_signature(public: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True
