"""The README's service × task type table is the code's, and every cell in it is tested.

The table between the ``services-table`` markers is rendered here from the services themselves
(task types, the Elasticsearch version that added each, streaming); a cell is backed by a
:class:`ProviderSuite` of that service and task type (remote services) or by the named tests of
the local services."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from providers.harness import ProviderSuite

from sidecar.protocol.catalogue import _as_since, service_since
from sidecar.protocol.registry import ServiceContext, Services
from sidecar.protocol.service import Service, TaskType

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = (TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING, TaskType.RERANK, TaskType.COMPLETION,
           TaskType.CHAT_COMPLETION, TaskType.EMBEDDING)
START, END = "<!-- services-table -->", "<!-- /services-table -->"
# Local services run models in the sidecar; their tests use real (tiny or packaged) models.
LOCAL_TESTS = {
    ("elasticsearch", TaskType.TEXT_EMBEDDING): "tests/test_inference_api.py",
    ("elasticsearch", TaskType.SPARSE_EMBEDDING): "tests/test_inference_api.py",
    ("elasticsearch", TaskType.RERANK): "tests/test_inference_api.py",
    ("elasticsearch", TaskType.EMBEDDING): "tests/test_embedding_task.py",
    ("elser", TaskType.SPARSE_EMBEDDING): "tests/test_inference_api.py",
}


def _versions(since) -> str:
    return " / ".join(".".join(str(p) for p in v[:2]) for v in since) if since else ""


def render(services: list[Service]) -> str:
    lines = ["| service | since | " + " | ".join(f"`{c.value}`" for c in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for service in services:
        cells = []
        for task in COLUMNS:
            if task not in service.task_types:
                cells.append("")
                continue
            cell = "✓"
            if task in getattr(service, "streaming_tasks", ()):
                cell += " stream"
            since = _as_since(service.task_types_since.get(task))
            if task in service.extra_task_types:
                cell += " (sidecar)"
            elif since:
                cell += f" ({_versions(since)}+)"
            cells.append(cell)
        name = f"`{service.name}`" + (" ¹" if service.hidden_from_catalogue else "")
        lines.append(f"| {name} | {_versions(service_since(service))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _suites() -> set[tuple[str, TaskType]]:
    for path in sorted((ROOT / "tests").glob("test_provider_*.py")):
        importlib.import_module(path.stem)
    found, todo = set(), list(ProviderSuite.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__name__.startswith("Test") and hasattr(cls, "task") and hasattr(cls, "service_cls"):
            found.add((cls.service_cls.name, cls.task))
    return found


def test_readme_table_is_the_services() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), readme, re.DOTALL)
    assert match, "README.md lacks the services table markers"
    expected = render(Services(ServiceContext()).all())
    assert match.group(1).strip() == expected, "README services table is out of date; it should read:\n" + expected


def test_every_cell_is_tested() -> None:
    suites = _suites()
    untested = []
    for service in Services(ServiceContext()).all():
        for task in service.task_types:
            local = LOCAL_TESTS.get((service.name, task))
            if local is not None:
                assert service.name in (ROOT / local).read_text(encoding="utf-8"), (service.name, local)
            elif (service.name, task) not in suites:
                untested.append(f"{service.name}/{task.value}")
    assert not untested, f"no test suite for: {', '.join(untested)}"
