"""Enqueues N tasks of S seconds with Celery's own client (`task.delay`).

    REDIS_URL=redis://127.0.0.1:PORT ADOPT_QUEUE=default python celery_enqueue.py --count 24 --seconds 1

Prints the task ids, one a line. `--countdown SECONDS` delays them (`apply_async(countdown=)`),
`--fail` sends tasks that raise.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from celery_app import fail_task, sleep_task  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--countdown", type=float, default=0.0)
    ap.add_argument("--priority", type=int, default=None)
    ap.add_argument("--fail", action="store_true")
    args = ap.parse_args()
    for _ in range(args.count):
        if args.fail:
            result = fail_task.delay()
        elif args.countdown > 0 or args.priority is not None:
            options: dict[str, object] = {}
            if args.countdown > 0:
                options["countdown"] = args.countdown
            if args.priority is not None:
                options["priority"] = args.priority
            result = sleep_task.apply_async((args.seconds,), **options)
        else:
            result = sleep_task.delay(args.seconds)
        print(result.id, flush=True)


if __name__ == "__main__":
    main()
