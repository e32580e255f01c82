#!/usr/bin/env python3
"""The Python client's conformance adapter (contract: clients/conformance/README.md).

Configured by REDIS_URL, JOBQUEUE_STREAM, JOBQUEUE_GROUP, JOBQUEUE_CONSUMER and
CONFORMANCE_LOG; one command per run: enqueue, get, wait, cancel or work.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

import jobqueue

_log_lock = threading.Lock()


def queue() -> jobqueue.Queue:
    return jobqueue.Queue.from_url(os.environ["REDIS_URL"], os.environ["JOBQUEUE_STREAM"],
                                   os.environ.get("JOBQUEUE_GROUP") or "workers")


def log(event: str, job: jobqueue.JobContext) -> None:
    path = os.environ.get("CONFORMANCE_LOG")
    if not path:
        return
    line = json.dumps({"event": event, "id": job.id, "attempt": job.attempt, "lang": "python"})
    with _log_lock, open(path, "a") as f:
        f.write(line + "\n")


def handle(job: jobqueue.JobContext) -> Any:
    p = job.payload if isinstance(job.payload, dict) else {}
    action = p.get("action")
    if action == "succeed":
        return p.get("result")
    if action == "fail":
        raise RuntimeError(p.get("error", "failed"))
    if action == "fail_permanent":
        raise jobqueue.PermanentFailure(p.get("error", "failed"))
    if action == "fail_until":
        if job.attempt < int(p["attempt"]):
            raise RuntimeError(p.get("error", "failed"))
        return p.get("result")
    if action == "progress":
        for step in p.get("steps", []):
            job.progress(step)
        return p.get("result")
    if action == "sleep":
        time.sleep(int(p["ms"]) / 1000)
        return p.get("result")
    if action == "wait_cancel":
        job.wait_cancelled()
        return {"cancelled": True}
    raise jobqueue.PermanentFailure(f"unknown action {action!r}")


def logged(job: jobqueue.JobContext) -> Any:
    log("start", job)
    try:
        return handle(job)
    finally:
        log("end", job)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: conformance_adapter.py enqueue|get|wait|cancel|work ARG...",
              file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    if command == "work":
        options = json.loads(args[0]) if args else {}
        worker = jobqueue.Worker.from_env(logged, concurrency=int(options.get("concurrency", 1)))
        worker.run()
        return 0
    with queue() as q:
        if command == "enqueue":
            spec = json.loads(args[0])
            delay = spec.get("delay_ms")
            at = spec.get("at_ms")
            job_id = q.enqueue(spec.get("payload"),
                               delay=None if delay is None else delay / 1000,
                               at=None if at is None else at / 1000,
                               idempotency_key=spec.get("idempotency_key"))
            print(json.dumps({"id": job_id}))
        elif command == "get":
            job = q.get_job(args[0])
            print(json.dumps(None if job is None else job.to_dict()))
        elif command == "wait":
            try:
                job = q.wait(args[0], timeout=int(args[1]) / 1000)
            except jobqueue.WaitTimeout:
                return 3
            print(json.dumps(job.to_dict()))
        elif command == "cancel":
            print(json.dumps({"outcome": q.cancel(args[0])}))
        else:
            print(f"unknown command {command!r}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
