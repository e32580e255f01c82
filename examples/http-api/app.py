"""An HTTP front for a job queue, on the jobqueue asyncio client.

  POST /jobs               the JSON body is the job's payload -> 202 {"id": ...}
                           (optional: ?delay=SECONDS, header Idempotency-Key)
  GET  /jobs/{id}          state, attempt, progress, result, error, times
  GET  /jobs/{id}/events   the job's state changes and progress as server-sent events,
                           until it has ended

The queue comes from the JobQueue manifest (JOBQUEUE_MANIFEST, default jobqueue.yaml beside
this file); Redis from REDIS_URL.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse

from jobqueue import Job
from jobqueue.aio import Queue

MANIFEST = os.environ.get("JOBQUEUE_MANIFEST") or str(Path(__file__).with_name("jobqueue.yaml"))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    queue = Queue.from_manifest(MANIFEST, url=os.environ.get("REDIS_URL"))
    await queue.check()  # refuse to start on a Redis the operator has not provisioned
    app.state.queue = queue
    yield
    await queue.close()


app = FastAPI(title="jobqueue HTTP API example", lifespan=lifespan)


def view(job: Job) -> dict[str, Any]:
    def iso(t: Any) -> str | None:
        return t.isoformat() if t else None

    return {"id": job.id, "state": job.state, "attempt": job.attempt,
            "progress": job.progress, "result": job.result, "error": job.error,
            "enqueued_at": iso(job.enqueued_at), "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at)}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/jobs", status_code=202)
async def create_job(request: Request, delay: float | None = None,
                     idempotency_key: str | None = Header(default=None)) -> JSONResponse:
    try:
        payload = await request.json()
    except ValueError as e:
        raise HTTPException(400, "the body must be JSON (the job's payload)") from e
    queue: Queue = request.app.state.queue
    job_id = await queue.enqueue(payload, delay=delay, idempotency_key=idempotency_key)
    return JSONResponse({"id": job_id}, status_code=202,
                        headers={"Location": f"/jobs/{job_id}"})


@app.get("/jobs/{job_id}")
async def get_job(request: Request, job_id: str) -> dict[str, Any]:
    job = await request.app.state.queue.get_job(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return view(job)


@app.get("/jobs/{job_id}/events")
async def job_events(request: Request, job_id: str) -> StreamingResponse:
    queue: Queue = request.app.state.queue
    if await queue.get_job(job_id) is None:
        raise HTTPException(404, f"no job {job_id}")

    async def stream() -> AsyncIterator[str]:
        async for job in queue.follow(job_id):
            yield f"event: {job.state}\ndata: {json.dumps(view(job))}\n\n"
            if await request.is_disconnected():
                return

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})
