"""``es-inference-sidecar pipelines list|install``: the ready-made ingest pipelines shipped in
``pipelines/`` (package data ``sidecar/pipelines/*.json``), installed through a running sidecar
with the official client.

Each pipeline names the inference endpoints it uses by the ids of the preconfigured endpoints
(``.elser-2-elasticsearch``, ``.multilingual-e5-small-elasticsearch``,
``.rerank-v1-elasticsearch``), listed in its ``_meta.requires.inference_endpoints`` with the task
type each must have. ``--inference-id PLACEHOLDER=ID`` puts another endpoint in its place
wherever the definition names it (processors, the index mappings and the search example in
``_meta``). Before anything is written, every endpoint a pipeline names is checked to exist
with that task type.

Credentials are sent to the sidecar, which forwards them to Elasticsearch: the same
``--es-username``/``--es-password``/``--es-api-key`` flags and ``SIDECAR_ES_*`` variables as
the sidecar's own (the caller needs ``manage_pipeline`` and ``monitor_inference``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import warnings
from importlib import resources
from typing import Any

PROG = "es-inference-sidecar pipelines"


class PipelineError(Exception):
    """A problem with the command's arguments or with what Elasticsearch answered."""


def _directory():
    return resources.files("sidecar") / "pipelines"


def available() -> dict[str, dict[str, Any]]:
    """The shipped definitions by name (the file name without ``.json``), sorted by name."""
    found = {}
    for entry in _directory().iterdir():
        if entry.name.endswith(".json") and entry.is_file():
            found[entry.name[: -len(".json")]] = json.loads(entry.read_text(encoding="utf-8"))
    return dict(sorted(found.items()))


def required_endpoints(body: dict[str, Any]) -> dict[str, str]:
    """``{endpoint id: task type}`` a definition names in ``_meta.requires``."""
    return dict(body.get("_meta", {}).get("requires", {}).get("inference_endpoints", {}))


def substitute(value: Any, ids: dict[str, str]) -> Any:
    """A copy of ``value`` in which every string (value or key) equal to a placeholder is
    replaced by the endpoint id it is mapped to."""
    if isinstance(value, dict):
        return {ids.get(k, k): substitute(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, ids) for v in value]
    if isinstance(value, str):
        return ids.get(value, value)
    return copy.deepcopy(value)


def parse_ids(pairs: list[str]) -> dict[str, str]:
    ids: dict[str, str] = {}
    for pair in pairs:
        placeholder, sep, target = pair.partition("=")
        if not sep or not placeholder.strip() or not target.strip():
            raise PipelineError(f"--inference-id [{pair}] must look like PLACEHOLDER=ID")
        ids[placeholder.strip()] = target.strip()
    return ids


def prepare(names: list[str] | None, ids: dict[str, str], prefix: str = "") -> list[tuple[str, str, dict[str, Any]]]:
    """``(name, pipeline id, definition)`` for each chosen pipeline (all when ``names`` is
    empty), with the endpoint ids substituted."""
    shipped = available()
    chosen = list(dict.fromkeys(names)) if names else list(shipped)
    unknown = [n for n in chosen if n not in shipped]
    if unknown:
        raise PipelineError(f"no ready-made pipeline named [{', '.join(unknown)}]; available: {', '.join(shipped)}")
    used = {placeholder for n in chosen for placeholder in required_endpoints(shipped[n])}
    unused = [p for p in ids if p not in used]
    if unused:
        raise PipelineError(f"--inference-id [{', '.join(unused)}] is not used by the chosen pipelines; they use "
                            f"[{', '.join(sorted(used))}]")
    return [(n, prefix + n, substitute(shipped[n], ids)) for n in chosen]


def check_endpoints(client: Any, prepared: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """Errors for endpoints that are missing or of another task type (empty: all good).
    When the caller may not list endpoints, nothing is checked."""
    from elasticsearch import AuthorizationException

    try:
        listed = client.inference.get().body.get("endpoints", [])
    except AuthorizationException:
        print(f"{PROG}: note: cannot list inference endpoints with these credentials; not checked",
              file=sys.stderr)
        return []
    tasks = {e["inference_id"]: e.get("task_type") for e in listed}
    errors = []
    for name, pipeline_id, body in prepared:
        for endpoint, task_type in required_endpoints(body).items():
            if endpoint not in tasks:
                errors.append(f"pipeline [{pipeline_id}] ({name}) needs the inference endpoint [{endpoint}] "
                              f"({task_type}), which does not exist; create it or give --inference-id")
            elif tasks[endpoint] != task_type:
                errors.append(f"pipeline [{pipeline_id}] ({name}) needs a [{task_type}] endpoint but "
                              f"[{endpoint}] is [{tasks[endpoint]}]")
    return errors


def install(client: Any, names: list[str] | None = None, ids: dict[str, str] | None = None, prefix: str = "",
            *, check: bool = True, report: Any = None) -> list[tuple[str, str, dict[str, Any]]]:
    """Put the chosen pipelines through ``client`` (an ``elasticsearch.Elasticsearch`` pointed
    at the sidecar), calling ``report(name, pipeline_id, body)`` after each; returns what was
    installed. Raises :class:`PipelineError` (Elasticsearch's error included when it refused a
    pipeline), or the client's errors for anything else."""
    from elasticsearch import ApiError

    prepared = prepare(names, ids or {}, prefix)
    if check:
        errors = check_endpoints(client, prepared)
        if errors:
            raise PipelineError("; ".join(errors))
    for name, pipeline_id, body in prepared:
        try:
            client.ingest.put_pipeline(id=pipeline_id, body=body)
        except ApiError as exc:
            raise PipelineError(f"pipeline [{pipeline_id}] ({name}) was refused: "
                                f"{exc.meta.status} {json.dumps(exc.body)}") from exc
        if report is not None:
            report(name, pipeline_id, body)
    return prepared


def model_ids(body: dict[str, Any]) -> list[str]:
    """The endpoints a definition's top-level inference processors use."""
    return sorted({p["inference"]["model_id"] for p in body.get("processors", []) if "inference" in p})


def _client(args: argparse.Namespace):
    from elasticsearch import Elasticsearch

    kwargs: dict[str, Any] = {"request_timeout": 120}
    if args.es_api_key:
        kwargs["api_key"] = args.es_api_key
    elif args.es_username:
        kwargs["basic_auth"] = (args.es_username, args.es_password or "")
    if args.ca_file:
        kwargs["ca_certs"] = args.ca_file
    return Elasticsearch(args.url, **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Ready-made ingest pipelines with inference processors.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,install}")
    commands.add_parser("list", help="show the ready-made pipelines and the endpoints each needs")
    inst = commands.add_parser("install", help="put ready-made pipelines through the sidecar",
                               description="Put ready-made pipelines (all of them when no NAME is given) "
                                           "through the sidecar.")
    inst.add_argument("names", nargs="*", metavar="NAME")
    inst.add_argument("--url", default=os.environ.get("SIDECAR_URL", "http://127.0.0.1:9201"),
                      help="the sidecar's URL [SIDECAR_URL]")
    inst.add_argument("--inference-id", action="append", default=[], metavar="PLACEHOLDER=ID",
                      help="use the endpoint ID where a pipeline names PLACEHOLDER "
                           "(e.g. .elser-2-elasticsearch=my-elser); repeatable")
    inst.add_argument("--prefix", default="", help="prepended to each pipeline's name to make its id")
    inst.add_argument("--es-username", default=os.environ.get("SIDECAR_ES_USERNAME"), help="[SIDECAR_ES_USERNAME]")
    inst.add_argument("--es-password", default=os.environ.get("SIDECAR_ES_PASSWORD"), help="[SIDECAR_ES_PASSWORD]")
    inst.add_argument("--es-api-key", default=os.environ.get("SIDECAR_ES_API_KEY"), help="[SIDECAR_ES_API_KEY]")
    inst.add_argument("--ca-file", default=None, help="CA bundle to verify an HTTPS sidecar")
    inst.add_argument("--no-check", action="store_true",
                      help="do not check that the endpoints exist with the right task type")
    return parser


def _list() -> int:
    for name, body in available().items():
        needs = ", ".join(f"{e} ({t})" for e, t in required_endpoints(body).items())
        print(f"{name}\n    {body.get('description', '')}\n    needs: {needs}")
    return 0


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


def _installed(name: str, pipeline_id: str, body: dict[str, Any]) -> None:
    print(f"installed pipeline [{pipeline_id}] from pipelines/{name}.json (inference: {', '.join(model_ids(body))})",
          flush=True)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _list()
    from elasticsearch import ApiError, TransportError

    warnings.filterwarnings("ignore", module="elasticsearch")
    try:
        ids = parse_ids(args.inference_id)
        with _client(args) as client:
            install(client, args.names, ids, args.prefix, check=not args.no_check, report=_installed)
    except PipelineError as exc:
        return _fail(str(exc))
    except ApiError as exc:
        return _fail(f"{exc.meta.status} {json.dumps(exc.body)}")
    except TransportError as exc:
        return _fail(f"cannot reach {args.url}: {exc.message}")
    return 0
