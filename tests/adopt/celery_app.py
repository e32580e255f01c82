"""Celery app on a Redis broker: `celery -A celery_app worker` (run it from this directory).

Worker: `celery -A celery_app worker --pool solo -Q $ADOPT_QUEUE -n $JOBQUEUE_CONSUMER@%h`.
`--pool solo` runs the task in the worker process itself; SIGTERM is Celery's warm shutdown:
the running task finishes (and is acked), nothing new is taken. Late acks keep a running
task's message in the broker's `unacked` hash until it ends, which is what makes in-flight work
visible in Redis; a prefetch multiplier of 1 keeps a worker from reserving more than it runs.
"""

from __future__ import annotations

import os
import sys
import time

from typing import Any

from celery import Celery, Task
from celery.signals import worker_shutting_down

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adoptlog import log_event  # noqa: E402

QUEUE = os.environ.get("ADOPT_QUEUE", "default")

app = Celery("adopt", broker=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_default_queue=QUEUE,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    # No result backend: the test reads the ADOPT_LOG lines, not results.
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(bind=True, name="adopt.sleep")
def sleep_task(self: Task, seconds: float) -> float:
    """Sleeps `seconds`, logging start and end with the task id."""
    worker = os.environ.get("JOBQUEUE_CONSUMER") or self.request.hostname
    log_event("start", self.request.id, worker)
    time.sleep(seconds)
    log_event("end", self.request.id, worker)
    return seconds


@app.task(name="adopt.fail")
def fail_task() -> None:
    """Raises, to show that Celery keeps no failed list in the broker."""
    raise RuntimeError("failing on purpose")


@worker_shutting_down.connect
def log_term(sig: str = "", how: str = "", exitcode: int = 0, **_: Any) -> None:
    """Logs "term" when the worker starts its (warm) shutdown."""
    log_event("term", None)
