"""The owner of every local model deployment and of the loaded models behind them.

The weights are shared: the :class:`ModelManager` keeps **one loaded copy per distinct
resolved model directory and task**, reference-counted across deployments (ten deployments
of one model hold one copy), and frees it when the last deployment using it is undeployed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from ..errors import EsError, not_found, status_exception, unavailable, validation
from ..errors import timeout as timeout_error
from .allocations import AdaptiveAllocations
from .deployment import Deployment, format_seconds
from .loader import load_model
from .models import TASKS, LoadedModel, resolve_device
from .resolve import ResolvedModel, resolve_model

log = logging.getLogger(__name__)


def _retrieve(fut: asyncio.Future) -> None:
    """Mark a shared future's exception as seen (its waiters may all have gone)."""
    if not fut.cancelled():
        fut.exception()


class SharedModel:
    """One loaded copy of a model (directory + task), shared by deployments."""

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key
        self.refs = 0
        self.load: asyncio.Future[LoadedModel] | None = None


class ModelManager:
    """Owns every deployment and the loaded models behind them."""

    def __init__(
        self,
        *,
        aliases: dict[str, str] | None = None,
        cache_dir: str | None = None,
        max_batch_size: int | None = None,
        max_batch_wait_ms: float = 0.0,
        max_queue: int = 10_000,
        device: str = "auto",
        backend: str = "torch",
        scale_to_zero_after_s: float = 900.0,
        scale_down_after_s: float = 60.0,
        adaptive_interval_s: float = 1.0,
    ) -> None:
        self.aliases = dict(aliases or {})
        self.cache_dir = cache_dir
        self.max_batch_size = max_batch_size
        self.max_batch_wait_ms = max_batch_wait_ms
        self.max_queue = max_queue
        self.device = device
        self.backend = backend
        self.scale_to_zero_after_s = scale_to_zero_after_s
        self.scale_down_after_s = scale_down_after_s
        self.adaptive_interval_s = adaptive_interval_s
        self._deployments: dict[str, Deployment] = {}
        self._models: dict[tuple[str, str], SharedModel] = {}
        self._resolving: dict[str, asyncio.Future[ResolvedModel]] = {}
        # Asked before the built-in resolution, in order: ``async (model_id) -> ResolvedModel
        # | None`` (the uploaded trained models register theirs here).
        self.sources: list[Callable[[str], Awaitable[ResolvedModel | None]]] = []
        self._closed = False
        # Counts tokens of large requests off the event loop (a fast tokenizer spreads one
        # call over the cores itself).
        self.tokenize_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize")

    # -- queries -------------------------------------------------------------------------

    def get(self, deployment_id: str) -> Deployment | None:
        return self._deployments.get(deployment_id)

    def deployments(self) -> list[Deployment]:
        return list(self._deployments.values())

    def loaded_models(self) -> dict[tuple[str, str], LoadedModel]:
        """Loaded model copies by (model directory, task)."""
        out = {}
        for key, shared in self._models.items():
            if shared.load is not None and shared.load.done() and not shared.load.cancelled():
                if shared.load.exception() is None:
                    out[key] = shared.load.result()
        return out

    # -- deploy --------------------------------------------------------------------------

    async def deploy(
        self,
        deployment_id: str,
        model_id: str,
        task: str,
        *,
        num_allocations: int | None = 1,
        num_threads: int = 1,
        adaptive: dict | None = None,
        timeout: float | None = None,
    ) -> Deployment:
        """Start (or return the existing) deployment; returns once the model is loaded."""
        if self._closed:
            raise unavailable("the model runtime is shutting down")
        if task not in TASKS:
            raise status_exception(
                400, f"task [{task}] is not supported by local models; use one of {list(TASKS)}"
            )
        existing = self._deployments.get(deployment_id)
        if existing is not None and existing.state == "failed":
            await self.undeploy(deployment_id)
            existing = None
        if existing is not None:
            if existing.model_id != model_id or existing.task != task:
                raise status_exception(
                    400,
                    f"Could not start model deployment because an existing deployment with the same id "
                    f"[{deployment_id}] exists for model [{existing.model_id}] and task [{existing.task}]",
                )
            await self._wait_deploy(existing, timeout)
            return existing

        settings = AdaptiveAllocations.parse(adaptive)
        if num_threads is None or int(num_threads) < 1:
            raise validation("[threads_per_allocation] must be a positive integer")
        if settings is not None and settings.enabled:
            lo, hi = settings.min_number_of_allocations, settings.max_number_of_allocations
            initial = max(1, lo) if num_allocations is None else int(num_allocations)
            initial = min(max(initial, lo, 1), hi)
        else:
            if num_allocations is None or int(num_allocations) < 1:
                raise validation("[number_of_allocations] must be a positive integer")
            initial = int(num_allocations)

        dep = Deployment(
            self,
            deployment_id,
            model_id,
            task,
            num_allocations=initial,
            num_threads=int(num_threads),
            adaptive=settings,
        )
        self._deployments[deployment_id] = dep
        dep._start_task = asyncio.create_task(self._start(dep), name=f"{deployment_id}-start")
        try:
            await self._wait_deploy(dep, timeout)
        except EsError as exc:
            if exc.status != 408 and self._deployments.get(deployment_id) is dep:
                # The caller learns about the failure; do not keep a failed deployment around.
                self._deployments.pop(deployment_id, None)
            raise
        return dep

    async def _wait_deploy(self, dep: Deployment, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                await dep.wait_started()
        except TimeoutError:
            raise timeout_error(
                f"Timed out after [{format_seconds(timeout or 0)}] waiting for model deployment "
                f"[{dep.deployment_id}] to start. Use the trained model stats API to track the state "
                "of the deployment."
            ) from None

    async def _resolve(self, model_id: str) -> ResolvedModel:
        for source in self.sources:
            found = await source(model_id)
            if found is not None:
                return found
        pending = self._resolving.get(model_id)
        if pending is None:
            pending = asyncio.ensure_future(
                asyncio.to_thread(resolve_model, model_id, aliases=self.aliases, cache_dir=self.cache_dir)
            )
            self._resolving[model_id] = pending
            pending.add_done_callback(lambda _f: self._resolving.pop(model_id, None))
            pending.add_done_callback(_retrieve)
        return await asyncio.shield(pending)

    async def _start(self, dep: Deployment) -> None:
        try:
            if self.backend == "torch":
                # A device this host does not have fails the deployment before anything loads.
                await asyncio.to_thread(resolve_device, self.device)
            resolved = await self._resolve(dep.model_id)
            shared = self._acquire(os.path.realpath(resolved.path), dep.task, resolved.loader)
            try:
                model = await asyncio.shield(shared.load)  # type: ignore[arg-type]
            except BaseException:
                self._release(shared)
                raise
            if dep.state != "starting":  # undeployed while loading
                self._release(shared)
                return
            dep._set_started(model, resolved, shared)
            log.info(
                "deployment [%s] started: model [%s] (%s, %s) task [%s] on [%s], %d allocation(s) x %d thread(s)",
                dep.deployment_id,
                dep.model_id,
                resolved.source,
                resolved.path,
                dep.task,
                getattr(model, "device", self.device),
                dep.target_allocation_count,
                dep.threads_per_allocation,
            )
        except asyncio.CancelledError:
            dep._set_failed(
                status_exception(409, f"deployment [{dep.deployment_id}] was stopped while starting")
            )
            raise
        except EsError as exc:
            log.warning("deployment [%s] failed: %s", dep.deployment_id, exc.reason)
            dep._set_failed(exc)
        except Exception as exc:  # loading errors from torch/transformers
            error = status_exception(
                400,
                f"Could not load model [{dep.model_id}] for task [{dep.task}]: {type(exc).__name__}: {exc}",
            )
            log.warning("deployment [%s] failed: %s", dep.deployment_id, error.reason)
            dep._set_failed(error)

    def _acquire(self, path: str, task: str, loader: Callable[..., LoadedModel] | None = None) -> SharedModel:
        key = (path, task)
        shared = self._models.get(key)
        if shared is None:
            shared = SharedModel(key)
            self._models[key] = shared
        if shared.load is None or (
            shared.load.done() and (shared.load.cancelled() or shared.load.exception())
        ):
            log.info("loading model [%s] for task [%s]", path, task)
            load = asyncio.to_thread(
                loader or load_model, path, task, device=self.device, backend=self.backend, cache_dir=self.cache_dir
            )
            shared.load = asyncio.ensure_future(load)
            shared.load.add_done_callback(_retrieve)
        shared.refs += 1
        return shared

    def _release(self, shared: SharedModel) -> None:
        shared.refs -= 1
        if shared.refs > 0:
            return
        if self._models.get(shared.key) is shared:
            del self._models[shared.key]
        load = shared.load

        def _free(fut: asyncio.Future) -> None:
            if not fut.cancelled() and fut.exception() is None:
                fut.result().close()
                log.info("unloaded model [%s] for task [%s]", *shared.key)

        if load is not None:
            if load.done():
                _free(load)
            else:
                load.add_done_callback(_free)

    # -- update / undeploy ---------------------------------------------------------------

    async def update(
        self, deployment_id: str, *, num_allocations: int | None = None, adaptive: dict | None = None
    ) -> Deployment:
        """Change allocations. ``num_allocations`` alone switches adaptive scaling off;
        ``adaptive`` alone replaces the adaptive settings; both with adaptive enabled is an error."""
        dep = self._deployments.get(deployment_id)
        if dep is None:
            raise not_found(f"Could not find trained model deployment [{deployment_id}]")
        settings = AdaptiveAllocations.parse(adaptive) if adaptive is not None else dep.adaptive
        if num_allocations is not None:
            if adaptive is not None and settings is not None and settings.enabled:
                raise validation("[number_of_allocations] cannot be set if adaptive allocations is enabled")
            if int(num_allocations) < 1:
                raise validation("[number_of_allocations] must be a positive integer")
            if settings is not None and settings.enabled:
                # A fixed number of allocations replaces adaptive scaling.
                settings = AdaptiveAllocations(
                    False, settings.min_number_of_allocations, settings.max_number_of_allocations
                )
        dep.adaptive = settings
        if settings is not None and settings.enabled:
            lo, hi = settings.min_number_of_allocations, settings.max_number_of_allocations
            dep._set_allocations(min(max(dep.target_allocation_count, lo), hi))
            if dep.state == "started":
                dep._start_monitor()
        elif num_allocations is not None:
            dep._set_allocations(int(num_allocations))
        elif dep.target_allocation_count == 0:
            dep._set_allocations(1)
        return dep

    async def undeploy(self, deployment_id: str) -> None:
        dep = self._deployments.pop(deployment_id, None)
        if dep is None:
            return
        dep.state = "stopping"
        if dep._monitor is not None:
            dep._monitor.cancel()
        if dep._start_task is not None and not dep._start_task.done():
            dep._start_task.cancel()
            await asyncio.gather(dep._start_task, return_exceptions=True)
        dep._set_failed(dep._stopped_error())  # wakes requests still waiting for the start
        await dep._batcher.close(dep._stopped_error())
        shared, dep._shared, dep._model = dep._shared, None, None
        if shared is not None:
            self._release(shared)
        log.info("deployment [%s] stopped", deployment_id)

    async def close(self) -> None:
        self._closed = True
        for deployment_id in list(self._deployments):
            await self.undeploy(deployment_id)
        self.tokenize_pool.shutdown(wait=False)
