"""The trained model API's core: configs, definition parts and vocabularies (kept in
Elasticsearch by :mod:`.store`), deployments (run by the local runtime,
:class:`~sidecar.runtime.ModelManager`), inference and stats, with Elasticsearch's bodies
and errors. Plain Python in and out; :mod:`sidecar.api.trained_models` does the HTTP.

An uploaded model is *served from what was uploaded*: at deployment start its definition
parts are joined into ``model.pt`` beside its vocabulary and config, in a directory named
after the upload (so a re-upload under the same id never reuses a stale copy), and loaded by
:func:`.torchscript.load_torchscript`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fnmatch
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..errors import (
    EsError,
    action_request_validation,
    already_exists,
    not_found,
    status_exception,
    x_content_parse,
)
from ..runtime import ModelManager, ResolvedModel
from ..runtime.resolve import resolve_model
from . import builtin
from . import config as cfg
from .deployments import DeploymentsMixin
from .store import TrainedModelStore, digest
from .torchscript import CONFIG_FILE, DEFINITION_FILE, RUNTIME_TASKS, VOCABULARY_FILE, load_torchscript

log = logging.getLogger(__name__)


def _missing(model_id: str) -> EsError:
    return not_found(f"Could not find trained model [{model_id}]")


class TrainedModels(DeploymentsMixin):
    def __init__(self, store: TrainedModelStore, models: ModelManager, *, version: str = "12.0.0",
                 cache_dir: str | None = None, default_timeout_s: float = 30.0) -> None:
        self.store = store
        self.models = models
        self.version = version
        self.default_timeout_s = default_timeout_s
        # The restart of recorded deployments, once the sidecar has started it.
        self.restoring: asyncio.Future[None] | None = None
        base = cache_dir or os.path.join(tempfile.gettempdir(), "es-inference-sidecar")
        self.materialise_dir = Path(base) / "trained-models"
        self.downloads = builtin.Downloads(
            lambda model_id: resolve_model(model_id, aliases=models.aliases, cache_dir=models.cache_dir).path)
        self._materialising: dict[str, asyncio.Future[str]] = {}
        self._resolved = {}
        # ``async (id) -> (pipelines, indices)`` using a model or deployment id (the ingest
        # pipelines register theirs): such a model is not deleted, nor its deployment stopped,
        # without ``force``.
        self.reference_finders: list[Callable[[str], Awaitable[tuple[list[str], list[str]]]]] = []
        models.sources.append(self.resolve_source)

    async def referencing_pipelines(self, *ids: str) -> list[str]:
        found: set[str] = set()
        for finder in self.reference_finders:
            for id_ in ids:
                pipelines, _ = await finder(id_)
                found.update(pipelines)
        return sorted(found)

    # -- configs -----------------------------------------------------------------------------
    async def put(self, model_id: str, body: Any, *, wait_for_completion: bool = False,
                  timeout_s: float | None = None) -> dict[str, Any]:
        body = body if body is not None else {}
        now = int(time.time() * 1000)
        if model_id in builtin.PACKAGES:
            if not isinstance(body, dict):
                raise x_content_parse("[trained_model_config] Expected START_OBJECT")
            config = builtin.package_config(model_id, body, version=self.version, now_ms=now)
        else:
            config = cfg.parse_put(model_id, body, version=self.version)
        if not await self.store.create(config):
            raise already_exists(f"Trained machine learning model [{model_id}] already exists")
        if model_id in builtin.PACKAGES:
            self.downloads.forget(model_id)
            self.downloads.start(model_id)
            if wait_for_completion:
                await self.downloads.wait(model_id, timeout_s)
        return cfg.render(config)

    async def config(self, model_id: str) -> dict[str, Any]:
        config = await self.store.get(model_id)
        if config is None:
            raise _missing(model_id)
        return config

    async def fully_defined(self, config: dict[str, Any]) -> bool:
        model_id = config["model_id"]
        if model_id in builtin.PACKAGES:
            download = self.downloads.get(model_id) or self.downloads.start(model_id)
            return download.state == "fully_defined"
        if config.get("model_type") != "pytorch":
            return True
        stored, total, _ = await self.store.parts_summary(model_id)
        return total is not None and stored == total

    async def matching(self, expression: str, *, allow_no_match: bool = True) -> list[dict[str, Any]]:
        """Configs whose id or tag matches ``expression`` (``_all``, ``*``, wildcards, lists)."""
        configs = await self.store.list()
        if expression in ("", "_all", "*"):
            return configs
        out: list[dict[str, Any]] = []
        missing: list[str] = []
        for pattern in (p.strip() for p in expression.split(",") if p.strip()):
            found = [c for c in configs if fnmatch.fnmatchcase(c["model_id"], pattern)
                     or pattern in c.get("tags", [])]
            if not found and (not allow_no_match or "*" not in pattern):
                missing.append(pattern)
            out.extend(c for c in found if c not in out)
        if missing:
            if len(missing) == 1:
                raise _missing(missing[0])
            raise not_found(f"Could not find trained models {missing}")
        return sorted(out, key=lambda c: c["model_id"])

    async def get(self, expression: str, *, include: set[str], allow_no_match: bool = True,
                  from_: int = 0, size: int = 100) -> dict[str, Any]:
        configs = await self.matching(expression, allow_no_match=allow_no_match)
        page = configs[from_:from_ + size]
        rendered = []
        for config in page:
            defined = await self.fully_defined(config) if "definition_status" in include else None
            rendered.append(cfg.render(config, fully_defined=defined, include=include))
        return {"count": len(configs), "trained_model_configs": rendered}

    async def delete(self, model_id: str, *, force: bool = False) -> dict[str, Any]:
        config = await self.config(model_id)
        deployed = [d for d in self.models.deployments() if d.model_id == model_id]
        stored = [d for d in await self.store.deployments() if d["model_id"] == model_id]
        deployment_ids = {d.deployment_id for d in deployed} | {d["deployment_id"] for d in stored}
        if not force and await self.referencing_pipelines(model_id, *deployment_ids):
            raise status_exception(
                409, f"Cannot delete model [{model_id}] as it is still referenced by ingest processors; use force "
                     "to delete the model")
        if (deployed or stored) and not force:
            raise status_exception(
                409, f"Cannot delete model [{model_id}] as it is currently deployed; use force to delete the model")
        self._resolved.clear()
        for deployment_id in deployment_ids:
            await self.models.undeploy(deployment_id)
            await self.store.delete_deployment(deployment_id)
        await self.store.delete(config["model_id"])
        self.downloads.forget(model_id)
        await asyncio.to_thread(shutil.rmtree, self.materialise_dir / f"{model_id}-{digest(config)}", True)
        return {"acknowledged": True}

    # -- definition and vocabulary ------------------------------------------------------------
    async def put_part(self, model_id: str, part: int, body: Any) -> dict[str, Any]:
        cfg.object_body(body, "put_trained_model_definition_part_action", ("definition", "total_definition_length", "total_parts"))
        errors = []
        definition = body.get("definition")
        total_length, total_parts = body.get("total_definition_length"), body.get("total_parts")
        if definition is None:
            errors.append("[definition] must not be null.")
        if part < 0:
            errors.append("[part] must be greater or equal to 0")
        if not isinstance(total_length, int) or total_length <= 0:
            errors.append("[total_definition_length] must be greater than 0")
        if not isinstance(total_parts, int) or total_parts <= 0:
            errors.append("[total_parts] must be greater than 0")
        elif part >= total_parts:
            errors.append("[part] must be less than total_parts")
        if errors:
            raise action_request_validation(*errors)
        config = await self.config(model_id)
        if config.get("model_type") != "pytorch":
            raise status_exception(
                400, f"Unable to store definition for model [{model_id}] as the model type is not [pytorch]")
        try:
            base64.b64decode(definition, validate=True)
        except (binascii.Error, ValueError):
            raise EsError(400, "illegal_argument_exception", "Failed to parse definition part: bad base64") from None
        if not await self.store.put_part(model_id, part, definition, total_parts, total_length):
            raise already_exists(f"Trained machine learning model chunked doc [{model_id}][{part}] already exists")
        return {"acknowledged": True}

    async def put_vocabulary(self, model_id: str, body: Any) -> dict[str, Any]:
        cfg.object_body(body, "put_trained_model_vocabulary_action", ("vocabulary", "merges", "scores"))
        vocab = body.get("vocabulary")
        if not vocab:
            raise action_request_validation("[vocabulary] must not be empty")
        scores = body.get("scores")
        if scores and len(scores) != len(vocab):
            raise action_request_validation(
                f"[scores] must have same length as [vocabulary] but [{len(scores)}] != [{len(vocab)}]")
        config = await self.config(model_id)
        if config.get("model_type") != "pytorch":
            raise status_exception(
                400, f"cannot put vocabulary for model [{model_id}] as it is not of type [pytorch]")
        await self.store.put_vocabulary(model_id, {k: body[k] for k in ("vocabulary", "merges", "scores")
                                                   if body.get(k) is not None})
        return {"acknowledged": True}

    # -- serving -------------------------------------------------------------------------------
    async def resolve_source(self, model_id: str) -> ResolvedModel | None:
        """The runtime's model source: an uploaded model, materialised on disk."""
        if model_id in builtin.PACKAGES:
            return None
        try:
            config = await self.store.get(model_id)
        except EsError:
            return None
        if config is None or config.get("model_type") != "pytorch":
            return None
        path = await self._materialise(config)
        return ResolvedModel(model_id, path, "trained_model", None, (model_id,), loader=load_torchscript)

    async def _materialise(self, config: dict[str, Any]) -> str:
        model_id = config["model_id"]
        target = self.materialise_dir / f"{model_id}-{digest(config)}"
        if (target / DEFINITION_FILE).exists():
            return str(target)
        pending = self._materialising.get(str(target))
        if pending is None:
            pending = asyncio.ensure_future(self._write(config, target))
            self._materialising[str(target)] = pending
            pending.add_done_callback(lambda _f: self._materialising.pop(str(target), None))
        return await asyncio.shield(pending)

    async def _write(self, config: dict[str, Any], target: Path) -> str:
        model_id = config["model_id"]
        stored, total, length = await self.store.parts_summary(model_id)
        if total is None or stored != total:
            raise status_exception(
                400, f"Model definition truncated. Unable to deserialize trained model definition [{model_id}]")
        vocabulary = await self.store.vocabulary(model_id)
        if vocabulary is None:
            raise not_found(f"[{model_id}] Could not find vocabulary document [{model_id}_vocabulary] for model ")
        definition = await self.store.definition(model_id)
        if length is not None and len(definition) != length:
            raise status_exception(
                400, f"Model definition truncated. Unable to deserialize trained model definition [{model_id}]")

        def write() -> str:
            staging = target.with_name(target.name + f".tmp{os.getpid()}")
            staging.mkdir(parents=True, exist_ok=True)
            (staging / DEFINITION_FILE).write_bytes(definition)
            (staging / VOCABULARY_FILE).write_text(json.dumps(vocabulary), encoding="utf-8")
            (staging / CONFIG_FILE).write_text(json.dumps(config), encoding="utf-8")
            try:
                staging.rename(target)
            except OSError:  # another process got there first
                pass
            return str(target)

        return await asyncio.to_thread(write)

    @staticmethod
    def runtime_task(config: dict[str, Any]) -> str:
        task = cfg.task_of(config) or ""
        runtime = RUNTIME_TASKS.get(task)
        if runtime is None:
            raise status_exception(
                400, f"Model [{config['model_id']}] with task type [{task}] cannot be deployed by the sidecar; "
                     f"supported task types are {sorted(RUNTIME_TASKS)}")
        return runtime
