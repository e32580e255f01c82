"""Fixtures: a private redis-server (single node and a three-node Redis Cluster), with
`jobqueue-operator run --local` provisioning a pool of queues on each, one queue per test."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import jobqueue
from jobqueue.testing import LocalOperator, RedisServer, manifest, operator_binary

REPO = Path(__file__).resolve().parents[3]
POOL = 16


@dataclass
class Env:
    redis: RedisServer
    operator: LocalOperator
    names: Iterator[str]


@dataclass
class QueueInfo:
    name: str
    stream: str
    url: str
    redis: RedisServer
    operator: LocalOperator

    def queue(self) -> jobqueue.Queue:
        return jobqueue.Queue.from_url(self.url, self.stream)


def _start(cluster: bool) -> Env:
    server = RedisServer(cluster=cluster)
    names = [f"q{i}" for i in range(POOL)]
    files = {f"{n}.yaml": manifest(n) for n in names}
    files["short.yaml"] = manifest("short", max_deliveries=2, backoff=None)
    op = LocalOperator(operator_binary(REPO), server.url, files)
    client = server.client()
    for n in [*names, "short"]:
        op.wait_serving(f"default/{n}", f"jobqueue:{{default/{n}}}", client)
    client.close()
    return Env(server, op, iter(names))


@pytest.fixture(scope="session", params=["single", "cluster"])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    e = _start(request.param == "cluster")
    yield e
    e.operator.stop()
    e.redis.stop()


@pytest.fixture
def q(env: Env) -> QueueInfo:
    """A queue of its own for one test: visibility timeout 2 s, 3 deliveries, backoff 300 ms."""
    name = next(env.names)
    return QueueInfo(name, f"jobqueue:{{default/{name}}}", env.redis.url, env.redis,
                     env.operator)


@pytest.fixture
def queue(q: QueueInfo) -> Iterator[jobqueue.Queue]:
    with q.queue() as queue:
        yield queue


@contextmanager
def working(queue: jobqueue.Queue, handler: Callable[[jobqueue.JobContext], Any],
            concurrency: int = 1, consumer: str = "test-worker") -> Iterator[jobqueue.Worker]:
    """A Worker running `handler` in a thread; stopped (drained) on exit."""
    worker = jobqueue.Worker(queue, handler, consumer=consumer, concurrency=concurrency,
                             block_ms=100)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(handle_signals=False)
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)
        assert not thread.is_alive(), "the worker did not stop"
        assert not errors, errors
