"""Every scenario against every client adapter, and the cross-language scenarios against
rotations of the adapters that exist (each adapter plays producer, worker and reader once).

A missing adapter is skipped with the reason, except under CI=true, where it fails."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ADAPTERS, REPO, Adapter, Run, load, manifest, scenario_names

from jobqueue.testing import LocalOperator, RedisServer, operator_binary

_counter = itertools.count()


def _params() -> list[object]:
    out: list[object] = []
    ready = [a for a in ADAPTERS if a.missing is None]
    for name in scenario_names():
        if load(name).get("cross_language"):
            n = len(ready)
            for i in range(n):
                trio = (ready[i], ready[(i + 1) % n], ready[(i + 2) % n])
                out.append(pytest.param(name, trio, id=f"{name}[{'-'.join(a.lang for a in trio)}]"))
        else:
            for a in ADAPTERS:
                out.append(pytest.param(name, (a, a, a), id=f"{name}[{a.lang}]"))
    return out


@pytest.fixture(scope="session")
def backend() -> Iterator[tuple[RedisServer, LocalOperator]]:
    server = RedisServer()
    op = LocalOperator(operator_binary(REPO), server.url, {})
    yield server, op
    op.stop()
    server.stop()


def _requires(adapters: tuple[Adapter, ...]) -> None:
    for a in adapters:
        if a.missing is not None:
            if os.environ.get("CI") == "true" and a.argv:
                pytest.fail(f"{a.lang} adapter: {a.missing}")
            pytest.skip(f"{a.lang} adapter: {a.missing}")


@pytest.mark.parametrize(("scenario", "adapters"), _params())
def test_scenario(scenario: str, adapters: tuple[Adapter, Adapter, Adapter],
                  backend: tuple[RedisServer, LocalOperator], tmp_path: Path) -> None:
    _requires(adapters)
    server, op = backend
    spec = load(scenario)
    name = f"c{next(_counter)}-{scenario.replace('_', '-')}"[:50]
    op.write(f"{name}.json", manifest(name, spec["queue"]))
    stream = f"jobqueue:{{default/{name}}}"
    client = server.client()
    op.wait_serving(f"default/{name}", stream, client)
    roles = dict(zip(("producer", "worker", "reader"), adapters, strict=True))
    run = Run(roles, server.url, stream, tmp_path / "log.jsonl", client)
    try:
        for step in spec["steps"]:
            run.step(step)
    finally:
        run.close()
        client.close()
