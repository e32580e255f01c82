"""The trivial job of the RQ throughput comparison (benches/throughput.rs): does nothing."""


def noop() -> None:
    return None
