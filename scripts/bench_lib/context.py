"""State shared by the figures of one run: the running stack, the in-process model, the
data, sizes for ``--quick`` and full runs, targets, and clean-up of what a figure created."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import client
from .stack import Elasticsearch, Sidecar, log


@dataclass
class Target:
    figure: str
    name: str
    value: float | None
    op: str  # ">=" or "<="
    threshold: float

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"figure": self.figure, "name": self.name, "value": self.value, "op": self.op,
                "target": self.threshold, "pass": self.passed}


@dataclass
class Context:
    quick: bool
    es: Elasticsearch
    sidecar: Sidecar
    data_dir: Path
    out_dir: Path
    stamp: str
    options: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    _model: Any = None
    _words: list[str] | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _endpoints: list[str] = field(default_factory=list)
    _indices: list[str] = field(default_factory=list)

    # -- sizes -------------------------------------------------------------------------------
    def size(self, quick: int, full: int, option: str | None = None) -> int:
        """``--OPTION`` when given, else the quick or the full size."""
        if option and self.options.get(option):
            return int(self.options[option])
        return quick if self.quick else full

    @property
    def cores(self) -> int:
        return os.cpu_count() or 1

    @property
    def threads(self) -> int:
        """torch threads of the main deployment: a power of two (as Elasticsearch requires)
        no larger than the cores."""
        if self.options.get("threads"):
            return int(self.options["threads"])
        n = 1
        while n * 2 <= self.cores:
            n *= 2
        return n

    # -- shared resources --------------------------------------------------------------------
    @property
    def conn(self) -> client.Conn:
        if "conn" not in self.__dict__:
            self.__dict__["conn"] = client.Conn(self.sidecar.url)
        return self.__dict__["conn"]

    @property
    def es_conn(self) -> client.Conn:
        if "es_conn" not in self.__dict__:
            self.__dict__["es_conn"] = client.Conn(self.es.url)
        return self.__dict__["es_conn"]

    @property
    def model(self):
        if self._model is None:
            from .ceiling import InProcessModel

            log("loading the in-process model (baseline)")
            self._model = InProcessModel()
        return self._model

    @property
    def words(self) -> list[str]:
        if self._words is None:
            from .corpus import corpus_words, load_corpus

            self._words = corpus_words(load_corpus(self.data_dir))
        return self._words

    def endpoint(self, prefix: str, *, allocations: int = 1, threads: int | None = None) -> str:
        """A fresh inference endpoint on the packaged model (fresh, so that no embedding cached
        by an earlier measurement is reused)."""
        inference_id = f"bench-{prefix}-{self.stamp.lower()}-{next(self._ids)}"
        client.put_endpoint(self.conn, inference_id, allocations=allocations,
                            threads=self.threads if threads is None else threads)
        self._endpoints.append(inference_id)
        return inference_id

    def drop_endpoint(self, inference_id: str) -> None:
        client.delete_endpoint(self.conn, inference_id)
        if inference_id in self._endpoints:
            self._endpoints.remove(inference_id)

    def index(self, name: str) -> str:
        full = f"bench-{name}"
        self._indices.append(full)
        return full

    def deployment_stats(self, inference_id: str) -> dict[str, Any]:
        answer = self.conn.json("GET", f"/_ml/trained_models/{inference_id}/_stats")
        stats = answer.get("trained_model_stats") or [{}]
        return stats[0].get("deployment_stats") or {}

    def cleanup(self) -> None:
        for inference_id in list(self._endpoints):
            try:
                self.drop_endpoint(inference_id)
            except Exception as exc:  # best effort: the run's results matter more
                log(f"could not delete endpoint {inference_id}: {exc}")
        if not self.options.get("keep_indices"):
            for index in self._indices:
                try:
                    client.delete_index(self.es_conn, index)
                except Exception as exc:
                    log(f"could not delete index {index}: {exc}")

    # -- targets -----------------------------------------------------------------------------
    def target(self, figure: str, name: str, value: float | None, op: str, threshold: float) -> None:
        self.targets.append(Target(figure, name, value, op, threshold))
