"""``es-inference-sidecar reindex SRC DEST``: reindex through a running sidecar with a
progress bar. The reindex runs as a task in the sidecar; interrupting this command leaves
it running, and running the same command again follows it. If the task was lost (the
sidecar stopped), the command resumes: documents already in DEST are skipped before any
inference is spent on them."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

from elasticsearch import Elasticsearch, NotFoundError
from tqdm import tqdm


def _state_path(url: str, source: str, dest: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "es-inference-sidecar" / "reindex"
    key = hashlib.sha256(f"{url}|{source}|{dest}".encode()).hexdigest()[:16]
    return base / f"{key}.json"


def _done(status: dict) -> int:
    return sum(status.get(k, 0) for k in ("created", "updated", "version_conflicts", "noops", "deleted"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="es-inference-sidecar reindex",
                                     description="Reindex SRC into DEST through the sidecar (embeddings filled).")
    parser.add_argument("source")
    parser.add_argument("dest")
    parser.add_argument("--url", default=os.environ.get("SIDECAR_URL", "http://127.0.0.1:9201"),
                        help="the sidecar's URL [SIDECAR_URL]")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between progress checks")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module="elasticsearch")
    warnings.filterwarnings("ignore", message=".*technical preview.*")

    client = Elasticsearch(args.url, request_timeout=120)
    state_file = _state_path(args.url, args.source, args.dest)
    task_id = None
    if state_file.exists():
        previous = json.loads(state_file.read_text())
        try:
            info = client.tasks.get(task_id=previous["task"]).body
        except NotFoundError:
            info = None
        if info and not info.get("completed") and "error" not in info:
            task_id = previous["task"]
            print(f"following the running reindex task {task_id}", file=sys.stderr)
        elif info and info.get("completed") and "error" not in info:
            state_file.unlink()
        else:
            print("the previous reindex did not finish; resuming (documents already in "
                  f"[{args.dest}] are skipped)", file=sys.stderr)
    resume = state_file.exists() and task_id is None
    if task_id is None:
        dest = {"index": args.dest}
        body = {"source": {"index": args.source, "size": args.batch_size}, "dest": dest}
        if resume:
            dest["op_type"] = "create"
            body["conflicts"] = "proceed"
        task_id = client.reindex(body=body, wait_for_completion=False)["task"]
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps({"task": task_id, "source": args.source, "dest": args.dest}))

    bar = tqdm(total=0, unit="doc", desc=f"{args.source} → {args.dest}", file=sys.stderr)
    try:
        while True:
            info = client.tasks.get(task_id=task_id).body
            status = info["task"]["status"]
            bar.total = status.get("total") or bar.total
            bar.n = _done(status)
            bar.refresh()
            if info.get("completed") or "error" in info:
                break
            time.sleep(args.poll)
    except KeyboardInterrupt:
        bar.close()
        print(f"\ninterrupted; the reindex goes on in the sidecar as task {task_id}. Run the same command "
              "again to follow it.", file=sys.stderr)
        return 130
    bar.close()
    if "error" in info and "response" not in info:
        print(f"reindex failed: {info['error'].get('reason')}", file=sys.stderr)
        return 1
    state_file.unlink(missing_ok=True)
    response = info.get("response", {})
    print(json.dumps(response, indent=2))
    return 1 if response.get("failures") else 0
