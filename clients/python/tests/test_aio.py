"""The asyncio flavour: the same operations as the blocking one, on the same queues."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import QueueInfo

from jobqueue import aio
from jobqueue.testing import eventually


async def _run_worker(worker: aio.Worker) -> asyncio.Task[None]:
    return asyncio.create_task(worker.run(handle_signals=False))


def test_async_enqueue_work_follow_and_wait(q: QueueInfo) -> None:
    async def main() -> None:
        async with aio.Queue.from_url(q.url, q.stream) as queue:
            release = asyncio.Event()

            async def handler(job: aio.JobContext) -> Any:
                await job.progress({"step": 1})
                await release.wait()
                if job.attempt == 1:
                    raise RuntimeError("once")
                return {"double": job.payload["n"] * 2}

            worker = aio.Worker(queue, handler, consumer="aio-1", block_ms=100)
            task = await _run_worker(worker)
            job_id = await queue.enqueue({"n": 21}, idempotency_key=f"{q.name}-k")
            assert await queue.enqueue({"n": 0}, idempotency_key=f"{q.name}-k") == job_id
            states = []
            async for job in queue.follow(job_id, timeout=30):
                states.append(job.state)
                if job.progress == {"step": 1}:
                    release.set()
            worker.stop()
            await asyncio.wait_for(task, 30)
            final = await queue.get_job(job_id)
            assert final is not None
            assert (final.state, final.attempt, final.result) == ("succeeded", 2, {"double": 42})
            assert states[-1] == "succeeded" and "active" in states

    asyncio.run(main())


def test_async_cancel_and_wait_timeout(q: QueueInfo) -> None:
    async def main() -> None:
        async with aio.Queue.from_url(q.url, q.stream) as queue:
            seen: list[bool] = []
            started = asyncio.Event()

            async def handler(job: aio.JobContext) -> Any:
                started.set()
                seen.append(await job.wait_cancelled(30))
                raise RuntimeError("stopped")

            job_id = await queue.enqueue({})
            try:
                await queue.wait(job_id, timeout=0.2)
                raise AssertionError("wait returned before the job ended")
            except aio.WaitTimeout:
                pass
            worker = aio.Worker(queue, handler, consumer="aio-2", block_ms=100)
            task = await _run_worker(worker)
            await asyncio.wait_for(started.wait(), 30)
            assert await queue.cancel(job_id) == "requested"
            job = await queue.wait(job_id, timeout=30)
            worker.stop()
            await asyncio.wait_for(task, 30)
            assert job.state == "cancelled" and seen == [True]

    asyncio.run(main())


ASYNC_WORKER = """
import asyncio, os
from jobqueue.aio import Worker

async def handle(job):
    with open(os.environ["STARTED"], "a") as f:
        f.write(job.id + "\\n")
    await asyncio.sleep(1.5)
    return "drained"

asyncio.run(Worker.from_env(handle).run())
"""


def test_async_worker_drains_on_sigterm(q: QueueInfo, tmp_path: Path) -> None:
    started = tmp_path / "started"
    env = {**os.environ, "REDIS_URL": q.url, "JOBQUEUE_STREAM": q.stream,
           "JOBQUEUE_CONSUMER": "aio-drain", "STARTED": str(started)}
    env.pop("JOBQUEUE_GROUP", None)  # defaults to workers
    proc = subprocess.Popen([sys.executable, "-c", ASYNC_WORKER], env=env)
    try:
        with q.queue() as queue:
            job_id = queue.enqueue({})
            eventually("the job to start", lambda: started.exists() and started.read_text())
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
            job = queue.get_job(job_id)
            assert job is not None and (job.state, job.result) == ("succeeded", "drained")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
