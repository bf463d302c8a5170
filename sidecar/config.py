"""Configuration from CLI flags and ``SIDECAR_*`` environment variables (no config file)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"SIDECAR_{name}", default)


def parse_aliases(text: str | None) -> dict[str, str]:
    """``id=target,id2=target2`` → dict (used by ``SIDECAR_MODEL_ALIASES``)."""
    aliases: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"model alias [{part}] must look like MODEL_ID=TARGET")
        key, value = part.split("=", 1)
        aliases[key.strip()] = value.strip()
    return aliases


@dataclass
class Config:
    es_url: str = "http://127.0.0.1:9200"
    host: str = "127.0.0.1"
    port: int = 9201
    # Credentials the sidecar uses for its own hidden indices (callers' credentials are
    # forwarded unchanged on proxied requests).
    es_username: str | None = None
    es_password: str | None = None
    es_api_key: str | None = None
    es_ca_file: str | None = None
    es_verify_certs: bool = True
    secrets_key: str | None = field(default=None, repr=False)
    secrets_key_file: str | None = None
    model_aliases: dict[str, str] = field(default_factory=dict)
    model_cache_dir: str | None = None
    # How long a cached endpoint definition is trusted before its version is re-checked.
    registry_ttl_s: float = 1.0
    # Micro-batching of local models.
    max_batch_size: int = 0  # 0: 32 on CPU, 256 on GPU
    max_batch_wait_ms: float = 0.0
    max_queue: int = 10_000
    # Where local models run: "auto" (the first CUDA GPU when torch sees one, else the CPU),
    # "cpu", "cuda" or "cuda:N".
    device: str = "auto"
    # How local models run: "torch" (the reference: fp32 through sentence-transformers) or
    # "onnx-int8" (ONNX Runtime with dynamically quantised int8 weights, CPU only).
    backend: str = "torch"
    # What local torch models compute in: "auto" (bfloat16 or float16 on a CUDA GPU, float32 on
    # the CPU), "float32", "float16" or "bfloat16".
    dtype: str = "auto"
    # HTTP worker processes on the one port (SO_REUSEPORT); each loads its own model copies.
    workers: int = 1
    # The asyncio event loop: "auto" (uvloop when installed, else asyncio's own), "uvloop"
    # or "asyncio". uvloop moves socket I/O into C: less CPU per proxied request.
    event_loop: str = "auto"
    # Default timeout for perform-inference calls (ES default 30 s).
    inference_timeout_s: float = 30.0
    log_level: str = "INFO"
    # The access log (JSON lines at INFO): "sidecar" (requests the sidecar answered or changed
    # itself; those handed to Elasticsearch untouched are Elasticsearch's answers and are not
    # logged), "all" or "off".
    access_log: str = "sidecar"
    # HTTPS for the sidecar's own listener (PEM files).
    tls_cert: str | None = None
    tls_key: str | None = None
    system_index_prefix: str = ".sidecar-inference"

    def redacted(self) -> dict[str, object]:
        """The settings for a log line, credentials masked."""
        out: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name in ("es_password", "es_api_key", "secrets_key") and value:
                value = "[REDACTED]"
            out[name] = value
        return out

    def secrets_key_bytes(self) -> bytes | None:
        if self.secrets_key:
            return self.secrets_key.encode()
        if self.secrets_key_file:
            return Path(self.secrets_key_file).read_bytes().strip()
        return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="es-inference-sidecar",
        description="Serve the Elasticsearch Inference API in front of any Elasticsearch node.",
    )
    p.add_argument("--es-url", default=_env("ES_URL", Config.es_url), help="Elasticsearch URL [SIDECAR_ES_URL]")
    p.add_argument("--host", default=_env("HOST", Config.host), help="listen address [SIDECAR_HOST]")
    p.add_argument("--port", type=int, default=int(_env("PORT", str(Config.port))), help="listen port [SIDECAR_PORT]")
    p.add_argument("--es-username", default=_env("ES_USERNAME"), help="[SIDECAR_ES_USERNAME]")
    p.add_argument("--es-password", default=_env("ES_PASSWORD"), help="[SIDECAR_ES_PASSWORD]")
    p.add_argument("--es-api-key", default=_env("ES_API_KEY"), help="[SIDECAR_ES_API_KEY]")
    p.add_argument("--es-ca-file", default=_env("ES_CA_FILE"), help="CA bundle for TLS to ES [SIDECAR_ES_CA_FILE]")
    p.add_argument(
        "--secrets-key-file",
        default=_env("SECRETS_KEY_FILE"),
        help="file holding the key that encrypts stored secrets [SIDECAR_SECRETS_KEY_FILE]; "
        "or set SIDECAR_SECRETS_KEY",
    )
    p.add_argument(
        "--model-aliases",
        default=_env("MODEL_ALIASES", ""),
        help="MODEL_ID=TARGET,... overrides of model ids [SIDECAR_MODEL_ALIASES]",
    )
    p.add_argument("--model-cache-dir", default=_env("MODEL_CACHE_DIR"), help="[SIDECAR_MODEL_CACHE_DIR]")
    p.add_argument("--max-batch-size", type=int, default=int(_env("MAX_BATCH_SIZE", "0")),
                   help="items per micro-batch; 0 (default): 32 on CPU, 256 on GPU [SIDECAR_MAX_BATCH_SIZE]")
    p.add_argument("--max-batch-wait-ms", type=float, default=float(_env("MAX_BATCH_WAIT_MS", "0")))
    p.add_argument("--max-queue", type=int, default=int(_env("MAX_QUEUE", "10000")))
    p.add_argument(
        "--device",
        default=_env("DEVICE", Config.device),
        help="where local models run: auto, cpu, cuda or cuda:N [SIDECAR_DEVICE]",
    )
    p.add_argument(
        "--backend",
        default=_env("BACKEND", Config.backend),
        choices=("torch", "onnx-int8"),
        help="how local models run: torch (fp32) or onnx-int8 (ONNX Runtime, CPU) [SIDECAR_BACKEND]",
    )
    p.add_argument(
        "--dtype",
        default=_env("DTYPE", Config.dtype),
        choices=("auto", "float32", "float16", "bfloat16"),
        help="what local torch models compute in: auto (bfloat16/float16 on a CUDA GPU, float32 on "
        "the CPU), float32, float16 or bfloat16 [SIDECAR_DTYPE]",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", str(Config.workers))),
        help="HTTP worker processes sharing the port (SO_REUSEPORT); each holds its own copy of the "
        "local models it serves [SIDECAR_WORKERS]",
    )
    p.add_argument(
        "--event-loop",
        default=_env("EVENT_LOOP", Config.event_loop),
        choices=("auto", "uvloop", "asyncio"),
        help="event loop implementation [SIDECAR_EVENT_LOOP]",
    )
    p.add_argument("--registry-ttl", type=float, default=float(_env("REGISTRY_TTL", "1.0")))
    p.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"))
    p.add_argument(
        "--access-log",
        default=_env("ACCESS_LOG", Config.access_log),
        choices=("sidecar", "all", "off"),
        help="one JSON line per request: those the sidecar answered or changed itself (default), all "
        "(those passed to Elasticsearch untouched too), or none [SIDECAR_ACCESS_LOG]",
    )
    p.add_argument("--tls-cert", default=_env("TLS_CERT"), help="PEM certificate (chain) to serve HTTPS [SIDECAR_TLS_CERT]")
    p.add_argument("--tls-key", default=_env("TLS_KEY"), help="PEM private key of --tls-cert [SIDECAR_TLS_KEY]")
    return p


def from_args(argv: list[str] | None = None) -> Config:
    args = build_parser().parse_args(argv)
    return Config(
        es_url=args.es_url.rstrip("/"),
        host=args.host,
        port=args.port,
        es_username=args.es_username,
        es_password=args.es_password,
        es_api_key=args.es_api_key,
        es_ca_file=args.es_ca_file,
        secrets_key=_env("SECRETS_KEY"),
        secrets_key_file=args.secrets_key_file,
        model_aliases=parse_aliases(args.model_aliases),
        model_cache_dir=args.model_cache_dir,
        max_batch_size=args.max_batch_size,
        max_batch_wait_ms=args.max_batch_wait_ms,
        max_queue=args.max_queue,
        device=args.device,
        backend=args.backend,
        dtype=args.dtype,
        workers=args.workers,
        event_loop=args.event_loop,
        registry_ttl_s=args.registry_ttl,
        log_level=args.log_level,
        access_log=args.access_log,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
