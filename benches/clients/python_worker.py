"""One worker process of the Python client for benches/throughput.rs (figure 5).

Usage: python_worker.py sync|aio, with REDIS_URL, JOBQUEUE_STREAM, JOBQUEUE_GROUP and
JOBQUEUE_CONSUMER in the environment, as the operator sets them in worker pods. The handler
does no work and returns a small result; SIGTERM makes the worker finish and exit 0.
"""

import asyncio
import sys

RESULT = {"ok": True}


def run_sync() -> None:
    from jobqueue import Worker

    Worker.from_env(lambda job: RESULT).run()


async def run_aio() -> None:
    from jobqueue.aio import Worker

    async def handle(job):
        return RESULT

    await Worker.from_env(handle).run()


if __name__ == "__main__":
    if sys.argv[1:] == ["sync"]:
        run_sync()
    elif sys.argv[1:] == ["aio"]:
        asyncio.run(run_aio())
    else:
        sys.exit("usage: python_worker.py sync|aio")
