"""Test helpers: a private redis-server (single node or a three-node Redis Cluster) and
`jobqueue-operator run --local` provisioning queues on it, as the client's own tests, the
conformance suite and the examples use them. Every wait polls with a deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import redis
from redis.cluster import ClusterNode, RedisCluster

T = TypeVar("T")

DEADLINE = 60.0


def eventually(what: str, check: Callable[[], T | None], timeout: float = DEADLINE,
               interval: float = 0.02) -> T:
    """Polls `check` until it answers something other than None/False; raises after timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value is not None and value is not False:
                return value
        except Exception as e:
            last_error = e
        time.sleep(interval)
    detail = f": {last_error}" if last_error else ""
    raise AssertionError(f"timed out waiting for {what}{detail}")


def _free_port(also_bus: bool = False) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port == 6379 or (also_bus and port + 10000 > 65535):
            continue
        if also_bus:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
        return port


def _cluster_ok(node: Any) -> bool:
    info = node.execute_command("CLUSTER", "INFO")
    if isinstance(info, dict):
        return info.get("cluster_state") == "ok"
    return "cluster_state:ok" in str(info)


def require_tool(name: str) -> str:
    """The tool's path; fails under CI=true when missing, else skips the test (pytest)."""
    path = shutil.which(name)
    if path:
        return path
    import pytest

    message = f"{name} is not on the PATH"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")


class RedisServer:
    """A redis-server on a free loopback port, or three forming a Redis Cluster."""

    def __init__(self, cluster: bool = False) -> None:
        require_tool("redis-server")
        self.cluster = cluster
        self.dir = tempfile.TemporaryDirectory(prefix="jobqueue-redis-")
        self.ports = [_free_port(cluster) for _ in range(3 if cluster else 1)]
        self.procs: list[subprocess.Popen[bytes]] = []
        for port in self.ports:
            args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", self.dir.name]
            if cluster:
                args += ["--cluster-enabled", "yes",
                         "--cluster-config-file", f"nodes-{port}.conf"]
            self.procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))
        for port in self.ports:
            node = redis.Redis(port=port)
            eventually(f"redis-server on port {port}", node.ping, timeout=20)
            node.close()
        if cluster:
            self._form_cluster()

    def _form_cluster(self) -> None:
        cli = require_tool("redis-cli")
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run([cli, "--cluster", "create", *nodes, "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, stdout=subprocess.DEVNULL)
        for port in self.ports:
            node = redis.Redis(port=port, decode_responses=True)
            eventually(f"cluster_state:ok on {port}", partial(_cluster_ok, node))
            node.close()

    @property
    def url(self) -> str:
        if self.cluster:
            return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)
        return f"redis://127.0.0.1:{self.ports[0]}"

    def client(self) -> Any:
        if self.cluster:
            return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p)  # type: ignore[no-untyped-call]
                                               for p in self.ports], decode_responses=True)
        return redis.Redis(port=self.ports[0], decode_responses=True)

    def nodes(self) -> list[redis.Redis]:
        return [redis.Redis(port=p, decode_responses=True) for p in self.ports]

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        self.dir.cleanup()


def operator_binary(repo: Path) -> str:
    """JOBQUEUE_OPERATOR_BIN, else the debug build under `repo`/target."""
    return os.environ.get("JOBQUEUE_OPERATOR_BIN") or str(
        repo / "target" / "debug" / "jobqueue-operator")


def manifest(name: str, *, visibility_timeout: str = "2s", max_deliveries: int = 3,
             backoff: tuple[str, str] | None = ("300ms", "1s"), extra: str = "") -> str:
    """A JobQueue manifest without workers (the tests run their own)."""
    text = (f"apiVersion: jobqueue.io/v1alpha1\nkind: JobQueue\nmetadata:\n  name: {name}\n"
            f"spec:\n  delivery:\n    visibilityTimeout: {visibility_timeout}\n"
            f"    maxDeliveries: {max_deliveries}\n")
    if backoff:
        text += f"    retryBackoff:\n      initial: {backoff[0]}\n      max: {backoff[1]}\n"
    return text + extra


class LocalOperator:
    """`jobqueue-operator run --local DIR --redis URL --metrics-addr off` on manifests."""

    def __init__(self, binary: str, redis_url: str, files: dict[str, str],
                 env: dict[str, str] | None = None, janitor_interval: str = "200ms") -> None:
        if not Path(binary).exists():
            raise AssertionError(f"{binary} is missing: build it with cargo build (or set "
                                 "JOBQUEUE_OPERATOR_BIN)")
        self.dir = tempfile.TemporaryDirectory(prefix="jobqueue-local-")
        for name, text in files.items():
            Path(self.dir.name, name).write_text(text)
        self.lines: list[str] = []
        proc_env = {k: v for k, v in os.environ.items() if k not in _operator_env(binary)}
        proc_env.update(env or {})
        proc_env["RUST_LOG"] = "warn"
        self.proc = subprocess.Popen(
            [binary, "run", "--local", self.dir.name, "--redis", redis_url,
             "--metrics-addr", "off", "--janitor-interval", janitor_interval],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=proc_env, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_serving(self, queue: str, stream: str, client: Any) -> None:
        """Waits for the operator to say it serves `queue` (ns/name), then polls Redis until
        the consumer group exists and the function library answers."""
        self.wait_line(f"JobQueue {queue}: serving")

        def provisioned() -> bool:
            groups = client.xinfo_groups(stream)
            return bool(groups) and int(client.fcall_ro("jobqueue_version", 0)) >= 1

        eventually(f"the stream, group and library of {queue}", provisioned)

    def wait_line(self, prefix: str) -> str:
        """Waits for an output line starting with `prefix`; fails with the output so far."""
        found: list[str] = []

        def seen() -> bool:
            found.extend(line for line in self.lines if line.startswith(prefix))
            return bool(found)

        try:
            eventually(f"a line starting with {prefix!r}", seen)
        except AssertionError as e:
            raise AssertionError(f"{e}; output:\n{self.output()}") from None
        return found[0]

    def write(self, name: str, text: str) -> None:
        tmp = Path(self.dir.name, f".{name}.tmp")
        tmp.write_text(text)
        tmp.rename(Path(self.dir.name, name))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.dir.cleanup()


_ENV_CACHE: dict[str, set[str]] = {}


def _operator_env(binary: str) -> set[str]:
    """The variables `run` reads (from its --help), so a developer's REDIS_URL or
    METRICS_ADDR cannot change what a test runs."""
    if binary not in _ENV_CACHE:
        out = subprocess.run([binary, "run", "--help"], capture_output=True, text=True).stdout
        _ENV_CACHE[binary] = set(re.findall(r"\[env: ([A-Z_]+)", out))
    return _ENV_CACHE[binary]
