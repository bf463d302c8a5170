"""The ``GET _inference/_services`` description of a service's settings, as data.

Each entry reads like one of Elasticsearch's ``SettingsConfiguration`` s: ``description``,
``label``, ``required``, ``sensitive``, ``updatable``, ``type`` (``str``, ``int``, ``bool`` or
``map``), ``default_value`` (left out when there is none) and ``supported_task_types``. A
service builds its ``configuration`` ClassVar with :func:`configuration` from :func:`field` s and
the shared :func:`api_key`, :func:`model_id` and :func:`rate_limit` entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..protocol.service import TaskType

Entry = dict[str, Any]

API_KEY_DESCRIPTION = "API Key for the provider you're connecting to."
MODEL_ID_DESCRIPTION = "The name of the model to use for the inference task."
RATE_LIMIT_DESCRIPTION = "Minimize the number of rate limit errors."
MAX_INPUT_TOKENS_DESCRIPTION = "Allows you to specify the maximum number of tokens per input."

_TYPES = ("str", "int", "bool", "map")


def task_list(tasks: Iterable[TaskType | str]) -> list[str]:
    """Task type names in Elasticsearch's enum order."""
    wanted = {TaskType(t) for t in tasks}
    return [t.value for t in TaskType if t in wanted]


def field(
    label: str,
    description: str | None,
    tasks: Iterable[TaskType | str],
    *,
    type: str = "str",
    required: bool = False,
    sensitive: bool = False,
    updatable: bool = False,
    default: Any = None,
) -> Entry:
    if type not in _TYPES:
        raise ValueError(f"unknown setting type [{type}]")
    entry: Entry = {}
    if default is not None:
        entry["default_value"] = default
    if description is not None:
        entry["description"] = description
    entry.update(
        label=label,
        required=required,
        sensitive=sensitive,
        updatable=updatable,
        type=type,
        supported_task_types=task_list(tasks),
    )
    return entry


def secret(
    label: str, description: str, tasks: Iterable[TaskType | str], *, required: bool = True
) -> Entry:
    """A secret setting: sensitive, and updatable through ``_update``."""
    return field(label, description, tasks, required=required, sensitive=True, updatable=True)


def api_key(tasks: Iterable[TaskType | str], description: str = API_KEY_DESCRIPTION) -> dict[str, Entry]:
    return {"api_key": secret("API Key", description, tasks)}


def model_id(
    tasks: Iterable[TaskType | str], description: str = MODEL_ID_DESCRIPTION, *, key: str = "model_id"
) -> dict[str, Entry]:
    return {key: field("Model ID", description, tasks, required=True)}


def rate_limit(tasks: Iterable[TaskType | str], description: str = RATE_LIMIT_DESCRIPTION) -> dict[str, Entry]:
    return {"rate_limit.requests_per_minute": field("Rate Limit", description, tasks, type="int")}


def max_input_tokens(tasks: Iterable[TaskType | str]) -> dict[str, Entry]:
    return {"max_input_tokens": field("Maximum Input Tokens", MAX_INPUT_TOKENS_DESCRIPTION, tasks, type="int")}


def configuration(*parts: Mapping[str, Entry], **fields: Entry) -> dict[str, Entry]:
    """Merge ``parts`` (from the functions above) and named ``fields`` into one configuration."""
    merged: dict[str, Entry] = {}
    for part in (*parts, fields):
        for key, entry in part.items():
            if key in merged:
                raise ValueError(f"setting [{key}] is described twice")
            merged[key] = entry
    return merged
