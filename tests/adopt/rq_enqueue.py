"""Enqueues N jobs of S seconds on an RQ queue with RQ's own client (`Queue.enqueue`).

    python rq_enqueue.py --url redis://127.0.0.1:PORT --queue default --count 24 --seconds 1

Prints the job ids, one a line. `--delay SECONDS` schedules them instead (`enqueue_in`), and
`--fail` enqueues jobs that raise.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta

from redis import Redis
from rq import Queue

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rq_jobs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=os.environ.get("REDIS_URL", ""))
    ap.add_argument("--queue", default="default")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--fail", action="store_true")
    args = ap.parse_args()
    queue = Queue(args.queue, connection=Redis.from_url(args.url))
    for _ in range(args.count):
        if args.fail:
            job = queue.enqueue(rq_jobs.fail_job)
        elif args.delay > 0:
            job = queue.enqueue_in(timedelta(seconds=args.delay), rq_jobs.sleep_job, args.seconds)
        else:
            job = queue.enqueue(rq_jobs.sleep_job, args.seconds)
        print(job.id, flush=True)


if __name__ == "__main__":
    main()
