"""A worker as a real process (the conformance adapter's `work`), and refusing a Redis whose
queue the operator did not provision."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import QueueInfo

import jobqueue
from jobqueue.testing import RedisServer, eventually

ADAPTER = Path(__file__).resolve().parents[1] / "conformance_adapter.py"


def test_sigterm_drains_the_job_in_hand_then_exits_0(
        queue: jobqueue.Queue, q: QueueInfo, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    env = {**os.environ, "REDIS_URL": q.url, "JOBQUEUE_STREAM": q.stream,
           "JOBQUEUE_GROUP": "workers", "JOBQUEUE_CONSUMER": "drain-1",
           "CONFORMANCE_LOG": str(log)}
    proc = subprocess.Popen([sys.executable, str(ADAPTER), "work", "{}"], env=env)
    try:
        job_id = queue.enqueue({"action": "sleep", "ms": 1500, "result": "drained"})
        eventually("the job to start", lambda: log.exists() and '"start"' in log.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    job = queue.get_job(job_id)
    assert job is not None and (job.state, job.result) == ("succeeded", "drained")
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events == ["start", "end"]
    # Nothing more was taken after the signal.
    later = queue.enqueue({"action": "succeed", "result": 1})
    after = queue.get_job(later)
    assert after is not None and after.state == "queued"


@pytest.fixture
def bare_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


def test_refuses_a_redis_without_the_library(bare_redis: RedisServer) -> None:
    with jobqueue.Queue.from_url(bare_redis.url, "jobqueue:{default/none}") as queue:
        with pytest.raises(jobqueue.LibraryMissing, match="function library is not loaded"):
            queue.enqueue({})
        worker = jobqueue.Worker(queue, lambda j: None)
        with pytest.raises(jobqueue.LibraryMissing, match="provisioned by jobqueue-operator"):
            worker.run(handle_signals=False)
    # Nothing was written.
    assert bare_redis.client().dbsize() == 0


def test_refuses_a_library_older_than_revision_4(bare_redis: RedisServer) -> None:
    client = bare_redis.client()
    client.function_load(
        "#!lua name=jobqueue\n"
        "redis.register_function{function_name='jobqueue_version', "
        "callback=function() return 3 end, flags={'no-writes'}}\n")
    with jobqueue.Queue.from_url(bare_redis.url, "jobqueue:{default/old}") as queue, \
            pytest.raises(jobqueue.LibraryTooOld, match="revision 3"):
        queue.get_job("x")
