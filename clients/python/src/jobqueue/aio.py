"""The asyncio flavour: the same `Queue` and `Worker` as `jobqueue`, with coroutines."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from ._common import (
    DEFAULT_GROUP,
    Delivery,
    Job,
    JobQueueError,
    Keys,
    LibraryMissing,
    LibraryTooOld,
    PermanentFailure,
    RedisTarget,
    WaitTimeout,
    check_revision,
    default_consumer,
    due_arg,
    env,
    error_text,
    heartbeat_interval,
    is_missing_function,
    missing_library_message,
    new_job_id,
    parse_entries,
    parse_job,
    parse_url,
    parse_xread,
    payload_of,
    read_manifest,
    result_json,
    scheduled_fields,
    text,
)

__all__ = [
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
]

log = logging.getLogger("jobqueue")


def connect(target: RedisTarget) -> Any:
    """An asyncio redis-py client for `target` (`RedisCluster` for a cluster URL)."""
    if target.cluster:
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],
            username=target.username,
            password=target.password,
            ssl=target.tls,
            decode_responses=True,
        )
    return aredis.Redis.from_url(target.url, decode_responses=True)


class Queue:
    """One queue (a stream and its consumer group) on one Redis."""

    def __init__(self, client: Any, stream: str, group: str = DEFAULT_GROUP,
                 target: RedisTarget | None = None) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.keys = Keys(stream)
        self.target = target
        self._checked = False

    @classmethod
    def from_url(cls, url: str, stream: str, group: str = DEFAULT_GROUP) -> Queue:
        target = parse_url(url)
        return cls(connect(target), stream, group, target)

    @classmethod
    def from_manifest(cls, path: str | os.PathLike[str], url: str | None = None) -> Queue:
        """The queue a JobQueue manifest declares; Redis from `url`, else the manifest's
        `spec.redis.url`, else REDIS_URL, else redis://127.0.0.1:6379."""
        m = read_manifest(path)
        url = url or m.url or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379"
        return cls.from_url(url, m.stream, m.group)

    async def close(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> Queue:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def check(self) -> None:
        """Raises `LibraryMissing`/`LibraryTooOld` unless the queue's Redis serves jobs."""
        try:
            reply = await self.client.fcall_ro("jobqueue_version", 0)
        except redis.ResponseError as e:
            if is_missing_function(e):
                raise LibraryMissing(missing_library_message()) from e
            raise
        check_revision(reply)
        self._checked = True

    async def _call(self, fn: str, numkeys: int, *args: str | int, ro: bool = False) -> Any:
        if not self._checked:
            await self.check()
        call = self.client.fcall_ro if ro else self.client.fcall
        try:
            return await call(fn, numkeys, *args)
        except redis.ResponseError as e:
            if is_missing_function(e):
                raise LibraryMissing(missing_library_message()) from e
            raise

    async def enqueue(self, payload: Any, *, delay: float | None = None,
                      at: datetime | float | None = None, idempotency_key: str | None = None,
                      idempotency_ttl: float | None = None) -> str:
        """Adds a job; returns its id (see `jobqueue.Queue.enqueue`)."""
        ttl = "" if idempotency_ttl is None else str(round(idempotency_ttl * 1000))
        reply = await self._call("jobqueue_enqueue", 2, self.stream, self.keys.settings,
                                 new_job_id(), result_json(payload), due_arg(delay, at),
                                 idempotency_key or "", ttl)
        return text(reply[0])

    async def get_job(self, job_id: str) -> Job | None:
        reply = await self._call("jobqueue_get", 3, *self.keys.three(job_id), job_id,
                                 self.group, ro=True)
        return parse_job(job_id, reply)

    async def cancel(self, job_id: str) -> str:
        """`cancelled`, `requested`, `final` or `missing` (see `jobqueue.Queue.cancel`)."""
        reply = await self._call("jobqueue_cancel", 3, *self.keys.three(job_id), job_id,
                                 self.group)
        return text(reply[0])

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it has ended; raises `WaitTimeout` after `timeout` seconds."""
        job: Job
        async for job in self.follow(job_id, timeout):
            if job.is_final:
                return job
        raise WaitTimeout(f"job {job_id} did not end within {timeout} s")  # unreachable

    async def follow(self, job_id: str, timeout: float | None = None) -> AsyncIterator[Job]:
        """Yields the job now and after each of its events (state changes, progress) until it
        has ended; raises `WaitTimeout` after `timeout` seconds (None: no limit). A job that
        does not exist (yet, or any more) yields nothing until it does."""
        deadline = None if timeout is None else time.monotonic() + timeout
        newest = await self.client.xrevrange(self.keys.events, "+", "-", count=1)
        last = text(newest[0][0]) if newest else "0-0"
        while True:
            job = await self.get_job(job_id)
            if job is not None:
                yield job
                if job.is_final:
                    return
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise WaitTimeout(f"job {job_id} did not end within {timeout} s")
                block = 1000 if left is None else max(1, min(1000, int(left * 1000)))
                reply = await self.client.xread({self.keys.events: last}, count=100,
                                                block=block)
                events = parse_xread(reply)
                if events:
                    last = events[-1].entry
                if any(e.fields.get("job") == job_id for e in events):
                    break

    # Worker operations (used by Worker).
    async def _settings_vt(self) -> Any:
        return await self.client.hget(self.keys.settings, "visibility_timeout_ms")

    async def _take(self, consumer: str, count: int) -> list[Delivery]:
        reply = await self._call("jobqueue_take", 2, self.stream, self.keys.settings,
                                 self.group, consumer, count)
        return parse_entries(reply)

    async def _start(self, consumer: str, d: Delivery) -> tuple[str, int]:
        r = await self._call("jobqueue_start", 3, *self.keys.three(d.job_id), self.group,
                             consumer, d.entry, d.job_id)
        return text(r[0]), int(r[1])

    async def _touch(self, consumer: str, d: Delivery, progress: str | None) -> tuple[str, bool]:
        if progress is None:
            r = await self._call("jobqueue_heartbeat", 3, *self.keys.three(d.job_id), self.group,
                                 consumer, d.entry, d.job_id)
        else:
            r = await self._call("jobqueue_progress", 3, *self.keys.three(d.job_id), self.group,
                                 consumer, d.entry, d.job_id, progress)
        return text(r[0]), int(r[1]) == 1

    async def _complete(self, d: Delivery, result: str) -> str:
        r = await self._call("jobqueue_complete", 3, *self.keys.three(d.job_id), self.group,
                             d.entry, d.job_id, result, d.attempt)
        return text(r[0])

    async def _fail(self, d: Delivery, error: str, permanent: bool) -> str:
        r = await self._call("jobqueue_fail", 3, *self.keys.three(d.job_id), self.group,
                             d.entry, d.job_id, error, 1 if permanent else 0)
        return text(r[0])


class JobContext:
    """What a handler receives: the job and the means to report on it."""

    def __init__(self, queue: Queue, consumer: str, delivery: Delivery) -> None:
        self._queue = queue
        self._consumer = consumer
        self.delivery = delivery
        self.id = delivery.job_id
        self.attempt = delivery.attempt
        self.payload = payload_of(delivery)
        self.schedule, self.scheduled_at = scheduled_fields(delivery)
        #: Set when a cancel of this job was requested (seen by heartbeat or progress).
        self.cancelled = asyncio.Event()
        #: True once the delivery is no longer this worker's (reclaimed after a long stall).
        self.lost = False

    @property
    def cancel_requested(self) -> bool:
        return self.cancelled.is_set()

    async def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Waits until a cancel is requested (True) or `timeout` seconds pass (False)."""
        try:
            await asyncio.wait_for(self.cancelled.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def progress(self, value: Any) -> None:
        """Records progress (any JSON value), readable with `get_job` while the job runs."""
        self._note(*await self._queue._touch(self._consumer, self.delivery, result_json(value)))

    async def _heartbeat(self) -> None:
        self._note(*await self._queue._touch(self._consumer, self.delivery, None))

    def _note(self, state: str, cancel: bool) -> None:
        if cancel:
            self.cancelled.set()
        if state == "stale":
            self.lost = True


Handler = Callable[[JobContext], Awaitable[Any] | Any]


class Worker:
    """Takes jobs from a queue and runs the async `handler` on each, `concurrency` at a time."""

    def __init__(self, queue: Queue, handler: Handler, *, consumer: str | None = None,
                 concurrency: int = 1, block_ms: int = 1000) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1; got {concurrency}")
        self.queue = queue
        self.handler = handler
        self.consumer = consumer or default_consumer()
        self.concurrency = concurrency
        self.block_ms = block_ms
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._interval = 5.0

    @classmethod
    def from_env(cls, handler: Handler, *, concurrency: int = 1) -> Worker:
        """Reads REDIS_URL, JOBQUEUE_STREAM, JOBQUEUE_GROUP and JOBQUEUE_CONSUMER."""
        queue = Queue.from_url(env("REDIS_URL"), env("JOBQUEUE_STREAM"),
                               env("JOBQUEUE_GROUP", DEFAULT_GROUP))
        return cls(queue, handler, consumer=env("JOBQUEUE_CONSUMER", default_consumer()),
                   concurrency=concurrency)

    def stop(self) -> None:
        """Stops taking jobs; `run` returns once those in hand have finished."""
        self._stop.set()
        self._slot_freed.set()

    async def run(self, *, handle_signals: bool = True) -> None:
        """Works until `stop()` or SIGTERM/SIGINT, then finishes the jobs in hand."""
        await self.queue.check()
        self._interval = heartbeat_interval(await self.queue._settings_vt())
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
        for s in signals:
            loop.add_signal_handler(s, self.stop)
        blocker = connect(self.queue.target) if self.queue.target else self.queue.client
        try:
            while not self._stop.is_set():
                try:
                    await self._step(blocker)
                except (redis.ConnectionError, redis.TimeoutError) as e:
                    log.warning("redis unavailable (%s); retrying", e)
                    await asyncio.sleep(1.0)
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            for s in signals:
                loop.remove_signal_handler(s)
            if blocker is not self.queue.client:
                await blocker.aclose()

    async def _step(self, blocker: Any) -> None:
        free = self.concurrency - len(self._tasks)
        if free <= 0:
            self._slot_freed.clear()
            await self._slot_freed.wait()
            return
        deliveries = await self.queue._take(self.consumer, free)
        if not deliveries:
            reply = await blocker.xreadgroup(self.queue.group, self.consumer,
                                             {self.queue.stream: ">"}, count=1,
                                             block=self.block_ms)
            for d in parse_xread(reply):
                state, attempt = await self.queue._start(self.consumer, d)
                if state == "active":
                    d.fields["attempt"] = str(attempt)
                    deliveries.append(d)
        for d in deliveries:
            task = asyncio.create_task(self._run_one(d))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()

    async def _run_one(self, d: Delivery) -> None:
        ctx = JobContext(self.queue, self.consumer, d)

        async def beat() -> None:
            while not ctx.lost:
                await asyncio.sleep(self._interval)
                try:
                    await ctx._heartbeat()
                except redis.RedisError as e:
                    log.warning("heartbeat of job %s failed: %s", ctx.id, e)

        beater = asyncio.create_task(beat())
        try:
            result = self.handler(ctx)
            if inspect.isawaitable(result):
                result = await result
        except PermanentFailure as e:
            beater.cancel()
            await self._settle(self.queue._fail(d, error_text(e), True))
        except Exception as e:
            beater.cancel()
            log.info("job %s attempt %d failed: %s", ctx.id, ctx.attempt, error_text(e))
            await self._settle(self.queue._fail(d, error_text(e), False))
        else:
            beater.cancel()
            await self._settle(self.queue._complete(d, result_json(result)))

    @staticmethod
    async def _settle(call: Awaitable[str]) -> None:
        try:
            await call
        except redis.RedisError as e:
            # The delivery stays pending: the operator hands it out again after the timeout.
            log.error("could not record the job's end: %s", e)
