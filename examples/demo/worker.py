#!/usr/bin/env python3
"""A jobqueue worker in plain Python: only redis-py, no jobqueue library.

The operator (or `jobqueue-operator run --local`) starts it with REDIS_URL, JOBQUEUE_STREAM,
JOBQUEUE_GROUP and JOBQUEUE_CONSUMER set. It reads jobs with XREADGROUP, does the work, and
acknowledges each with XACK. On SIGTERM it finishes the job in hand and exits.

A job is one stream entry: id, payload (JSON text), enqueued_at (unix ms), attempt; jobs from a
Schedule also carry schedule and scheduled_for. The "work" here: sleep payload["sleep"] seconds
(default 0.005), and fail (no XACK) when payload["fail"] is true, so the job is retried.
"""

import json
import os
import signal
import time

import redis

stream = os.environ["JOBQUEUE_STREAM"]
group = os.environ["JOBQUEUE_GROUP"]
consumer = os.environ["JOBQUEUE_CONSUMER"]
r = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)

stopping = False


def stop(signum, _frame):
    global stopping
    stopping = True
    # os.write, not print: a handler may interrupt a print, and buffered IO is not reentrant.
    os.write(1, f"signal {signum}: finishing the job in hand, then exiting\n".encode())


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)

print(f"worker {consumer} (pid {os.getpid()}) reading {stream} as group {group}", flush=True)
while not stopping:
    # Block at most 1 s so a SIGTERM is noticed quickly when the queue is empty.
    batches = r.xreadgroup(group, consumer, {stream: ">"}, count=1, block=1000) or []
    for _stream, entries in batches:
        for entry_id, job in entries:
            payload = json.loads(job.get("payload") or "{}")
            attempt = job.get("attempt", "1")
            print(f"got {job.get('id')} attempt {attempt}", flush=True)
            time.sleep(float(payload.get("sleep", 0.005)))
            if payload.get("fail"):
                print(f"failed {job.get('id')} attempt {attempt}", flush=True)
                continue
            if r.xack(stream, group, entry_id) == 1:
                print(f"acked {job.get('id')} attempt {attempt}", flush=True)
            else:
                # The job was handed to another worker meanwhile (visibility timeout).
                print(f"lost {job.get('id')} attempt {attempt}", flush=True)
print(f"worker {consumer} stopping", flush=True)
