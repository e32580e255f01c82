#!/usr/bin/env python3
"""Enqueue a burst of jobs into the demo queue with plain redis-py (any language can: one XADD
per job with the fields id, payload, enqueued_at and attempt).

    python3 burst.py [COUNT] [SLEEP_SECONDS]      # default 2000 jobs of 0.005 s each
"""

import json
import os
import sys
import time
import uuid

import redis

count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
sleep = float(sys.argv[2]) if len(sys.argv) > 2 else 0.005
stream = os.environ.get("JOBQUEUE_STREAM", "jobqueue:{default/demo}")
r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))

pipe = r.pipeline(transaction=False)
for n in range(count):
    pipe.xadd(stream, {
        "id": str(uuid.uuid4()),
        "payload": json.dumps({"n": n, "sleep": sleep}),
        "enqueued_at": int(time.time() * 1000),
        "attempt": 1,
    })
pipe.execute()
print(f"enqueued {count} jobs into {stream}")
