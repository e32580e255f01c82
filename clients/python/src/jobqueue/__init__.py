"""Client for jobqueue-operator queues: enqueue and follow jobs (`Queue`), run them (`Worker`).

The blocking flavour lives here; `jobqueue.aio` has the same names for asyncio. Every job
operation is a call into the `jobqueue` Redis Functions library that the operator loads.
"""

from ._common import (
    REQUIRED_REVISION,
    ConfigError,
    Job,
    JobQueueError,
    LibraryMissing,
    LibraryTooOld,
    PermanentFailure,
    WaitTimeout,
    new_job_id,
)
from ._sync import JobContext, Queue, Worker, connect

__all__ = [
    "REQUIRED_REVISION",
    "ConfigError",
    "Job",
    "JobContext",
    "JobQueueError",
    "LibraryMissing",
    "LibraryTooOld",
    "PermanentFailure",
    "Queue",
    "WaitTimeout",
    "Worker",
    "connect",
    "new_job_id",
]
