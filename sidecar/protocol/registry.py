"""Finds every service module and hands out one instance of each service."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any

from ..errors import status_exception
from .service import Service

_CLASSES: dict[str, type[Service]] = {}


def register(cls: type[Service]) -> type[Service]:
    """Class decorator: make a service known under ``cls.name``."""
    _CLASSES[cls.name] = cls
    return cls


def _discover() -> None:
    """Imports every module of :mod:`sidecar.services`: each is one provider and registers
    its service (the machinery they share lives apart, in :mod:`sidecar.remote`,
    :mod:`sidecar.runtime.local_service` and this package)."""
    from .. import services as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")


@dataclass
class ServiceContext:
    """What services may need from the process: the model runtime, HTTP sessions, config."""

    config: Any = None
    models: Any = None  # sidecar.runtime.ModelManager
    extras: dict[str, Any] = field(default_factory=dict)


class Services:
    def __init__(self, context: ServiceContext) -> None:
        _discover()
        self.context = context
        self._services: dict[str, Service] = {}
        for name, cls in sorted(_CLASSES.items()):
            try:
                self._services[name] = cls(context)  # type: ignore[call-arg]
            except TypeError:
                self._services[name] = cls()

    def get(self, name: str) -> Service:
        service = self._services.get(name)
        if service is None:
            raise status_exception(400, f"Unknown service [{name}]")
        return service

    def find(self, name: str) -> Service | None:
        return self._services.get(name)

    def all(self) -> list[Service]:
        return [self._services[n] for n in sorted(self._services)]

    async def close(self) -> None:
        for service in self._services.values():
            close = getattr(service, "close", None)
            if close is not None:
                await close()
