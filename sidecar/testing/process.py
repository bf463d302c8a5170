"""The sidecar as a child process, started the way users start it
(``python -m sidecar --es-url URL --host 127.0.0.1 --port P``), its output in a log file:
start it and wait until it answers, read its memory from ``/proc``, stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

# The folder holding the ``sidecar`` package this module belongs to: ``python -m sidecar`` run
# there starts that same package.
PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether anything answers HTTP at ``url``; an error status counts (the listener is up)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def memory_kb(pid: int) -> dict[str, int]:
    """``VmRSS`` (resident set) and ``VmHWM`` (its peak) of a process, in kB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def reset_peak_rss(pid: int) -> bool:
    """Reset the kernel's peak resident set mark (``VmHWM``) of a process; False where the
    kernel does not allow it."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class SetupError(RuntimeError):
    """Something a run needs (Elasticsearch, the sidecar) could not be set up."""


class SidecarStartError(SetupError):
    """The sidecar exited, or did not answer in time, while starting."""


class SidecarProcess:
    """One sidecar child process in front of ``es_url``, listening on 127.0.0.1:``port`` (a
    free one when not given), with ``env`` added to this process's environment and its output
    appended to ``log_path``.

    ``python_args`` are what the interpreter runs (``-m sidecar`` unless given); the sidecar's
    ``--es-url``, ``--host`` and ``--port`` follow them. :meth:`stop` sends SIGTERM and kills
    the process when it has not exited within ``stop_wait_s``."""

    def __init__(self, es_url: str, env: dict[str, str] | None, log_path: Path, port: int | None = None, *,
                 python_args: Sequence[str] = ("-m", "sidecar"), stop_wait_s: float = 30.0) -> None:
        self.es_url = es_url
        self.env = dict(env or {})
        self.log_path = Path(log_path)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.python_args = list(python_args)
        self.stop_wait_s = stop_wait_s
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def command(self) -> list[str]:
        return [sys.executable, *self.python_args, "--es-url", self.es_url, "--host", "127.0.0.1",
                "--port", str(self.port)]

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the sidecar has not been started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 120) -> SidecarProcess:
        """Start the process and return once ``GET /_sidecar/live`` answers (with any status:
        the listener is up; Elasticsearch need not be)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.command, cwd=PACKAGE_PARENT, env={**os.environ, **self.env},
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._close_log()
                raise SidecarStartError(f"the sidecar exited with {self.proc.returncode} while starting "
                                        f"(log {self.log_path}):\n{self.log_tail()}")
            if answers(self.url + "/_sidecar/live"):
                return self
            time.sleep(0.2)
        self.stop()
        raise SidecarStartError(f"the sidecar did not answer within {timeout:.0f}s (log {self.log_path}):\n"
                                f"{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        """The last ``n`` lines of the log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def memory_mb(self) -> dict[str, float]:
        """``rss_mb``, the resident set now, and ``peak_rss_mb``, its peak since the start (or
        since :meth:`reset_peak`), in MB."""
        kb = memory_kb(self.pid)
        return {"rss_mb": round(kb["VmRSS"] / 1024, 1), "peak_rss_mb": round(kb["VmHWM"] / 1024, 1)}

    def reset_peak(self) -> bool:
        """Reset the peak that :meth:`memory_mb` reports; False where the kernel does not allow it."""
        return reset_peak_rss(self.pid)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` and wait up to ``stop_wait_s`` for the exit, then kill the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(self.stop_wait_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
