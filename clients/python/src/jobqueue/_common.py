"""What the sync and asyncio flavours share: keys, URLs, manifests, replies, errors.

Every job operation is a call into the `jobqueue` Redis Functions library the operator loads;
this module only names keys and turns replies into Python values.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

#: The library revision this client needs (`FCALL_RO jobqueue_version 0`).
REQUIRED_REVISION = 4
FINAL_STATES = frozenset({"succeeded", "dead", "cancelled"})
DEFAULT_GROUP = "workers"
DEFAULT_VISIBILITY_TIMEOUT_MS = 300_000
MAX_HEARTBEAT_INTERVAL_S = 5.0


class JobQueueError(Exception):
    """Base class of this client's errors."""


class LibraryMissing(JobQueueError):
    """The Redis has no `jobqueue` function library (the queue was not provisioned)."""


class LibraryTooOld(JobQueueError):
    """The loaded `jobqueue` library is older than this client needs."""


class WaitTimeout(JobQueueError, TimeoutError):
    """`wait` reached its timeout before the job ended."""


class ConfigError(JobQueueError):
    """A URL, manifest or environment variable is missing or malformed."""


class PermanentFailure(Exception):
    """Raise from a handler to fail the job for good: it goes dead at once, no retry."""


def missing_library_message() -> str:
    return (
        "the jobqueue function library is not loaded: "
        "is the queue provisioned by jobqueue-operator?"
    )


def check_revision(reply: Any) -> None:
    """Raises unless `reply` (of jobqueue_version) is at least the needed revision."""
    try:
        revision = int(reply)
    except (TypeError, ValueError) as e:
        raise LibraryMissing(missing_library_message()) from e
    if revision < REQUIRED_REVISION:
        raise LibraryTooOld(
            f"the jobqueue function library is revision {revision}; this client needs "
            f"{REQUIRED_REVISION} or newer: upgrade jobqueue-operator"
        )


def is_missing_function(err: Exception) -> bool:
    text = str(err).lower()
    return "function not found" in text or "unknown command" in text


def hash_tag(key: str) -> str | None:
    """The part of `key` Redis Cluster hashes, when it has a non-empty `{...}`."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1 : end]


@dataclass(frozen=True)
class Keys:
    """The keys of one queue, named by its stream key."""

    stream: str

    @property
    def prefix(self) -> str:
        return self.stream if hash_tag(self.stream) is not None else "{" + self.stream + "}"

    @property
    def settings(self) -> str:
        return f"{self.prefix}:settings"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def three(self, job_id: str) -> list[str]:
        return [self.stream, self.settings, self.job(job_id)]


@dataclass(frozen=True)
class RedisTarget:
    """A parsed Redis URL: one node, or the seed nodes of a cluster."""

    url: str
    cluster: bool
    nodes: list[tuple[str, int]]
    password: str | None
    username: str | None
    tls: bool


def parse_url(url: str) -> RedisTarget:
    """Accepts redis://, rediss://, redis+cluster:// and rediss+cluster:// URLs."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in ("redis", "rediss"):
        return RedisTarget(url, False, [], None, None, scheme == "rediss")
    if scheme not in ("redis+cluster", "rediss+cluster"):
        raise ConfigError(
            f"Redis URL scheme {scheme!r} is not supported: use redis://, rediss:// or "
            "redis+cluster://host:port[,host:port...]"
        )
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        auth, netloc = netloc.rsplit("@", 1)
        user, _, pw = auth.partition(":")
        username = unquote(user) or None
        password = unquote(pw) or None
    nodes: list[tuple[str, int]] = []
    for seed in netloc.split(","):
        host, _, port = seed.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"Redis Cluster seed {seed!r} must be host:port")
        nodes.append((host.strip("[]"), int(port)))
    return RedisTarget(url, True, nodes, password, username, scheme == "rediss+cluster")


@dataclass(frozen=True)
class ManifestQueue:
    """What a JobQueue manifest tells a client: the stream, the group and maybe a URL."""

    stream: str
    group: str
    url: str | None


def read_manifest(path: str | os.PathLike[str]) -> ManifestQueue:
    """The first JobQueue in a manifest file (YAML or JSON, one or more documents)."""
    text = Path(path).read_text()
    for doc in yaml.safe_load_all(text):
        if not isinstance(doc, dict) or doc.get("kind") != "JobQueue":
            continue
        meta = doc.get("metadata") or {}
        spec = doc.get("spec") or {}
        name = meta.get("name")
        if not name:
            raise ConfigError(f"{path}: JobQueue without metadata.name")
        namespace = meta.get("namespace") or "default"
        stream = spec.get("stream") or f"jobqueue:{{{namespace}/{name}}}"
        group = spec.get("consumerGroup") or DEFAULT_GROUP
        url = (spec.get("redis") or {}).get("url")
        return ManifestQueue(str(stream), str(group), str(url) if url else None)
    raise ConfigError(f"{path}: no JobQueue (apiVersion jobqueue.io/v1alpha1) in it")


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name) or default
    if not value:
        raise ConfigError(f"environment variable {name} is not set")
    return value


def default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def new_job_id() -> str:
    """A UUID v7 (time-ordered), as every client and the operator make them."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68) << 64  # 12 bits rand_a
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def due_arg(delay: float | None, at: datetime | float | None) -> str:
    """The enqueue `due` argument: 0, +ms (Redis clock) for a delay, or unix ms for `at`."""
    if delay is not None and at is not None:
        raise ValueError("give delay or at, not both")
    if delay is not None:
        if delay < 0:
            raise ValueError(f"delay must not be negative; got {delay}")
        return f"+{round(delay * 1000)}"
    if at is not None:
        seconds = at.timestamp() if isinstance(at, datetime) else float(at)
        return str(round(seconds * 1000))
    return "0"


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _json(raw: str | None) -> Any:
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromtimestamp(int(raw) / 1000, UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class Job:
    """A job's record, as `get_job` reads it."""

    id: str
    state: str
    attempt: int
    progress: Any = None
    result: Any = None
    error: str | None = None
    result_dropped: bool = False
    cancel_requested: bool = False
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    due: datetime | None = None
    consumer: str | None = None
    derived: bool = False
    fields: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        """The conformance adapters' JSON shape."""
        return {
            "id": self.id,
            "state": self.state,
            "attempt": self.attempt,
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
        }


def parse_job(job_id: str, reply: Any) -> Job | None:
    """A `jobqueue_get` reply (flat field list, or nil) as a Job."""
    if not reply:
        return None
    items = [text(v) for v in reply]
    f = dict(zip(items[0::2], items[1::2], strict=False))
    return Job(
        id=job_id,
        state=f.get("state", "unknown"),
        attempt=int(f.get("attempt") or 1),
        progress=_json(f.get("progress")),
        result=_json(f.get("result")),
        error=f.get("error") or None,
        result_dropped=f.get("result_dropped") == "1",
        cancel_requested=f.get("cancel_requested") == "1",
        enqueued_at=_time(f.get("enqueued_at")),
        started_at=_time(f.get("started_at")),
        finished_at=_time(f.get("finished_at")),
        updated_at=_time(f.get("updated_at")),
        due=_time(f.get("due")),
        consumer=f.get("consumer") or None,
        derived=f.get("derived") == "1",
        fields=f,
    )


def heartbeat_interval(settings_vt: Any) -> float:
    """Seconds between heartbeats: half the visibility timeout, at most 5 s."""
    try:
        vt_ms = int(text(settings_vt)) if settings_vt is not None else DEFAULT_VISIBILITY_TIMEOUT_MS
    except ValueError:
        vt_ms = DEFAULT_VISIBILITY_TIMEOUT_MS
    return max(0.05, min(vt_ms / 2000, MAX_HEARTBEAT_INTERVAL_S))


@dataclass
class Delivery:
    """One stream entry handed to this worker."""

    entry: str
    fields: dict[str, str]

    @property
    def job_id(self) -> str:
        return self.fields.get("id") or self.entry

    @property
    def attempt(self) -> int:
        try:
            return int(self.fields.get("attempt") or 1)
        except ValueError:
            return 1


def parse_entries(reply: Any) -> list[Delivery]:
    """`[[entry id, [field, value, ...]], ...]` (take) as deliveries."""
    out: list[Delivery] = []
    for item in reply or []:
        entry, flat = item[0], item[1]
        if isinstance(flat, dict):
            fields = {text(k): text(v) for k, v in flat.items()}
        else:
            values = [text(v) for v in flat or []]
            fields = dict(zip(values[0::2], values[1::2], strict=False))
        out.append(Delivery(text(entry), fields))
    return out


def parse_xread(reply: Any) -> list[Delivery]:
    """An XREADGROUP/XREAD reply as redis-py gives it (`[[stream, [(entry, {..}), ...]]]`)."""
    out: list[Delivery] = []
    for _name, entries in reply or []:
        for entry, fields in entries or []:
            out.append(Delivery(text(entry), {text(k): text(v) for k, v in (fields or {}).items()}))
    return out


def payload_of(delivery: Delivery) -> Any:
    raw = delivery.fields.get("payload")
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def scheduled_fields(delivery: Delivery) -> tuple[str | None, datetime | None]:
    schedule = delivery.fields.get("schedule")
    at = delivery.fields.get("scheduled_for") or delivery.fields.get("scheduled_at")
    return schedule, _time(at)


def error_text(exc: BaseException) -> str:
    message = str(exc)
    return message if message else type(exc).__name__


def result_json(result: Any) -> str:
    return json.dumps(result, separators=(",", ":"), default=str)
