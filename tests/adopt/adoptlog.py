"""The event log every adopted-queue test worker writes: one JSON line per job start/end, and
a "term" line (job null) when the worker process is asked to stop.

Lines go to the file named by ADOPT_LOG, appended and flushed at once, so a test can read
them while the worker runs and after it was stopped (or killed).
"""

from __future__ import annotations

import json
import os
import time


def log_event(event: str, job: str | None, worker: str | None = None) -> None:
    """Appends `{"event", "job", "worker", "pid", "t"}`; `worker` defaults to JOBQUEUE_CONSUMER."""
    line = json.dumps(
        {
            "event": event,
            "job": job,
            "worker": worker or os.environ.get("JOBQUEUE_CONSUMER", ""),
            "pid": os.getpid(),
            "t": int(time.time() * 1000),
        }
    )
    path = os.environ.get("ADOPT_LOG")
    if not path:
        return
    # One write() of a whole line on an O_APPEND file: lines from concurrent workers never
    # interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
