"""Encryption at rest for endpoint secrets (API keys, service-account JSON, …).

The operator gives a key (``SIDECAR_SECRETS_KEY`` or ``--secrets-key-file``). A Fernet key
(url-safe base64 of 32 bytes, as ``Fernet.generate_key()`` makes) is used as it is; any other
text is stretched into one with HKDF-SHA256. Several keys may be given separated by commas,
newest first: new secrets are encrypted with the first, all of them decrypt (rotation).
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import EsError, status_exception

_SALT = b"es-inference-sidecar/secrets/v1"


def _fernet_key(material: bytes) -> bytes:
    material = material.strip()
    try:
        if len(base64.urlsafe_b64decode(material)) == 32:
            return material
    except (binascii.Error, ValueError):
        pass
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=b"fernet").derive(material)
    return base64.urlsafe_b64encode(derived)


def generate_key() -> str:
    return Fernet.generate_key().decode()


def ensure_key_file(path: str | os.PathLike[str]) -> str:
    """Create a key file with mode 0600 if it does not exist; return its path."""
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    if not p.exists():
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(generate_key() + "\n")
    return str(p)


class SecretBox:
    def __init__(self, key_material: bytes | None) -> None:
        self._fernet: MultiFernet | None = None
        if key_material:
            keys = [k for k in key_material.split(b",") if k.strip()]
            self._fernet = MultiFernet([Fernet(_fernet_key(k)) for k in keys])

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def encrypt(self, secrets: dict[str, Any]) -> str:
        if self._fernet is None:
            raise status_exception(
                400,
                "Cannot store secret settings: no secrets encryption key is configured for the sidecar. "
                "Set SIDECAR_SECRETS_KEY or --secrets-key-file and restart it.",
            )
        return self._fernet.encrypt(orjson.dumps(secrets)).decode()

    def decrypt(self, token: str, inference_id: str) -> dict[str, Any]:
        if self._fernet is None:
            raise status_exception(
                500,
                f"Cannot read the secret settings of inference endpoint [{inference_id}]: no secrets "
                "encryption key is configured for the sidecar",
            )
        try:
            return orjson.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise EsError(
                500,
                "status_exception",
                f"Cannot decrypt the secret settings of inference endpoint [{inference_id}]: the "
                "configured secrets key does not match the one they were stored with",
            ) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt with the newest key."""
        assert self._fernet is not None
        return self._fernet.rotate(token.encode()).decode()
