"""The example end to end: a real redis-server, `jobqueue-operator run --local` on the
example's manifest (which starts worker.py), and the FastAPI app under uvicorn, through HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobqueue.testing import LocalOperator, RedisServer, eventually, operator_binary

EXAMPLE = Path(__file__).resolve().parents[1]
REPO = EXAMPLE.parents[1]


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    server = RedisServer()
    files = {name: (EXAMPLE / name).read_text() for name in ("jobqueue.yaml", "worker.py")}
    # The worker's `python` is this interpreter (the venv with the client).
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    op = LocalOperator(operator_binary(REPO), server.url, files, env={"PATH": path})
    client = server.client()
    op.wait_serving("default/http-api", "jobqueue:{default/http-api}", client)
    op.wait_line("[http-api#0] started pid")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=EXAMPLE, env={**os.environ, "REDIS_URL": server.url})
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        eventually("the app to answer", lambda: http.get("/healthz").status_code == 200)
        yield http
    finally:
        http.close()
        app.terminate()
        app.wait(30)
        op.stop()
        client.close()
        server.stop()


def test_post_answers_202_and_the_job_runs(api: httpx.Client) -> None:
    r = api.post("/jobs", json={"text": "the quick brown fox", "step_ms": 10})
    assert r.status_code == 202
    job_id = r.json()["id"]
    assert r.headers["location"] == f"/jobs/{job_id}"
    job = eventually("the job to succeed", lambda: (
        j := api.get(f"/jobs/{job_id}").json())["state"] == "succeeded" and j)
    assert job["result"] == {"words": 4, "longest": "quick"}
    assert job["progress"] == {"done": 4, "total": 4}
    assert job["attempt"] == 1 and job["finished_at"]


def test_events_relay_state_changes_and_progress(api: httpx.Client) -> None:
    job_id = api.post("/jobs", json={"text": "one two three", "step_ms": 100}).json()["id"]
    events: list[tuple[str, dict[str, object]]] = []
    with api.stream("GET", f"/jobs/{job_id}/events") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: "):])))
    names = [n for n, _ in events]
    assert names[-1] == "succeeded" and "active" in names
    # Progress shows while the job runs (100 ms a word), not only at the end.
    assert any(d["progress"] for n, d in events if n == "active")
    assert events[-1][1]["progress"] == {"done": 3, "total": 3}
    assert events[-1][1]["result"] == {"words": 3, "longest": "three"}


def test_bad_payload_is_dead_and_unknown_job_is_404(api: httpx.Client) -> None:
    job_id = api.post("/jobs", json={"no": "text"}).json()["id"]
    job = eventually("the job to be dead", lambda: (
        j := api.get(f"/jobs/{job_id}").json())["state"] == "dead" and j)
    assert job["attempt"] == 1 and "text" in job["error"]
    assert api.get("/jobs/00000000-0000-7000-8000-000000000000").status_code == 404
    assert api.get("/jobs/00000000-0000-7000-8000-000000000000/events").status_code == 404
    assert api.post("/jobs", content=b"not json").status_code == 400


def test_idempotency_key_and_delay(api: httpx.Client) -> None:
    headers = {"Idempotency-Key": "order-7"}
    first = api.post("/jobs?delay=30", json={"text": "a"}, headers=headers).json()["id"]
    again = api.post("/jobs?delay=30", json={"text": "b"}, headers=headers).json()["id"]
    assert first == again
    assert api.get(f"/jobs/{first}").json()["state"] == "delayed"
