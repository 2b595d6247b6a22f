"""``segflow demo``: the main job end to end on the configured (by default local) stack.

Migrates, creates the topics and the example segments, starts a consumer, uploads one
example file of every format with ``--wait``, then prints the members of every segment, one
user's segments, an export of the Segmenter segment (the export API's file format) and the
consumer's metrics URL before stopping the consumer cleanly. Running
it again is harmless: executions of unchanged files are reused, nothing is applied twice.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from segflow.cli_flags import SettingFlags, settings_from
from segflow.errors import SegflowError
from segflow.settings import ConsumeSettings

EXAMPLES = Path(__file__).resolve().parent.parent / "producer_tools" / "examples"
SEGMENTS = (
    ("seg-newsletter", "newsletter_fr", "Newsletter FR"),
    ("seg-vip", None, "VIP customers"),
    ("seg-high", "high_value", "High value"),
    ("4242", None, "Village power users"),
)
FILES = (
    "mediarithmics_segments.csv",
    "mediarithmics_segments.ndjson",
    "village_overrides.ndjson",
    "segmenter_segment.json",
)
DEMO_USER = "account:1000:acc-003"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``segflow demo``."""
    demo = subparsers.add_parser("demo", help="run the whole pipeline on the example files")
    SettingFlags(demo, ConsumeSettings).field("consumer.http_port", "--metrics-port")
    demo.set_defaults(handler=_demo)


def _segflow(*args: str, env: dict[str, str] | None = None) -> None:
    print(f"\n$ segflow {' '.join(args)}", flush=True)
    code = subprocess.call([sys.executable, "-m", "segflow.cli", *args], env=env)
    if code != 0:
        raise SegflowError(f"`segflow {' '.join(args)}` exited with {code}")


def _demo(args: argparse.Namespace) -> int:
    state = Path(".segflow/demo")
    state.mkdir(parents=True, exist_ok=True)
    _segflow("db", "migrate")
    _segflow("topics", "create")
    for segment_id, technical_name, name in SEGMENTS:
        extra = ["--technical-name", technical_name] if technical_name else []
        _segflow("segments", "create", segment_id, "--name", name, "--buckets", "64", *extra)

    port = settings_from(args, ConsumeSettings).consumer.http_port or 9400
    env = {**os.environ, "SEGFLOW_CONSUMER__HTTP_PORT": str(port)}
    log_path = state / "consumer.log"
    print(f"\n$ segflow consume   # in the background, log: {log_path}", flush=True)
    with log_path.open("ab") as log:
        consumer = subprocess.Popen(
            [sys.executable, "-m", "segflow.cli", "consume"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        _wait_ready(f"http://127.0.0.1:{port}/readyz", consumer)
        for name in FILES:
            _segflow(
                "upload",
                "--wait",
                "--timeout",
                "120",
                "--max-errors",
                "1",
                "--rejects",
                str(state),
                str(EXAMPLES / name),
            )
        for segment_id, _, _ in (*SEGMENTS, ("seg-loyalty", None, None)):
            _segflow("members", segment_id)
        _segflow("user", DEMO_USER)
        export_path = state / "seg-loyalty.export.json"
        _segflow(
            "export",
            "seg-loyalty",
            "--attributes",
            "first_name,email,substitution.tier,membership.via",
            "--tags",
            ",".join(segment_id for segment_id, _, _ in SEGMENTS),
            "--out",
            str(export_path),
        )
        print(export_path.read_text()[:600])
        print(f"\nconsumer metrics: {metrics_url}")
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(
                    (
                        "segflow_consumer_commands_applied_total",
                        "segflow_consumer_dead_lettered_total",
                        "segflow_consumer_cassandra_writes_total",
                    )
                ):
                    print(f"  {line}")
        print(f"rejected lines of the examples (one is deliberate): {state}/*.rejects.ndjson")
    finally:
        consumer.terminate()
        consumer.wait(60)
    return 0


def _wait_ready(url: str, consumer: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if consumer.poll() is not None:
            raise SegflowError("the consumer exited at startup; see .segflow/demo/consumer.log")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SegflowError(f"the consumer did not become ready ({url}) within {timeout_s:.0f}s")
