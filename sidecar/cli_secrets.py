"""``es-inference-sidecar rotate-secrets``: re-encrypt every stored endpoint secret with the
newest secrets key.

Rotation, step by step:

1. give every sidecar the new key first and the old one after it
   (``SIDECAR_SECRETS_KEY="NEW,OLD"``) and restart them: they now read both, write with NEW;
2. run ``es-inference-sidecar rotate-secrets`` with the same settings: each stored secret is
   decrypted and written back encrypted with NEW;
3. drop OLD from the sidecars' settings.

It takes the same connection flags and ``SIDECAR_*`` variables as the sidecar itself
(``--es-url``, ``--es-username``/``--es-password``/``--es-api-key``, ``--es-ca-file``,
``--secrets-key-file``). Nothing secret is ever printed.
"""

from __future__ import annotations

import asyncio
import sys

from cryptography.fernet import InvalidToken

from .config import Config, from_args
from .endpoints.secrets import SecretBox
from .endpoints.store import EndpointStore
from .errors import EsError
from .es.client import sidecar_client
from .logs import redact

USAGE = "usage: es-inference-sidecar rotate-secrets [--es-url URL] [--secrets-key-file FILE] [...]"


def _fail(message: str) -> int:
    print(f"es-inference-sidecar rotate-secrets: error: {message}", file=sys.stderr)
    return 1


async def rotate(config: Config) -> int:
    """Re-encrypt the stored secrets; returns how many were rewritten."""
    es = sidecar_client(config)
    try:
        store = EndpointStore(es, SecretBox(config.secrets_key_bytes()), prefix=config.system_index_prefix)
        return await store.reencrypt_all()
    finally:
        await es.close()


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        print(__doc__)
        return 0
    config = from_args(argv)
    try:
        key_material = config.secrets_key_bytes()
    except OSError as exc:
        return _fail(f"cannot read the secrets key file: {exc.strerror or type(exc).__name__}")
    keys = [k for k in (key_material or b"").split(b",") if k.strip()]
    if not keys:
        return _fail("no secrets key: set SIDECAR_SECRETS_KEY=\"NEW,OLD\" or --secrets-key-file")
    if len(keys) == 1:
        print("note: only one key is configured; secrets are re-encrypted with that same key", file=sys.stderr)
    try:
        count = asyncio.run(rotate(config))
    except InvalidToken:
        return _fail("a stored secret cannot be decrypted with any of the given keys; list every key still "
                     "in use, newest first (secrets already re-encrypted stay readable with the newest key)")
    except EsError as exc:
        return _fail(exc.reason)
    except Exception as exc:  # connection and authorization failures, reported without a traceback
        return _fail(redact(f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"))
    print(f"re-encrypted {count} stored secret(s) with the newest key")
    return 0
