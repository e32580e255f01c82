"""The example's worker: counts the words of payload["text"], one word per `step_ms`
(default 50), reporting progress as it goes. No "text" is a permanent failure.

The operator (or `jobqueue-operator run --local`) starts it with REDIS_URL, JOBQUEUE_STREAM,
JOBQUEUE_GROUP and JOBQUEUE_CONSUMER; SIGTERM lets the jobs in hand finish, then it exits.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from jobqueue import PermanentFailure
from jobqueue.aio import JobContext, Worker


async def count_words(job: JobContext) -> Any:
    payload = job.payload if isinstance(job.payload, dict) else {}
    text = payload.get("text")
    if not isinstance(text, str):
        raise PermanentFailure('the payload needs "text" (a string)')
    words = text.split()
    for i, _word in enumerate(words, 1):
        if job.cancel_requested:
            raise RuntimeError("cancelled on request")
        await asyncio.sleep(int(payload.get("step_ms", 50)) / 1000)
        await job.progress({"done": i, "total": len(words)})
    return {"words": len(words), "longest": max(words, key=len, default=None)}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(Worker.from_env(count_words, concurrency=4).run())
