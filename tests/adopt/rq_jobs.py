"""RQ jobs and worker class for the adopted-queue tests.

    rq worker --path tests/adopt --worker-class rq_jobs.LoggedWorker \
        --url $REDIS_URL --name $JOBQUEUE_CONSUMER <queue>

`LoggedWorker` is RQ's default forking Worker that also logs "term" when asked to stop. The
Worker forks a work horse per job into its own process group, so a SIGTERM sent to the
worker's group reaches only the worker, which then finishes the running job and exits (warm
shutdown). Producers enqueue `rq_jobs.sleep_job` by reference (see rq_enqueue.py).
"""

from __future__ import annotations

import os
import time
from types import FrameType

from rq import Worker, get_current_job

from adoptlog import log_event


def sleep_job(seconds: float) -> float:
    """Sleeps `seconds`, logging start and end with the job id and the worker's name."""
    job = get_current_job()
    job_id = job.id if job else "?"
    # The operator's name for the process first; RQ's own worker name when run by hand.
    worker = os.environ.get("JOBQUEUE_CONSUMER") or (job.worker_name if job else None)
    log_event("start", job_id, worker)
    time.sleep(seconds)
    log_event("end", job_id, worker)
    return seconds


def fail_job() -> None:
    """Raises, for looking at RQ's failed registry."""
    raise RuntimeError("failing on purpose")


class LoggedWorker(Worker):
    """RQ's forking Worker; logs "term" on the first stop signal (warm shutdown follows)."""

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        log_event("term", None, os.environ.get("JOBQUEUE_CONSUMER") or self.name)
        super().request_stop(signum, frame)
