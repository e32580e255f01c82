"""The blocking flavour: `Queue` (produce and follow jobs) and `Worker` (run them), on threads."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from functools import partial
from types import FrameType, TracebackType
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster

from ._common import (
    DEFAULT_GROUP,
    Delivery,
    Job,
    Keys,
    LibraryMissing,
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

log = logging.getLogger("jobqueue")


def connect(target: RedisTarget) -> Any:
    """A redis-py client for `target`: `redis.Redis`, or `RedisCluster` for a cluster URL."""
    if target.cluster:
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],  # type: ignore[no-untyped-call]
            username=target.username,
            password=target.password,
            ssl=target.tls,
            decode_responses=True,
        )
    return redis.Redis.from_url(target.url, decode_responses=True)


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

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def check(self) -> None:
        """Raises `LibraryMissing`/`LibraryTooOld` unless the queue's Redis serves jobs."""
        try:
            reply = self.client.fcall_ro("jobqueue_version", 0)
        except redis.ResponseError as e:
            if is_missing_function(e):
                raise LibraryMissing(missing_library_message()) from e
            raise
        check_revision(reply)
        self._checked = True

    def _call(self, fn: str, numkeys: int, *args: str | int, ro: bool = False) -> Any:
        if not self._checked:
            self.check()
        call = self.client.fcall_ro if ro else self.client.fcall
        try:
            return call(fn, numkeys, *args)
        except redis.ResponseError as e:
            if is_missing_function(e):
                raise LibraryMissing(missing_library_message()) from e
            raise

    def enqueue(self, payload: Any, *, delay: float | None = None,
                at: datetime | float | None = None, idempotency_key: str | None = None,
                idempotency_ttl: float | None = None) -> str:
        """Adds a job (payload: anything JSON-serialisable); returns its id. `delay` in
        seconds, or `at` (datetime or unix seconds); with `idempotency_key`, a key seen
        within its TTL (seconds, default 24 h) answers the earlier job's id."""
        ttl = "" if idempotency_ttl is None else str(round(idempotency_ttl * 1000))
        reply = self._call("jobqueue_enqueue", 2, self.stream, self.keys.settings, new_job_id(),
                           result_json(payload), due_arg(delay, at), idempotency_key or "", ttl)
        return text(reply[0])

    def get_job(self, job_id: str) -> Job | None:
        reply = self._call("jobqueue_get", 3, *self.keys.three(job_id), job_id, self.group,
                           ro=True)
        return parse_job(job_id, reply)

    def cancel(self, job_id: str) -> str:
        """`cancelled` (it will never run), `requested` (it runs: its worker is told),
        `final` (already ended) or `missing`."""
        reply = self._call("jobqueue_cancel", 3, *self.keys.three(job_id), job_id, self.group)
        return text(reply[0])

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it has ended (succeeded, dead or cancelled), following the queue's
        events stream; raises `WaitTimeout` after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = self._last_event()
        while True:
            job = self.get_job(job_id)
            if job is not None and job.is_final:
                return job
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise WaitTimeout(f"job {job_id} did not end within {timeout} s")
                block = 1000 if left is None else max(1, min(1000, int(left * 1000)))
                reply = self.client.xread({self.keys.events: last}, count=100, block=block)
                events = parse_xread(reply)
                if events:
                    last = events[-1].entry
                if any(e.fields.get("job") == job_id for e in events):
                    break

    def _last_event(self) -> str:
        newest = self.client.xrevrange(self.keys.events, "+", "-", count=1)
        return text(newest[0][0]) if newest else "0-0"

    # Worker operations (used by Worker).
    def _settings_vt(self) -> Any:
        return self.client.hget(self.keys.settings, "visibility_timeout_ms")

    def _take(self, consumer: str, count: int) -> list[Delivery]:
        reply = self._call("jobqueue_take", 2, self.stream, self.keys.settings, self.group,
                           consumer, count)
        return parse_entries(reply)

    def _start(self, consumer: str, d: Delivery) -> tuple[str, int]:
        r = self._call("jobqueue_start", 3, *self.keys.three(d.job_id), self.group, consumer,
                       d.entry, d.job_id)
        return text(r[0]), int(r[1])

    def _touch(self, consumer: str, d: Delivery, progress: str | None) -> tuple[str, bool]:
        if progress is None:
            r = self._call("jobqueue_heartbeat", 3, *self.keys.three(d.job_id), self.group,
                           consumer, d.entry, d.job_id)
        else:
            r = self._call("jobqueue_progress", 3, *self.keys.three(d.job_id), self.group,
                           consumer, d.entry, d.job_id, progress)
        return text(r[0]), int(r[1]) == 1

    def _complete(self, d: Delivery, result: str) -> str:
        r = self._call("jobqueue_complete", 3, *self.keys.three(d.job_id), self.group, d.entry,
                       d.job_id, result, d.attempt)
        return text(r[0])

    def _fail(self, d: Delivery, error: str, permanent: bool) -> str:
        r = self._call("jobqueue_fail", 3, *self.keys.three(d.job_id), self.group, d.entry,
                       d.job_id, error, 1 if permanent else 0)
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
        self.cancelled = threading.Event()
        #: True once the delivery is no longer this worker's (reclaimed after a long stall).
        self.lost = False

    @property
    def cancel_requested(self) -> bool:
        return self.cancelled.is_set()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Blocks until a cancel is requested (True) or `timeout` seconds pass (False)."""
        return self.cancelled.wait(timeout)

    def progress(self, value: Any) -> None:
        """Records progress (any JSON value), readable with `get_job` while the job runs."""
        self._note(*self._queue._touch(self._consumer, self.delivery, result_json(value)))

    def _heartbeat(self) -> None:
        self._note(*self._queue._touch(self._consumer, self.delivery, None))

    def _note(self, state: str, cancel: bool) -> None:
        if cancel:
            self.cancelled.set()
        if state == "stale":
            self.lost = True


Handler = Callable[[JobContext], Any]


class Worker:
    """Takes jobs from a queue and runs `handler` on each, `concurrency` at a time."""

    def __init__(self, queue: Queue, handler: Handler, *, consumer: str | None = None,
                 concurrency: int = 1, block_ms: int = 1000) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1; got {concurrency}")
        self.queue = queue
        self.handler = handler
        self.consumer = consumer or default_consumer()
        self.concurrency = concurrency
        self.block_ms = block_ms
        self._stop = threading.Event()
        self._slots = threading.Condition()
        self._running = 0
        self._interval = 5.0

    @classmethod
    def from_env(cls, handler: Handler, *, concurrency: int = 1) -> Worker:
        """Reads REDIS_URL, JOBQUEUE_STREAM, JOBQUEUE_GROUP and JOBQUEUE_CONSUMER, as the
        operator sets them in every worker."""
        queue = Queue.from_url(env("REDIS_URL"), env("JOBQUEUE_STREAM"),
                               env("JOBQUEUE_GROUP", DEFAULT_GROUP))
        return cls(queue, handler, consumer=env("JOBQUEUE_CONSUMER", default_consumer()),
                   concurrency=concurrency)

    def stop(self) -> None:
        """Stops taking jobs; `run` returns once those in hand have finished."""
        self._stop.set()
        with self._slots:
            self._slots.notify_all()

    def run(self, *, handle_signals: bool = True) -> None:
        """Works until `stop()` or SIGTERM/SIGINT, then finishes the jobs in hand."""
        self.queue.check()
        self._interval = heartbeat_interval(self.queue._settings_vt())
        restore = self._install_signals() if handle_signals else {}
        blocker = connect(self.queue.target) if self.queue.target else self.queue.client
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="jobqueue-job")
        try:
            while not self._stop.is_set():
                try:
                    self._step(pool, blocker)
                except (redis.ConnectionError, redis.TimeoutError) as e:
                    log.warning("redis unavailable (%s); retrying", e)
                    self._stop.wait(1.0)
        finally:
            pool.shutdown(wait=True)
            if blocker is not self.queue.client:
                blocker.close()
            for sig, old in restore.items():
                signal.signal(sig, old)

    def _step(self, pool: ThreadPoolExecutor, blocker: Any) -> None:
        with self._slots:
            free = self.concurrency - self._running
            if free <= 0:
                self._slots.wait(1.0)
                return
        deliveries = self.queue._take(self.consumer, free)
        if not deliveries:
            reply = blocker.xreadgroup(self.queue.group, self.consumer,
                                       {self.queue.stream: ">"}, count=1, block=self.block_ms)
            for d in parse_xread(reply):
                state, attempt = self.queue._start(self.consumer, d)
                if state == "active":
                    d.fields["attempt"] = str(attempt)
                    deliveries.append(d)
        for d in deliveries:
            with self._slots:
                self._running += 1
            future: Future[None] = pool.submit(self._run_one, d)
            future.add_done_callback(self._done)

    def _done(self, _f: Future[None]) -> None:
        with self._slots:
            self._running -= 1
            self._slots.notify_all()

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(_sig: int, _frame: FrameType | None) -> None:
            self._stop.set()

        return {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def _run_one(self, d: Delivery) -> None:
        ctx = JobContext(self.queue, self.consumer, d)
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self._interval):
                try:
                    ctx._heartbeat()
                except redis.RedisError as e:
                    log.warning("heartbeat of job %s failed: %s", ctx.id, e)
                if ctx.lost:
                    return

        beater = threading.Thread(target=beat, name=f"jobqueue-heartbeat-{ctx.id}", daemon=True)
        beater.start()
        try:
            result = self.handler(ctx)
            settle: Callable[[], str] = partial(self.queue._complete, d, result_json(result))
        except PermanentFailure as e:
            error = error_text(e)
            settle = partial(self.queue._fail, d, error, True)
        except Exception as e:
            error = error_text(e)
            log.info("job %s attempt %d failed: %s", ctx.id, ctx.attempt, error)
            settle = partial(self.queue._fail, d, error, False)
        done.set()
        try:
            settle()
        except redis.RedisError as e:
            # The delivery stays pending: the operator hands it out again after the timeout.
            log.error("could not record the end of job %s: %s", ctx.id, e)
        beater.join()
