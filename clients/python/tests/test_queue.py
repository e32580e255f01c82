"""The client against a real redis-server (single node and Redis Cluster) whose queues
`jobqueue-operator run --local` provisioned: producing, following and working jobs."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from conftest import working

import jobqueue
from jobqueue.testing import eventually


def test_enqueue_now_is_queued_with_a_uuid7(queue: jobqueue.Queue) -> None:
    job_id = queue.enqueue({"n": 1})
    assert uuid.UUID(job_id).version == 7
    job = queue.get_job(job_id)
    assert job is not None
    assert (job.state, job.attempt, job.result) == ("queued", 1, None)
    assert job.enqueued_at is not None
    assert queue.get_job(str(uuid.uuid4())) is None


def test_delayed_job_waits_then_runs(queue: jobqueue.Queue) -> None:
    job_id = queue.enqueue({"n": 2}, delay=1.0)
    job = queue.get_job(job_id)
    assert job is not None and job.state == "delayed" and job.due is not None
    with working(queue, lambda j: {"ran": j.payload["n"]}):
        done = queue.wait(job_id, timeout=30)
    assert done.state == "succeeded" and done.result == {"ran": 2}
    assert done.started_at is not None and done.enqueued_at is not None
    assert (done.started_at - done.enqueued_at).total_seconds() >= 0.9


def test_idempotency_key_returns_the_first_job(queue: jobqueue.Queue) -> None:
    first = queue.enqueue({"order": 42}, idempotency_key="order-42")
    again = queue.enqueue({"order": 42}, idempotency_key="order-42")
    other = queue.enqueue({"order": 43}, idempotency_key="order-43")
    assert first == again and other != first
    assert queue.client.xlen(queue.stream) == 2


def test_success_with_result(queue: jobqueue.Queue) -> None:
    job_id = queue.enqueue({"a": 2, "b": 3})
    with working(queue, lambda j: {"sum": j.payload["a"] + j.payload["b"]}):
        job = queue.wait(job_id, timeout=30)
    assert (job.state, job.attempt, job.result, job.error) == ("succeeded", 1, {"sum": 5}, None)
    assert job.finished_at is not None


def test_failure_retries_after_backoff_then_succeeds(queue: jobqueue.Queue) -> None:
    attempts: list[int] = []
    first_failed = threading.Event()

    def handler(job: jobqueue.JobContext) -> str:
        attempts.append(job.attempt)
        if job.attempt < 2:
            first_failed.set()
            raise RuntimeError("flaky downstream")
        return "ok"

    job_id = queue.enqueue({})
    with working(queue, handler):
        # The 300 ms backoff leaves time to see the retry pending.
        retrying = eventually("the job to be retrying",
                              lambda: (j := queue.get_job(job_id)) and j.state == "retrying" and j)
        assert retrying.error == "flaky downstream"
        job = queue.wait(job_id, timeout=30)
    assert (job.state, job.attempt, job.result) == ("succeeded", 2, "ok")
    assert attempts == [1, 2]


def test_dead_after_max_deliveries(queue: jobqueue.Queue) -> None:
    def handler(job: jobqueue.JobContext) -> None:
        raise ValueError(f"broken on attempt {job.attempt}")

    job_id = queue.enqueue({})
    with working(queue, handler):
        job = queue.wait(job_id, timeout=30)
    assert (job.state, job.attempt, job.error) == ("dead", 3, "broken on attempt 3")
    dead = queue.client.xrange(f"{queue.stream}:dead")
    assert [e[1]["id"] for e in dead] == [job_id]


def test_permanent_failure_is_dead_at_once(queue: jobqueue.Queue) -> None:
    runs: list[int] = []

    def handler(job: jobqueue.JobContext) -> None:
        runs.append(job.attempt)
        raise jobqueue.PermanentFailure("no recipient")

    job_id = queue.enqueue({})
    with working(queue, handler):
        job = queue.wait(job_id, timeout=30)
    assert (job.state, job.attempt, job.error) == ("dead", 1, "no recipient")
    assert runs == [1]


def test_progress_is_readable_while_the_job_runs(queue: jobqueue.Queue) -> None:
    release = threading.Event()

    def handler(job: jobqueue.JobContext) -> str:
        job.progress({"step": "halfway", "pct": 50})
        release.wait(30)
        return "done"

    job_id = queue.enqueue({})
    with working(queue, handler):
        job = eventually("progress", lambda: (j := queue.get_job(job_id)) and j.progress and j)
        assert job.state == "active" and job.progress == {"step": "halfway", "pct": 50}
        release.set()
        assert queue.wait(job_id, timeout=30).result == "done"


def test_heartbeat_keeps_a_job_longer_than_the_visibility_timeout(queue: jobqueue.Queue) -> None:
    runs: list[int] = []

    def handler(job: jobqueue.JobContext) -> str:
        runs.append(job.attempt)
        # Twice the 2 s visibility timeout; the janitor looks every 200 ms.
        time.sleep(4.5)
        return "long"

    job_id = queue.enqueue({})
    with working(queue, handler, concurrency=2):
        job = queue.wait(job_id, timeout=30)
    assert (job.state, job.attempt, job.result) == ("succeeded", 1, "long")
    assert runs == [1]
    # Never handed out again: one delivery, every event on attempt 1.
    events = [f for _, f in queue.client.xrange(queue.keys.events) if f["job"] == job_id]
    assert [(e["state"], e["attempt"]) for e in events] == [
        ("queued", "1"), ("active", "1"), ("succeeded", "1")]


def test_cancel_a_queued_job_never_runs_it(queue: jobqueue.Queue) -> None:
    ran: list[str] = []
    cancelled = queue.enqueue({"n": "cancelled"})
    assert queue.cancel(cancelled) == "cancelled"
    after = queue.enqueue({"n": "after"})
    with working(queue, lambda j: ran.append(j.payload["n"])):
        queue.wait(after, timeout=30)
    assert ran == ["after"]
    job = queue.get_job(cancelled)
    assert job is not None and job.state == "cancelled"
    assert queue.cancel(cancelled) == "final"
    assert queue.cancel(str(uuid.uuid4())) == "missing"


def test_cancel_a_running_job_sets_its_flag(queue: jobqueue.Queue) -> None:
    seen: list[bool] = []
    started = threading.Event()

    def handler(job: jobqueue.JobContext) -> None:
        started.set()
        seen.append(job.wait_cancelled(30))
        raise RuntimeError("stopped on request")

    job_id = queue.enqueue({})
    with working(queue, handler):
        started.wait(30)
        assert queue.cancel(job_id) == "requested"
        job = queue.wait(job_id, timeout=30)
    assert seen == [True]
    assert job.state == "cancelled"


def test_wait_times_out(queue: jobqueue.Queue) -> None:
    job_id = queue.enqueue({})
    started = time.monotonic()
    with pytest.raises(jobqueue.WaitTimeout):
        queue.wait(job_id, timeout=0.3)
    assert time.monotonic() - started < 5
