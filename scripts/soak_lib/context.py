"""State shared by the soak's phases."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from .embeddings import EmbeddingsServer, endpoint_config
from .report import Report
from .stack import Elasticsearch, SetupError, Sidecar, call, log


@dataclass
class Context:
    args: argparse.Namespace
    es: Elasticsearch
    workdir: Path
    embeddings: EmbeddingsServer
    sidecar_env: dict[str, str]
    session: aiohttp.ClientSession
    report: Report
    prefix: str
    created_indices: list[str] = field(default_factory=list)
    sidecars: list[Sidecar] = field(default_factory=list)

    @property
    def es_url(self) -> str:
        return self.es.url

    async def start_sidecar(self, name: str, es_url: str | None = None, env: dict[str, str] | None = None) -> Sidecar:
        sidecar = Sidecar(es_url or self.es_url, self.workdir / f"sidecar-{name}.log",
                          {**self.sidecar_env, **(env or {})})
        await asyncio.get_running_loop().run_in_executor(None, sidecar.start)
        self.sidecars.append(sidecar)
        log(f"sidecar for [{name}] on {sidecar.url} (pid {sidecar.pid}, log {sidecar.log_path})")
        return sidecar

    def stop_sidecar(self, sidecar: Sidecar) -> None:
        sidecar.stop()
        if sidecar in self.sidecars:
            self.sidecars.remove(sidecar)

    async def put_openai_endpoint(self, sidecar: Sidecar, inference_id: str) -> None:
        status, body = await call(self.session, "PUT", f"{sidecar.url}/_inference/text_embedding/{inference_id}",
                                  endpoint_config(self.embeddings.url))
        if status != 200:
            raise SetupError(f"could not create the inference endpoint [{inference_id}]: {status} {body}")

    async def create_index(self, sidecar: Sidecar, index: str, properties: dict, **settings) -> None:
        body = {"settings": {"number_of_replicas": 0, **settings},
                "mappings": {"dynamic": False, "properties": properties}}
        status, answer = await call(self.session, "PUT", f"{sidecar.url}/{index}", body)
        if status != 200:
            raise SetupError(f"could not create the index [{index}]: {status} {answer}")
        self.created_indices.append(index)

    async def es_count(self, index: str, query: dict | None = None) -> int:
        await call(self.session, "POST", f"{self.es_url}/{index}/_refresh")
        status, body = await call(self.session, "POST", f"{self.es_url}/{index}/_count",
                                  {"query": query or {"match_all": {}}})
        if status != 200 or not isinstance(body, dict):
            raise SetupError(f"could not count [{index}]: {status} {body}")
        return int(body["count"])

    async def cleanup(self) -> None:
        for sidecar in list(self.sidecars):
            self.stop_sidecar(sidecar)
        if self.args.keep:
            return
        for index in self.created_indices:
            try:
                await call(self.session, "DELETE", f"{self.es_url}/{index}", timeout=60)
            except (aiohttp.ClientError, TimeoutError):
                pass
        for store in (".sidecar-inference", ".sidecar-inference-secrets"):
            try:
                await call(self.session, "POST", f"{self.es_url}/{store}/_delete_by_query?refresh=true"
                           "&ignore_unavailable=true", {"query": {"prefix": {"inference_id": self.prefix}}},
                           timeout=60)
            except (aiohttp.ClientError, TimeoutError):
                pass
