"""Long-running work the sidecar does itself (reindexes through the ingest path), visible
through ``GET /_tasks/{task_id}`` in Elasticsearch's task shape.

Running tasks live in the process that runs them; their progress is written every few
seconds, and their outcome on completion, to the hidden index ``.sidecar-tasks``, so any
replica of the sidecar can answer for them and results survive restarts. A task whose
process died shows as not completed with its last progress and an ``error``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from .errors import EsError
from .es.system_indices import ensure_hidden_indices

log = logging.getLogger("sidecar.tasks")
NODE_PREFIX = "sidecar-"
_MAPPING = {"dynamic": "strict", "properties": {
    "completed": {"type": "boolean"},
    "task": {"type": "object", "enabled": False},
    "response": {"type": "object", "enabled": False},
    "error": {"type": "object", "enabled": False},
    "heartbeat": {"type": "date", "format": "epoch_millis"},
}}
HEARTBEAT_S = 2.0


@dataclass
class Task:
    id: str
    action: str
    description: str
    status: dict[str, Any]
    start_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    started: float = field(default_factory=time.monotonic)
    completed: bool = False
    cancelled: bool = False
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    # The HTTP status a caller waiting for the task gets when it failed.
    error_status: int = 500
    runner: asyncio.Task | None = None

    def info(self) -> dict[str, Any]:
        node = self.id.split(":")[0]
        return {
            "node": node,
            "id": int(self.id.split(":")[1]),
            "type": "transport",
            "action": self.action,
            "status": self.status,
            "description": self.description,
            "start_time_in_millis": self.start_ms,
            "running_time_in_nanos": int((time.monotonic() - self.started) * 1e9),
            "cancellable": True,
            "cancelled": self.cancelled,
            "headers": {},
        }

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"completed": self.completed, "task": self.info(),
                               "heartbeat": int(time.time() * 1000)}
        if self.response is not None:
            doc["response"] = self.response
        if self.error is not None:
            doc["error"] = self.error
        return doc


class Tasks:
    def __init__(self, es: AsyncElasticsearch, index: str = ".sidecar-tasks") -> None:
        self.es = es
        self.index = index
        self.node = NODE_PREFIX + secrets.token_urlsafe(6).replace("-", "x").replace("_", "y")
        self._next = 1
        self._tasks: dict[str, Task] = {}
        self._index_ready = False

    async def _ensure_index(self) -> None:
        if self._index_ready:
            return
        await ensure_hidden_indices(self.es, {self.index: _MAPPING})
        self._index_ready = True

    async def _persist(self, task: Task) -> None:
        try:
            await self._ensure_index()
            await self.es.index(index=self.index, id=task.id, document=task.document())
        except Exception:  # progress reporting must never break the work itself
            log.warning("could not record task %s", task.id, exc_info=True)

    def start(self, action: str, description: str, status: dict[str, Any],
              work: Callable[[Task], Awaitable[dict[str, Any]]]) -> Task:
        task = Task(id=f"{self.node}:{self._next}", action=action, description=description, status=status)
        self._next += 1
        self._tasks[task.id] = task

        async def run() -> None:
            beat = asyncio.create_task(self._heartbeat(task))
            try:
                task.response = await work(task)
            except asyncio.CancelledError:
                task.cancelled = True
                task.error = {"type": "task_cancelled_exception", "reason": "by user request"}
            except EsError as err:
                task.error = err.to_cause()
                task.error_status = err.status
            except Exception as exc:  # pragma: no cover - reported, not lost
                log.exception("task %s failed", task.id)
                task.error = {"type": "exception", "reason": f"{type(exc).__name__}: {exc}"}
            finally:
                task.completed = True
                beat.cancel()
                await self._persist(task)

        task.runner = asyncio.create_task(run())
        return task

    async def _heartbeat(self, task: Task) -> None:
        while True:
            await self._persist(task)
            await asyncio.sleep(HEARTBEAT_S)

    def owns(self, task_id: str) -> bool:
        return task_id.startswith(NODE_PREFIX)

    async def get(self, task_id: str, wait: bool = False, timeout_s: float | None = 30.0) -> dict[str, Any]:
        task = self._tasks.get(task_id)
        if task is not None:
            if wait and not task.completed and task.runner is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(task.runner), timeout_s)
                except TimeoutError:
                    raise EsError(408, "elasticsearch_timeout_exception",
                                  f"Timed out waiting for completion of task [{task_id}]") from None
            body = {"completed": task.completed, "task": task.info()}
            if task.response is not None:
                body["response"] = task.response
            if task.error is not None:
                body["error"] = task.error
            return body
        try:
            await self._ensure_index()
            doc = await self.es.get(index=self.index, id=task_id)
        except NotFoundError:
            raise EsError(404, "resource_not_found_exception",
                          f"task [{task_id}] isn't running and hasn't stored its results") from None
        stored = dict(doc["_source"])
        stored.pop("heartbeat", None)
        if not stored.get("completed") and time.time() * 1000 - doc["_source"].get("heartbeat", 0) > 30_000:
            stored["error"] = {"type": "status_exception",
                               "reason": "the sidecar process running this task stopped before it completed"}
        return stored

    def local(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    async def cancel(self, task_id: str) -> bool:
        task = self._tasks.get(task_id)
        if task is None or task.completed or task.runner is None:
            return False
        task.runner.cancel()
        return True

    async def close(self) -> None:
        for task in self._tasks.values():
            if task.runner is not None and not task.runner.done():
                task.runner.cancel()
