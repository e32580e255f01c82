"""Keys, URLs, manifests and replies: the parts that need no Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

import jobqueue
from jobqueue._common import Keys, due_arg, parse_job, parse_url, read_manifest


def test_keys_share_the_stream_slot() -> None:
    tagged = Keys("jobqueue:{shop/emails}")
    assert tagged.settings == "jobqueue:{shop/emails}:settings"
    assert tagged.job("j1") == "jobqueue:{shop/emails}:job:j1"
    assert tagged.events == "jobqueue:{shop/emails}:events"
    plain = Keys("orders")
    assert plain.settings == "{orders}:settings"
    assert Keys("a{}b").prefix == "{a{}b}"


def test_urls() -> None:
    assert not parse_url("redis://:pw@h:1/2").cluster
    assert parse_url("rediss://h:1").tls
    c = parse_url("redis+cluster://user:p%40ss@10.0.0.1:7000,10.0.0.2:7001")
    assert c.cluster and c.nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert (c.username, c.password, c.tls) == ("user", "p@ss", False)
    assert parse_url("rediss+cluster://h:1").tls
    with pytest.raises(jobqueue.ConfigError, match="scheme 'http'"):
        parse_url("http://h:1")
    with pytest.raises(jobqueue.ConfigError, match="host:port"):
        parse_url("redis+cluster://h")


def test_manifest_stream_group_and_url(tmp_path: Path) -> None:
    f = tmp_path / "q.yaml"
    f.write_text("kind: Secret\n---\napiVersion: jobqueue.io/v1alpha1\nkind: JobQueue\n"
                 "metadata: {name: emails}\nspec: {}\n")
    m = read_manifest(f)
    assert (m.stream, m.group, m.url) == ("jobqueue:{default/emails}", "workers", None)
    f.write_text("kind: JobQueue\nmetadata: {name: e, namespace: shop}\nspec:\n"
                 "  stream: mail\n  consumerGroup: senders\n  redis: {url: 'redis://r:1'}\n")
    m = read_manifest(f)
    assert (m.stream, m.group, m.url) == ("mail", "senders", "redis://r:1")
    f.write_text("kind: Secret\n")
    with pytest.raises(jobqueue.ConfigError, match="no JobQueue"):
        read_manifest(f)


def test_due_and_ids() -> None:
    assert due_arg(None, None) == "0"
    assert due_arg(1.5, None) == "+1500"
    assert due_arg(None, datetime(2030, 1, 1, tzinfo=UTC)) == "1893456000000"
    with pytest.raises(ValueError, match="not both"):
        due_arg(1, 2)
    ids = [jobqueue.new_job_id() for _ in range(100)]
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == 100


def test_parse_job_reply() -> None:
    reply = ["state", "succeeded", "attempt", "2", "result", '{"a":1}', "progress", "50",
             "error", "", "finished_at", "1700000000000", "result_dropped", "1"]
    job = parse_job("j", reply)
    assert job is not None
    assert (job.state, job.attempt, job.result, job.progress, job.error) == (
        "succeeded", 2, {"a": 1}, 50, None)
    assert job.is_final and job.result_dropped
    assert job.finished_at == datetime.fromtimestamp(1700000000, UTC)
    assert parse_job("j", None) is None
