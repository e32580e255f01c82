"""RQ's end-to-end throughput on a given Redis, for benches/throughput.rs (figure 5).

For each run: enqueue JOBS trivial jobs (jobs.noop) in one pipeline with
Queue.enqueue_many, start WORKERS `rq worker --burst` processes (RQ's own worker; the default
class forks a work horse per job), wait until they exit, and check every job finished.
Prints one JSON object per run:
  wall_s     enqueue start -> last worker exit (includes Python start-up of the workers)
  busy_s     first job started -> last job ended (from RQ's own job timestamps)
  enqueue_s  the enqueue_many call
Usage: throughput.py REDIS_URL JOBS WORKERS RUNS [WORKER_CLASS]
"""

import json
import os
import subprocess
import sys
import time
import uuid

from redis import Redis
from rq import Queue
from rq.job import Job

import jobs  # noqa: F401  (the workers import it by name)


def main():
    url, n, workers, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    worker_class = sys.argv[5] if len(sys.argv) > 5 else "rq.Worker"
    here = os.path.dirname(os.path.abspath(__file__))
    rq_bin = os.path.join(os.path.dirname(sys.executable), "rq")
    env = dict(os.environ, PYTHONPATH=here)
    conn = Redis.from_url(url)
    for _ in range(runs):
        name = "bench-" + uuid.uuid4().hex[:8]
        queue = Queue(name, connection=conn)
        data = [Queue.prepare_data("jobs.noop", result_ttl=600) for _ in range(n)]
        t0 = time.perf_counter()
        enqueued = queue.enqueue_many(data)
        t1 = time.perf_counter()
        procs = [
            subprocess.Popen(
                [rq_bin, "worker", "--burst", "--quiet", "--url", url, "-w", worker_class,
                 "--name", f"{name}-w{i}", name],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            for i in range(workers)
        ]
        errors = [p.communicate()[1] for p in procs]
        t2 = time.perf_counter()
        for p, err in zip(procs, errors):
            if p.returncode != 0:
                sys.exit(f"rq worker exited with {p.returncode}: {err.decode()[-2000:]}")
        finished = queue.finished_job_registry.count
        if finished != n:
            sys.exit(f"only {finished} of {n} RQ jobs finished")
        fetched = Job.fetch_many([j.id for j in enqueued], connection=conn)
        started = min(j.started_at for j in fetched)
        ended = max(j.ended_at for j in fetched)
        print(json.dumps({
            "wall_s": t2 - t0,
            "busy_s": (ended - started).total_seconds(),
            "enqueue_s": t1 - t0,
        }), flush=True)


if __name__ == "__main__":
    main()
