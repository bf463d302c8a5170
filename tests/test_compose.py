"""docker-compose.yml and the Dockerfile, checked by reading them (no Docker engine needed)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def healthcheck_text(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def default_es_version() -> str:
    m = re.search(r'^ES_VERSION="\$\{ES_VERSION:-([^}]+)\}"', (ROOT / "scripts" / "es").read_text(), re.M)
    assert m, "scripts/es has no default ES_VERSION"
    return m.group(1)


def ci_es_versions() -> list[str]:
    """The Elasticsearch versions .ci/run tests the sidecar against."""
    m = re.search(r"^ES_VERSIONS=\(([^)]*)\)", (ROOT / ".ci" / "run").read_text(), re.M)
    assert m, ".ci/run names no ES_VERSIONS"
    return m.group(1).split()


def test_services(compose: dict) -> None:
    assert set(compose["services"]) == {"elasticsearch", "sidecar"}


def test_elasticsearch_service(compose: dict) -> None:
    es = compose["services"]["elasticsearch"]
    # One variable picks the line; the default is the newest 9.x that CI tests.
    m = re.fullmatch(r"docker\.elastic\.co/elasticsearch/elasticsearch:\$\{ES_VERSION:-([0-9.]+)\}", es["image"])
    assert m, es["image"]
    tested = ci_es_versions()
    assert m.group(1) == max(tested, key=lambda v: tuple(map(int, v.split("."))))
    assert m.group(1).startswith("9.") and default_es_version() in tested
    env = env_of(es)
    assert env["discovery.type"] == "single-node"
    assert env["xpack.security.enabled"] == "false"
    assert "-Xmx1g" in env["ES_JAVA_OPTS"].split()
    assert "-Xms1g" in env["ES_JAVA_OPTS"].split()
    assert "_cluster/health?wait_for_status=yellow" in healthcheck_text(es)


def test_sidecar_service(compose: dict) -> None:
    sidecar = compose["services"]["sidecar"]
    assert sidecar["build"] in (".", {"context": "."})
    env = env_of(sidecar)
    assert env["SIDECAR_ES_URL"] == "http://elasticsearch:9200"
    assert sidecar["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
    assert "9201:9201" in [str(p) for p in sidecar["ports"]]
    assert "http://127.0.0.1:9201/_sidecar/health" in healthcheck_text(sidecar)

    # The secrets key comes from a compose secret, mounted where SIDECAR_SECRETS_KEY_FILE points.
    (secret,) = sidecar["secrets"]
    assert secret in compose["secrets"]
    assert env["SIDECAR_SECRETS_KEY_FILE"] == f"/run/secrets/{secret}"

    # A named volume keeps downloaded models across container restarts.
    volumes = [v.split(":") for v in sidecar["volumes"]]
    assert any(src in compose["volumes"] and "huggingface" in dst for src, dst, *_ in volumes)


def test_dockerfile(dockerfile: str) -> None:
    lines = [line.strip() for line in dockerfile.splitlines()]
    assert lines[next(i for i, line in enumerate(lines) if line and not line.startswith("#"))] == (
        "FROM python:3.11-slim"
    )
    assert "EXPOSE 9201" in lines
    assert 'ENTRYPOINT ["es-inference-sidecar"]' in lines
    assert "SIDECAR_HOST=0.0.0.0" in dockerfile
    assert "http://127.0.0.1:9201/_sidecar/health" in dockerfile
    assert re.search(r"^HEALTHCHECK ", dockerfile, re.M)
    users = [shlex.split(line)[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile instruction, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            keyword, _, args = pending.partition(" ")
            out.append((keyword.upper(), " ".join(args.split())))
            pending = ""
    return out


def pip_installs(command: str) -> list[list[str]]:
    """The arguments of each ``pip install`` in a shell command line."""
    out = []
    for part in re.split(r"&&|;", command):
        words = shlex.split(part)
        if words[:2] == ["pip", "install"]:
            out.append(words[2:])
    return out


def option(args: list[str], name: str) -> str | None:
    for i, word in enumerate(args):
        if word == name:
            return args[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def test_torch_comes_from_the_cpu_wheel_index(dockerfile: str) -> None:
    steps = instructions(dockerfile)
    kinds = [kind for kind, _ in steps]
    assert kinds[0] == "FROM"

    # The index is a build argument declared after FROM (so RUN sees it), CPU wheels by default.
    (arg,) = [i for i, (kind, args) in enumerate(steps) if kind == "ARG" and args.startswith("TORCH_INDEX_URL=")]
    assert steps[arg][1] == "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu"

    runs = [(i, pip_installs(args)) for i, (kind, args) in enumerate(steps) if kind == "RUN"]
    torch_steps = [(i, a) for i, installs in runs for a in installs if any(w.startswith("torch") for w in a)]
    project_steps = [(i, a) for i, installs in runs for a in installs if "." in a]
    (torch_at, torch_args), = torch_steps
    (project_at, project_args), = project_steps
    assert arg < torch_at < project_at
    assert option(torch_args, "--index-url") == "${TORCH_INDEX_URL}"
    assert "--extra-index-url" not in " ".join(torch_args + project_args)

    # The torch requirement is the project's own, so the project's install finds it satisfied...
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (wanted,) = [d for d in pyproject["project"]["dependencies"] if re.match(r"torch\b", d)]
    assert [w for w in torch_args if w.startswith("torch")] == [wanted]
    # ...and the version installed is pinned for it, so PyPI's CUDA build cannot replace it.
    constraint = option(project_args, "--constraint") or option(project_args, "-c")
    assert constraint
    torch_run = steps[torch_at][1]
    assert f"> {constraint}" in torch_run and "^torch==" in torch_run

    # The project (and everything that changes with it) is copied after the torch layer.
    copies = [i for i, (kind, args) in enumerate(steps) if kind == "COPY" and "sidecar" in args.split()]
    assert copies and min(copies) > torch_at


def test_dockerfile_documents_the_cuda_image(dockerfile: str) -> None:
    header = []
    for line in dockerfile.splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# "))
    text = " ".join(" ".join(header).replace("\\", " ").split())
    assert re.search(r"docker build --build-arg TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cu\d+ ", text)
    assert "--gpus all" in text


def test_entrypoint_is_the_console_script() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "es-inference-sidecar" in pyproject["project"]["scripts"]
