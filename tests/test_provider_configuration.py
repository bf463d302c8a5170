"""``GET _inference/_services`` metadata of every remote service, checked against what the
service's own ``parse()`` demands: each setting whose absence makes ``parse()`` fail with a
"required" error is listed ``required: true`` for that task type, and every secret is listed
``sensitive: true``.

The settings come from the provider suites (``tests/test_provider_*.py``), so a new provider
test brings its service under this check without further work.
"""

from __future__ import annotations

import importlib
import pathlib
from typing import Any

import orjson
import pytest
from providers.harness import ProviderSuite

from sidecar.errors import EsError
from sidecar.protocol.registry import ServiceContext, Services
from sidecar.protocol.service import TaskType
from sidecar.remote.service import RemoteService

KEYS = {"description", "label", "required", "sensitive", "updatable", "type", "supported_task_types", "default_value"}
TYPES = {"str", "int", "bool", "map"}
# Required settings Elasticsearch itself leaves out of a service's metadata: SageMaker lists only
# the settings every schema shares, not those of one schema (the elastic schema's element_type).
UNDESCRIBED = {("amazon_sagemaker", "element_type")}


def _suites() -> list[type[ProviderSuite]]:
    here = pathlib.Path(__file__).parent
    for path in sorted(here.glob("test_provider_*.py")):
        if path.stem != pathlib.Path(__file__).stem:
            importlib.import_module(path.stem)
    found: list[type[ProviderSuite]] = []
    pending = list(ProviderSuite.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__name__.startswith("Test") and isinstance(getattr(cls, "task", None), TaskType):
            found.append(cls)
    return sorted(found, key=lambda c: (c.__module__, c.__name__))


SUITES = _suites()


def _remote_services() -> list[RemoteService]:
    return [s for s in Services(ServiceContext()).all() if isinstance(s, RemoteService)]


def _parse(suite: type[ProviderSuite], settings: dict[str, Any], task_settings: dict[str, Any]) -> Any:
    service = suite.service_cls(ServiceContext())
    return service.parse("config-check", suite.task, dict(settings), dict(task_settings))


def _required_keys(suite: type[ProviderSuite]) -> set[str]:
    """The settings (service and task) that ``parse()`` refuses to do without."""
    instance = suite()
    settings, task_settings = instance.fixed(), dict(suite.task_settings)
    _parse(suite, settings, task_settings)  # the full set is valid
    required = set()
    for scope, values in (("service", settings), ("task", task_settings)):
        for key in values:
            trimmed = {k: v for k, v in values.items() if k != key}
            try:
                if scope == "service":
                    _parse(suite, trimmed, task_settings)
                else:
                    _parse(suite, settings, trimmed)
            except EsError as exc:
                reason = exc.reason
                if "required" in reason and (f"[{key}]" in reason or f".{key}]" in reason):
                    required.add(key)
    return required


def test_every_remote_service_describes_its_settings() -> None:
    services = _remote_services()
    assert services
    for service in services:
        if service.hidden_from_catalogue and not service.configuration:
            continue  # never listed (custom: Elasticsearch describes no settings for it either)
        config = service.configuration
        assert config, f"{service.name} has no configuration"
        covered = set()
        for key, entry in config.items():
            assert set(entry) <= KEYS and KEYS - {"default_value"} <= set(entry), (service.name, key)
            assert entry["type"] in TYPES, (service.name, key)
            assert isinstance(entry["label"], str) and entry["label"], (service.name, key)
            assert all(isinstance(entry[k], bool) for k in ("required", "sensitive", "updatable"))
            tasks = entry["supported_task_types"]
            assert tasks and set(tasks) <= {t.value for t in service.task_types}, (service.name, key, tasks)
            assert tasks == [t.value for t in TaskType if t.value in tasks], "Elasticsearch's task order"
            covered.update(tasks)
        assert covered == {t.value for t in service.task_types}, service.name
        orjson.dumps(service.describe())  # plain JSON data


def test_every_service_with_a_suite_is_checked() -> None:
    checked = {suite.service_cls.name for suite in SUITES}
    assert checked == {s.name for s in _remote_services()}


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.__name__)
def test_required_settings_are_listed_as_required(suite: type[ProviderSuite]) -> None:
    config = suite.service_cls.configuration
    if suite.service_cls.hidden_from_catalogue and not config:
        return
    for key in sorted(_required_keys(suite)):
        if (suite.service_cls.name, key) in UNDESCRIBED:
            continue
        assert key in config, f"{suite.service_cls.name}: required setting [{key}] is not described"
        entry = config[key]
        assert entry["required"] is True, f"{suite.service_cls.name}: [{key}] is required by parse()"
        assert suite.task.value in entry["supported_task_types"], (key, entry["supported_task_types"])


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.__name__)
def test_secrets_are_listed_as_sensitive(suite: type[ProviderSuite]) -> None:
    config = suite.service_cls.configuration
    if suite.service_cls.hidden_from_catalogue and not config:
        return
    parsed = _parse(suite, suite().fixed(), dict(suite.task_settings))
    secrets = set(parsed.secrets) | set(suite.service_cls.secret_keys)
    assert secrets, suite.__name__
    for key in secrets:
        assert key in config, f"{suite.service_cls.name}: secret [{key}] is not described"
        assert config[key]["sensitive"] is True and config[key]["updatable"] is True
        assert suite.task.value in config[key]["supported_task_types"]
    for key, entry in config.items():
        if entry["sensitive"]:
            assert key in secrets, f"{suite.service_cls.name}: [{key}] is marked sensitive but is not a secret"


def test_rate_limit_and_defaults_render_like_elasticsearch() -> None:
    services = {s.name: s for s in _remote_services()}
    anthropic = services["anthropic"].describe()
    assert anthropic["service"] == "anthropic" and anthropic["name"] == "Anthropic"
    assert anthropic["task_types"] == ["completion", "chat_completion"]
    assert anthropic["configurations"]["rate_limit.requests_per_minute"] == {
        "description": "By default, the anthropic service sets the number of requests allowed per minute to 50.",
        "label": "Rate Limit",
        "required": False,
        "sensitive": False,
        "updatable": False,
        "type": "int",
        # AnthropicService.Configuration: every setting lists SUPPORTED_TASK_TYPES (9.2+).
        "supported_task_types": ["completion", "chat_completion"],
    }
    assert anthropic["configurations"]["max_tokens"]["required"] is True
    deepseek = services["deepseek"].configuration["url"]
    assert deepseek["default_value"] == "https://api.deepseek.com/chat/completions" and deepseek["required"] is False
    openai = services["openai"].configuration
    assert openai["dimensions"]["supported_task_types"] == ["text_embedding"]
    assert "default_value" not in openai["model_id"]
