"""Figure 3's peers: how late RQ's own schedulers put 1,000 jobs due in the same second into
their queue, run as their users run them, on the redis-server of benches/schedule_polling.rs.

  python scheduling.py --url URL --scheduler NAME [--jobs N] [--rounds R] [--interval S]

NAME is one of
  rq-cron       RQ's cron scheduler (`rq cron CONFIG`; sleeps until the next cron time), with
                N cron jobs `* * * * * */P` (croniter puts seconds last: every P
                seconds, all due together);
  rq-builtin    RQ's built-in scheduler (`rq worker --with-scheduler`; checks its scheduled
                registry every second) for jobs added with `Queue.enqueue_at`;
  rq-scheduler  rq-scheduler's `rqscheduler --interval S` (60 s by default) for jobs added
                with `Scheduler.enqueue_at`.
Lateness = the job's `enqueued_at` (RQ stamps it when it adds the job to the pipeline that
enqueues it) - the time it was due. The pollers' rounds are due at phases spread evenly over
their polling period ((r + 0.5) / R of it), as a poller's phase against a due time is
arbitrary; a warm-up round (RQ cron, and pollers of less than 10 s) is not reported.

Prints one JSON object: {"rounds": [[lateness ms of each job of a measured round], ...]}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq_scheduler import Scheduler

from jobs import noop

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
CRON_PERIOD_S = 2


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--scheduler", required=True, choices=["rq-cron", "rq-builtin", "rq-scheduler"])
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--interval", type=float, default=60.0)
    a = p.parse_args()
    conn = Redis.from_url(a.url)
    conn.flushall()
    if a.scheduler == "rq-cron":
        rounds = cron_rounds(conn, a.url, a.jobs, a.rounds)
    elif a.scheduler == "rq-builtin":
        rounds = polled_rounds(conn, a.url, a.jobs, a.rounds, 1.0, builtin=True)
    else:
        rounds = polled_rounds(conn, a.url, a.jobs, a.rounds, a.interval, builtin=False)
    json.dump({"rounds": rounds}, sys.stdout)
    print()


def spawn(args: list[str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(HERE))
    return subprocess.Popen(args, cwd=HERE, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(check: Callable[[], bool], deadline_s: float, what: str,
               proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"{what}: the scheduler exited ({proc.returncode}): {err[-2000:]}")
        if time.monotonic() > deadline:
            stop(proc)
            raise SystemExit(f"{what}: not done within {deadline_s:.0f} s")
        time.sleep(0.05)


def late_ms(job: Job, due: datetime) -> float:
    assert job.enqueued_at is not None, f"job {job.id} was never enqueued"
    return (job.enqueued_at - due).total_seconds() * 1000.0


def cron_rounds(conn: Redis[bytes], url: str, n: int, rounds: int) -> list[list[float]]:
    """RQ's cron: every job is due at each multiple of CRON_PERIOD_S seconds."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as cfg:
        cfg.write(
            "from rq import cron\nfrom jobs import noop\n"
            f"for i in range({n}):\n"
            f"    cron.register(noop, 'rq-cron', cron='* * * * * */{CRON_PERIOD_S}',\n"
            "                  name=f'c{i}')\n"
        )
    queue = Queue("rq-cron", connection=conn)
    proc = spawn([str(BIN / "rq"), "cron", "--url", url, cfg.name])
    try:
        # The warm-up round, then the measured ones.
        wait_until(lambda: queue.count >= n * (rounds + 1), CRON_PERIOD_S * (rounds + 2) + 60,
                   "rq cron", proc)
    finally:
        stop(proc)
        os.unlink(cfg.name)
    jobs = [j for j in Job.fetch_many(queue.job_ids, connection=conn) if j is not None]
    by_due: dict[datetime, list[float]] = {}
    for job in jobs:
        assert job.enqueued_at is not None
        # The cron time a job was enqueued for: the last multiple of the period before it
        # (lateness stays far below the period; checked below).
        ts = job.enqueued_at.timestamp()
        due = datetime.fromtimestamp(ts - ts % CRON_PERIOD_S, UTC)
        by_due.setdefault(due, []).append(late_ms(job, due))
    dues = sorted(by_due)
    full = [d for d in dues if len(by_due[d]) == n]
    assert len(full) >= rounds + 1, f"rounds of {n} jobs: {[len(by_due[d]) for d in dues]}"
    measured = [by_due[d] for d in full[1:rounds + 1]]
    assert all(max(r) < CRON_PERIOD_S * 1000 for r in measured)
    return measured


def polled_rounds(conn: Redis[bytes], url: str, n: int, rounds: int, interval: float,
                  builtin: bool) -> list[list[float]]:
    """A poller wakes every `interval`: round r is due (r + 0.5) / rounds of an interval after
    round 0, plus whole intervals that keep rounds at least 2 s apart when the poller is fast
    (a long interval serves every round at one wake-up). A fast poller gets a warm-up round
    first. Every job is added before the poller starts."""
    name = "rq-builtin" if builtin else "rq-scheduler"
    queue = Queue(name, connection=conn)
    rq_scheduler = Scheduler(queue=queue, connection=conn, interval=interval)
    registry = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
    fast = interval < 10
    spread = math.ceil(2 / interval) if fast else 0
    offsets = [(r * spread + (r + 0.5) / rounds) * interval for r in range(rounds)]
    if fast:
        offsets = [0.0] + [o + 2 * spread * interval for o in offsets]

    def add(due: datetime) -> str:
        if builtin:
            return str(queue.enqueue_at(due, noop).id)
        return str(rq_scheduler.enqueue_at(due, noop).id)

    # Adding the jobs takes a while: time a few to place the rounds after the last is added.
    t = time.monotonic()
    probe = [add(datetime.now(UTC) + timedelta(days=1)) for _ in range(50)]
    per_job = (time.monotonic() - t) / len(probe)
    for job_id in probe:
        Job.fetch(job_id, connection=conn).delete()
        conn.zrem(rq_scheduler.scheduled_jobs_key, job_id)
    start = datetime.now(UTC) + timedelta(
        seconds=3 + 2 * per_job * n * len(offsets))
    planned: dict[str, datetime] = {}
    dues = [start + timedelta(seconds=o) for o in offsets]
    for due in dues:
        for _ in range(n):
            planned[add(due)] = due
    assert datetime.now(UTC) < start, "adding the jobs took longer than planned"
    if builtin:
        proc = spawn([str(BIN / "rq"), "worker", "--url", url, "--with-scheduler",
                      "-w", "rq.worker.SimpleWorker", name])
    else:
        proc = spawn([str(BIN / "rqscheduler"), "--url", url, "--interval", str(interval)])

    def all_enqueued() -> bool:
        if builtin:
            return registry.count == 0
        return conn.zcard(rq_scheduler.scheduled_jobs_key) == 0

    try:
        last = (dues[-1] - datetime.now(UTC)).total_seconds()
        wait_until(all_enqueued, last + 2 * interval + 60, name, proc)
    finally:
        stop(proc)
    jobs = {j.id: j for j in Job.fetch_many(list(planned), connection=conn) if j is not None}
    assert len(jobs) == len(planned), f"{len(planned) - len(jobs)} jobs missing"
    measured = dues[1:] if fast else dues
    return [[late_ms(jobs[i], due) for i, d in planned.items() if d == due] for due in measured]


if __name__ == "__main__":
    main()
