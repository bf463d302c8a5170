"""``--workers N``: N sidecar processes serving one port.

Each worker is a whole sidecar (``python -m sidecar`` with the same arguments) whose listening
socket is bound with ``SO_REUSEPORT``: the kernel spreads incoming connections over the
workers, so pass-through and every API scale with the cores and no process stands in the
middle. This process only starts the workers, passes SIGTERM/SIGINT on to them, and, when one
exits on its own, stops the others and exits with its status (a supervisor such as systemd or
Kubernetes then restarts the whole set).

Local models: every worker loads its own copy of the models it serves. A separate inference
process shared by the workers would hold one copy, but every batch would then cross a process
boundary (serialised texts in, vectors out) and that process would again run on one event
loop; a copy of all-MiniLM-L6-v2 costs ~90 MB of resident memory per worker, which is less than
one batch of the IPC buffers a shared process would need for large ``_bulk`` requests.
Endpoints, pipelines and semantic_text metadata live in Elasticsearch, so every worker sees
the same ones (within ``--registry-ttl``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

# Set in a worker's environment: its number (0..N-1). A worker binds with SO_REUSEPORT.
WORKER_ENV = "SIDECAR_WORKER_INDEX"


def is_worker() -> bool:
    return WORKER_ENV in os.environ


def _worker_argv(argv: Sequence[str]) -> list[str]:
    """The arguments without ``--workers``: a worker is one process."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return out


def supervise(argv: Sequence[str], workers: int, *, grace_s: float = 30.0) -> int:
    """Run ``workers`` sidecar processes with ``argv`` until one of them exits or a signal
    asks them all to stop; the exit status is the first worker's to exit (0 when stopped)."""
    env = dict(os.environ)
    env["SIDECAR_WORKERS"] = "1"
    procs: list[subprocess.Popen] = []
    for index in range(workers):
        env[WORKER_ENV] = str(index)
        procs.append(subprocess.Popen([sys.executable, "-m", "sidecar", *_worker_argv(argv)], env=env))
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    try:
        while True:
            exited = [p for p in procs if p.poll() is not None]
            if exited:
                if not stopping:
                    status = exited[0].returncode or 1
                    stop(signal.SIGTERM, None)
                break
            time.sleep(0.2)
    finally:
        deadline = time.monotonic() + grace_s
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return status
