"""librdkafka's lines and errors through logging: structured, rate-limited, servers named."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from segflow.errors import ExitCode
from segflow.kafka_errors import as_unreachable
from segflow.kafka_logging import KafkaErrorReporter, LibrdkafkaLogger, RateLimiter
from segflow.logs import JsonFormatter
from segflow.settings import KafkaSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def records() -> logging.Logger:
    logger = logging.getLogger(f"test.kafka.{time.monotonic_ns()}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.stream = stream  # type: ignore[attr-defined]
    return logger


def lines(logger: logging.Logger) -> list[dict[str, object]]:
    text: str = logger.stream.getvalue()  # type: ignore[attr-defined]
    return [json.loads(line) for line in text.splitlines()]


def test_rate_limiter_admits_once_per_interval_and_counts_the_rest() -> None:
    clock = Clock()
    limiter = RateLimiter(10.0, clock)
    assert limiter.admit("a") == 0
    assert [limiter.admit("a") for _ in range(5)] == [None] * 5
    assert limiter.admit("b") == 0
    clock.now += 10.0
    assert limiter.admit("a") == 5
    assert limiter.admit("a") is None
    assert RateLimiter(0.0, clock).admit("x") == 0


def test_rate_limiter_memory_is_bounded() -> None:
    limiter = RateLimiter(10.0, Clock(), max_keys=3)
    for key in range(100):
        assert limiter.admit(key) == 0
    assert len(limiter._last) == 3


def test_194_connection_failures_in_10s_become_one_json_line(records: logging.Logger) -> None:
    clock = Clock()
    bridge = LibrdkafkaLogger("k1:9092,k2:9092", 30.0, records, clock)
    for attempt in range(194):
        clock.now += 10 / 194
        bridge.log(
            logging.ERROR,
            "%s [%s] %s",
            "FAIL",
            "rdkafka#producer-1",
            "[thrd:k1:9092/bootstrap]: k1:9092/bootstrap: Connect to ipv4#10.0.0.1:9092 "
            f"failed: Connection refused (after {attempt % 7}ms in state CONNECT)",
        )
    clock.now += 30.0
    bridge.log(
        logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connect failed after 3ms"
    )
    bridge.log(
        logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connect failed after 4ms"
    )
    got = lines(records)
    assert [line["msg"] for line in got] == [
        "k1:9092/bootstrap: Connect to ipv4#10.0.0.1:9092 failed: Connection refused "
        "(after 0ms in state CONNECT)",
        "Connect failed after 3ms",
    ]
    assert got[0]["facility"] == "FAIL"
    assert got[0]["client"] == "rdkafka#producer-1"
    assert got[0]["bootstrap_servers"] == "k1:9092,k2:9092"
    assert "suppressed" not in got[0]
    assert got[1]["level"] == "ERROR"


def test_suppressed_count_rides_on_the_next_line_of_the_same_message(
    records: logging.Logger,
) -> None:
    clock = Clock()
    bridge = LibrdkafkaLogger("k:1", 5.0, records, clock)
    for _ in range(4):
        bridge.log(logging.WARNING, "%s [%s] %s", "REQTMOUT", "c", "Timed out 1 requests")
    clock.now += 5.0
    bridge.log(logging.WARNING, "%s [%s] %s", "REQTMOUT", "c", "Timed out 9 requests")
    assert [line.get("suppressed") for line in lines(records)] == [None, 3]


def test_error_callback_names_the_servers_and_is_rate_limited(records: logging.Logger) -> None:
    clock = Clock()
    report = KafkaErrorReporter("k1:9092", 30.0, records, clock)
    for _ in range(50):
        report(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    report(KafkaError(KafkaError._MSG_TIMED_OUT, "timed out"))
    report(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "denied"))
    got = lines(records)
    assert [line["msg"] for line in got] == [
        "Kafka unreachable at k1:9092: 1/1 brokers are down",
        "Kafka unreachable at k1:9092: timed out",
        "Kafka client error: denied",
    ]
    assert got[0]["error"] == "_ALL_BROKERS_DOWN"


def test_every_client_config_routes_logs_and_errors_through_python() -> None:
    conf = KafkaSettings(bootstrap_servers="b:1", log_interval_s=3).client_config()
    assert isinstance(conf["logger"], LibrdkafkaLogger)
    assert isinstance(conf["error_cb"], KafkaErrorReporter)


def test_a_real_client_with_no_broker_prints_nothing_raw(capfd: pytest.CaptureFixture[str]) -> None:
    """librdkafka itself, pointed at a closed port: no ``%3|...`` line reaches stderr."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Collect()
    logging.getLogger("kafka").addHandler(handler)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        producer = Producer(KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}").client_config())
        with pytest.raises(KafkaException):
            producer.list_topics(timeout=2)
        producer.poll(0.5)
        producer.flush(0)
    finally:
        logging.getLogger("kafka").removeHandler(handler)
    assert "%3|" not in capfd.readouterr().err
    assert seen, "librdkafka's lines arrive as log records"
    assert len(seen) <= 5
    assert all(
        getattr(r, "fields", {}).get("bootstrap_servers") == f"127.0.0.1:{port}" for r in seen
    )


def test_kafka_timeouts_mean_exit_3() -> None:
    timed_out = as_unreachable(KafkaException(KafkaError(KafkaError._TIMED_OUT)), "k:1")
    assert timed_out is not None
    assert timed_out.exit_code == ExitCode.KAFKA_UNREACHABLE
    assert str(timed_out).startswith("Kafka unreachable at k:1: ")
    future = as_unreachable(TimeoutError(), "k:1")
    assert future is not None
    assert str(future) == "Kafka unreachable at k:1: no answer in time"
    assert as_unreachable(KafkaException(KafkaError(KafkaError.TOPIC_ALREADY_EXISTS)), "k") is None
    assert as_unreachable(ValueError("x"), "k") is None
