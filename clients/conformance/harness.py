"""The conformance harness: runs one scenario (clients/conformance/scenarios/*.json) against
adapter programs (the contract is in README.md). Each role of a scenario (producer, worker,
reader) is played by one adapter; single-language runs give all roles to the same one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobqueue.testing import eventually

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).resolve().parent / "scenarios"


@dataclass(frozen=True)
class Adapter:
    """How to start one client's adapter; `missing` says why it cannot run (None: it can)."""

    lang: str
    argv: list[str]
    required_file: Path | None

    @property
    def missing(self) -> str | None:
        if not self.argv:
            return f"the {self.lang} client has no conformance adapter command yet"
        if self.required_file is not None and not self.required_file.exists():
            return (f"{self.required_file.relative_to(REPO)} does not exist "
                    f"(build the {self.lang} client first)")
        return None


# The adapter table: one row per client. An empty argv means the adapter is not written yet.
ADAPTERS = [
    Adapter("python", [sys.executable, str(REPO / "clients/python/conformance_adapter.py")],
            None),
    Adapter("typescript", ["node", str(REPO / "clients/typescript/dist/conformance-adapter.js")],
            REPO / "clients/typescript/dist/conformance-adapter.js"),
    Adapter("rust", [str(REPO / "target/debug/examples/conformance_adapter")],
            REPO / "target/debug/examples/conformance_adapter"),
]


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIOS.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCENARIOS / f"{name}.json").read_text())
    return data


def manifest(name: str, queue: dict[str, Any]) -> str:
    """The scenario's queue as a JobQueue manifest (JSON, which local mode reads too)."""
    delivery = {k: v for k, v in queue.items()
                if k in ("visibilityTimeout", "maxDeliveries", "retryBackoff")}
    return json.dumps({"apiVersion": "jobqueue.io/v1alpha1", "kind": "JobQueue",
                       "metadata": {"name": name}, "spec": {"delivery": delivery}})


def matches(actual: Any, expected: dict[str, Any]) -> bool:
    return isinstance(actual, dict) and all(actual.get(k) == v for k, v in expected.items())


@dataclass
class Run:
    """One scenario run: a queue of its own, the adapters per role, the shared log."""

    roles: dict[str, Adapter]
    redis_url: str
    stream: str
    log: Path
    redis: Any
    jobs: dict[str, str] = field(default_factory=dict)
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def env(self, consumer: str = "conformance") -> dict[str, str]:
        return {**os.environ, "REDIS_URL": self.redis_url, "JOBQUEUE_STREAM": self.stream,
                "JOBQUEUE_GROUP": "workers", "JOBQUEUE_CONSUMER": consumer,
                "CONFORMANCE_LOG": str(self.log)}

    def adapter(self, step: dict[str, Any], default_role: str) -> Adapter:
        return self.roles[step.get("by", default_role)]

    def call(self, adapter: Adapter, *args: str, ok: tuple[int, ...] = (0,)
             ) -> tuple[int, Any]:
        proc = subprocess.run([*adapter.argv, *args], env=self.env(), capture_output=True,
                              text=True, timeout=120, cwd=REPO)
        if proc.returncode not in ok:
            raise AssertionError(f"{adapter.lang} adapter {args[0]} exited {proc.returncode}:"
                                 f"\n{proc.stdout}\n{proc.stderr}")
        out = proc.stdout.strip()
        return proc.returncode, json.loads(out.splitlines()[-1]) if out else None

    def log_lines(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def events(self, job: str) -> list[dict[str, str]]:
        events_key = f"{self.stream}:events"
        return [f for _id, f in self.redis.xrange(events_key) if f.get("job") == job]

    def step(self, s: dict[str, Any]) -> None:
        do = s["do"]
        handler = getattr(self, f"do_{do}", None)
        if handler is None:
            raise AssertionError(f"unknown scenario step {do!r}")
        handler(s)

    def do_enqueue(self, s: dict[str, Any]) -> None:
        _, out = self.call(self.adapter(s, "producer"), "enqueue", json.dumps(s["spec"]))
        self.jobs[s["as"]] = out["id"]

    def do_same_id(self, s: dict[str, Any]) -> None:
        ids = {self.jobs[j] for j in s["jobs"]}
        assert len(ids) == 1, f"expected one id for {s['jobs']}, got {ids}"

    def do_different_ids(self, s: dict[str, Any]) -> None:
        ids = [self.jobs[j] for j in s["jobs"]]
        assert len(set(ids)) == len(ids), f"expected distinct ids for {s['jobs']}: {ids}"

    def do_get(self, s: dict[str, Any]) -> None:
        _, job = self.call(self.adapter(s, "reader"), "get", self.jobs[s["job"]])
        assert matches(job, s["expect"]), f"get {s['job']}: {job}, expected {s['expect']}"
        assert job["id"] == self.jobs[s["job"]]

    def do_get_missing(self, s: dict[str, Any]) -> None:
        _, job = self.call(self.adapter(s, "reader"), "get", s["id"])
        assert job is None, job

    def do_wait(self, s: dict[str, Any]) -> None:
        adapter = self.adapter(s, "reader")
        started = time.monotonic()
        code, job = self.call(adapter, "wait", self.jobs[s["job"]], str(s["timeout_ms"]),
                              ok=(0, 3))
        if s.get("expect_timeout"):
            assert code == 3, f"wait should have timed out, got {job}"
            assert time.monotonic() - started >= s["timeout_ms"] / 1000 * 0.9
            return
        assert code == 0, f"wait {s['job']} timed out"
        assert matches(job, s["expect"]), f"wait {s['job']}: {job}, expected {s['expect']}"

    def do_cancel(self, s: dict[str, Any]) -> None:
        _, out = self.call(self.adapter(s, "reader"), "cancel", self.jobs[s["job"]])
        assert out == {"outcome": s["expect"]}, out

    def do_cancel_missing(self, s: dict[str, Any]) -> None:
        _, out = self.call(self.adapter(s, "reader"), "cancel", s["id"])
        assert out == {"outcome": s["expect"]}, out

    def do_start_worker(self, s: dict[str, Any]) -> None:
        adapter = self.adapter(s, "worker")
        name = s["as"]
        self.workers[name] = subprocess.Popen(
            [*adapter.argv, "work", json.dumps(s.get("options", {}))],
            env=self.env(f"conformance-{adapter.lang}-{name}"), cwd=REPO)

    def do_stop_worker(self, s: dict[str, Any]) -> None:
        proc = self.workers.pop(s["worker"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == s.get("expect_exit", 0)

    def do_wait_log(self, s: dict[str, Any]) -> None:
        job = self.jobs[s["job"]]
        eventually(f"a {s['event']} log line for {s['job']}", lambda: any(
            line["id"] == job and line["event"] == s["event"] for line in self.log_lines()))

    def do_log(self, s: dict[str, Any]) -> None:
        job = self.jobs[s["job"]]
        lines = [line for line in self.log_lines() if line["id"] == job]
        got = [[line["event"], line["attempt"]] for line in lines]
        assert got == s["expect"], f"log of {s['job']}: {got}, expected {s['expect']}"
        if "lang" in s:
            want = self.roles[s["lang"]].lang
            assert all(line["lang"] == want for line in lines), lines

    def do_states(self, s: dict[str, Any]) -> None:
        states = [e["state"] for e in self.events(self.jobs[s["job"]])]
        missing = [x for x in s["include"] if x not in states]
        assert not missing, f"states of {s['job']}: {states}; missing {missing}"

    def do_state_gap(self, s: dict[str, Any]) -> None:
        events = self.events(self.jobs[s["job"]])
        for i, e in enumerate(events):
            if e["state"] != s["from"]:
                continue
            nxt = next((x for x in events[i + 1:] if x["state"] == s["to"]), None)
            assert nxt is not None, f"no {s['to']} after {s['from']}: {events}"
            gap = int(nxt["at"]) - int(e["at"])
            assert gap >= s["min_ms"], f"{s['from']} -> {s['to']} took {gap} ms: {events}"
            return
        raise AssertionError(f"no {s['from']} event for {s['job']}: {events}")

    def do_progress_events(self, s: dict[str, Any]) -> None:
        got = [json.loads(e["progress"]) for e in self.events(self.jobs[s["job"]])
               if "progress" in e]
        assert got == s["expect"], f"progress of {s['job']}: {got}"

    def close(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.workers.clear()
