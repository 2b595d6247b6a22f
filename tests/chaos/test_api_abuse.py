"""Abuse of ``segflow serve``'s export API: huge bodies, a burst of one key, absurd dates.

Each scenario runs the real ``segflow serve`` process (``world.serve``) and prints the
harness's one line (``Figures``: ``commands`` = requests sent, ``divergent`` = answers that
broke a rule, ``duplicate_applies`` = jobs created past the key's limit, ``recovery_s`` =
the slowest answer), then the invariant I6 holds on its log (no API key, no user key).

* A multi-GB body streamed from a generator (never held in memory, by the client either):
  unauthenticated with and without a Content-Length, and authenticated over the body limit.
  Answered 401 / 413 while the client is still sending, and the server's RSS, sampled every
  20 ms, stays flat.
* 20 concurrent POSTs with one key, three rounds: never more jobs than
  ``max_pending_per_key``, read back from Cassandra (``export_jobs_by_key``); every refusal a
  429 (or 503) with Retry-After.
* Absurd dates and malformed bodies: 400 naming the field, never a 500 and never a dropped
  connection; the server stays healthy.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from http_api.export.auth import key_id
from http_api.export.jobs import ExportJobStore
from tests.chaos.harness import RESULTS, ChaosWorld, Figures, format_line
from tests.support.export_server import call

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

KEY = "chaos-abuse-key"
GIB = 1 << 30
MIB = 1 << 20


def _finish(world: ChaosWorld, figures: Figures) -> None:
    """I6 on the serve log, then the scenario's line; fail on any violation."""
    token = KEY.lower()
    for path in sorted(world.log_dir.glob("*.log")):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if token in line.lower() or world.token in line.lower():
                figures.violations.append(f"I6 {path.name}:{number} quotes a key: {line[:200]}")
                break
    figures.wall_s = time.monotonic() - world.started
    RESULTS.append(figures)
    print("\n" + format_line(figures), flush=True)
    assert not figures.violations, "\n".join(figures.violations)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """The process's peak RSS while the block runs (sampled every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = _rss_mib(pid)
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, _rss_mib(self.pid))


def _body(total: int, chunk: int = MIB) -> Iterator[bytes]:
    """``total`` bytes of JSON-ish filler, one reused chunk at a time."""
    block = b"[" + b" " * (chunk - 1)
    sent = 0
    while sent < total:
        yield block
        sent += len(block)


@dataclass
class Served:
    """One ``segflow serve`` of a scenario, with an API key of its own."""

    pid: int
    url: str
    key: str


def _serve(world: ChaosWorld, tmp_path: Path, workers: int = 0) -> Served:
    key = f"{KEY}-{world.tag}"  # jobs of earlier scenarios (same keyspace) are another key's
    proc, url = world.serve(
        SEGFLOW_SERVE__API_KEYS=key,
        SEGFLOW_SERVE__EXPORT_DIR=str(tmp_path / "exports"),
        SEGFLOW_SERVE__WORKERS=str(workers),
        SEGFLOW_SERVE__SCAN_INTERVAL_S="0.2",
    )
    deadline = time.monotonic() + 60
    while call("GET", f"{url}/readyz").status != 200:
        assert time.monotonic() < deadline, "segflow serve never ready"
        time.sleep(0.2)
    return Served(proc.pid, url, key)


@dataclass
class Streamed:
    """What one streamed request saw."""

    status: int
    seconds: float  # until the status line came back
    before: int  # body bytes sent by then
    after: int  # body bytes the server still took after answering (at most AFTER_ANSWER)
    closed: bool  # the server closed the connection before AFTER_ANSWER more was sent


AFTER_ANSWER = GIB


def _stream(url: str, head: str, total: int, chunked: bool) -> Streamed:
    """Send ``head``, then up to ``total`` body bytes from a generator while reading the
    answer; after the answer, keep sending (up to ``AFTER_ANSWER``) to see whether the server
    closes the connection or keeps draining."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    sent = 0
    answered_at: list[int] = []
    closed = threading.Event()

    def pump() -> None:
        nonlocal sent
        try:
            sock.sendall(head.encode())
            for chunk in _body(total):
                if answered_at and sent - answered_at[0] >= AFTER_ANSWER:
                    return
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                sent += len(chunk)
        except OSError:
            closed.set()

    begin = time.monotonic()
    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        status_line = sock.makefile("rb").readline()
        took = time.monotonic() - begin
        answered_at.append(sent)
        thread.join(60)
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        thread.join(30)
    status = int(status_line.split()[1]) if status_line else 0
    return Streamed(status, took, answered_at[0], sent - answered_at[0], closed.is_set())


@pytest.mark.chaos_ci
def test_multi_gb_bodies_are_refused_while_streaming_and_rss_stays_flat(
    world: ChaosWorld, tmp_path: Path
) -> None:
    served = _serve(world, tmp_path)
    pid, url, key = served.pid, served.url, served.key
    figures = Figures(world.name, "4 GiB bodies streamed at POST /v1/exports", 0)
    base = "POST /v1/exports HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    cases = [
        ("unauthenticated, Content-Length 4 GiB", f"Content-Length: {4 * GIB}\r\n", False, 401),
        ("unauthenticated, chunked", "Transfer-Encoding: chunked\r\n", True, 401),
        ("wrong key, chunked", "Transfer-Encoding: chunked\r\nx-api-key: nope\r\n", True, 401),
        (
            "valid key, Content-Length 4 GiB",
            f"Content-Length: {4 * GIB}\r\nx-api-key: {key}\r\n",
            False,
            413,
        ),
        ("valid key, chunked", f"Transfer-Encoding: chunked\r\nx-api-key: {key}\r\n", True, 413),
    ]
    details = []
    with RssSampler(pid) as rss:
        for label, headers, chunked, wanted in cases:
            seen = _stream(url, base + headers + "\r\n", 4 * GIB, chunked)
            figures.commands += 1
            figures.recovery_s = max(figures.recovery_s, seen.seconds)
            details.append(
                f"{label}: {seen.status} in {seen.seconds * 1000:.0f} ms after "
                f"{seen.before / MIB:.1f} MiB, then "
                + (
                    f"closed after {seen.after / MIB:.1f} MiB"
                    if seen.closed
                    else f"drained {seen.after / MIB:.0f} MiB"
                )
            )
            if seen.status != wanted:
                figures.divergent += 1
                figures.violations.append(f"{label}: answered {seen.status}, not {wanted}")
            if seen.seconds > 5:
                figures.violations.append(f"{label}: answered after {seen.seconds:.1f} s")
            if not seen.closed or seen.after > 64 * MIB:
                figures.violations.append(
                    f"{label}: the server read {seen.after / MIB:.0f} MiB more after answering"
                    + ("" if seen.closed else " and kept the connection open")
                )
            if seen.before > 256 * MIB:
                figures.violations.append(
                    f"{label}: {seen.before / MIB:.0f} MiB sent before the answer"
                )
    grown = rss.peak - rss.before
    print(f"\nRSS {rss.before:.0f} MiB -> peak {rss.peak:.0f} MiB\n  " + "\n  ".join(details))
    if grown > 32:
        figures.violations.append(f"serve's RSS grew {grown:.0f} MiB (peak {rss.peak:.0f})")
    assert call("GET", f"{url}/healthz").status == 200
    figures.fault += f" (RSS +{grown:.0f} MiB)"
    _finish(world, figures)


@pytest.mark.chaos_ci
def test_twenty_concurrent_posts_of_one_key_never_pass_its_limit(
    world: ChaosWorld, tmp_path: Path
) -> None:
    served = _serve(world, tmp_path)
    url, key = served.url, served.key
    store = ExportJobStore(world.session)
    limit = 5  # serve.max_pending_per_key's default
    figures = Figures(world.name, "20 concurrent POSTs of one key x 3 rounds", 0)
    body = {"attributes": ["email"]}
    created = 0
    for _round in range(3):
        with ThreadPoolExecutor(20) as pool:
            replies = list(
                pool.map(lambda _i: call("POST", f"{url}/v1/exports", key, body), range(20))
            )
        figures.commands += len(replies)
        created += sum(1 for r in replies if r.status == 201)
        for reply in replies:
            if reply.status == 201:
                continue
            if reply.status not in (429, 503) or not reply.headers.get("retry-after"):
                figures.divergent += 1
                figures.violations.append(
                    f"a refused POST answered {reply.status} without Retry-After: {reply.body!r}"
                )
    jobs = [job for job in store.of_key(key_id(key)) if job.open]
    figures.duplicates = max(0, len(jobs) - limit)
    if len(jobs) != limit or created != limit:
        figures.violations.append(
            f"{created} POSTs answered 201 and {len(jobs)} jobs queued in Cassandra; the "
            f"limit is {limit}"
        )
    figures.fault += f" ({created} created)"
    _finish(world, figures)


ABSURD: list[tuple[str, dict[str, object]]] = [
    ("start_at", {"start_at": "9999-12-31T23:59:59Z"}),  # the default 7-day window: past 9999
    ("start_at", {"start_at": "9999-12-31T23:59:59-23:59"}),  # year 10000 in UTC
    ("start_at", {"start_at": "0001-01-01T00:00:00+23:59"}),  # before year 1 in UTC
    ("end_at", {"start_at": "0001-01-01T00:00:00Z", "end_at": "0000-12-31T00:00:00Z"}),
    ("start_at", {"start_at": "10000-01-01T00:00:00Z"}),
    ("start_at", {"start_at": "+275760-09-13T00:00:00Z"}),
    ("start_at", {"start_at": "-0001-01-01T00:00:00Z"}),
    ("start_at", {"start_at": "2026-02-30T00:00:00Z"}),
    ("start_at", {"start_at": "2026-13-01T00:00:00Z"}),
    ("start_at", {"start_at": "2026-01-01T25:61:61Z"}),
    ("start_at", {"start_at": 1e308}),
    ("start_at", {"start_at": -(2**63)}),
    ("start_at", {"start_at": 253_402_300_800_000}),
    ("start_at", {"start_at": "NaN"}),
    ("start_at", {"start_at": "x" * 100_000}),
    ("start_at", {"start_at": ["2026-01-01"]}),
    ("start_at", {"start_at": {"$date": "2026-01-01"}}),
    ("end_at", {"start_at": "2026-01-02T00:00:00Z", "end_at": "2026-01-01T00:00:00Z"}),
    ("end_at", {"start_at": "2026-01-01T00:00:00Z", "end_at": "2126-01-01T00:00:00Z"}),
    ("start_at", {"end_at": "2026-01-01T00:00:00Z"}),  # events need a start
]
RAW: list[bytes] = [
    b'{"attributes": ["email"], "start_at": "2026-01-01T00:00:00Z"',  # cut off
    b"[" * 100_000,  # nesting
    b'{"attributes": ["email"], "events": ["add"], "start_at": 1' + b"0" * 5000 + b"}",
    b'{"attributes": ["email"], "events": ["add"], "start_at": -1' + b"0" * 40 + b"}",
]
# Extreme but valid: the last days of the calendar. Accepted, and built READY.
EDGE: list[dict[str, object]] = [
    {"start_at": "9999-12-30T00:00:00Z", "end_at": "9999-12-31T23:59:59.999999Z"},
    {"start_at": "0001-01-01T00:00:00Z", "end_at": "0001-01-02T00:00:00Z"},
]


@pytest.mark.chaos_ci
def test_absurd_dates_are_400_never_500(world: ChaosWorld, tmp_path: Path) -> None:
    served = _serve(world, tmp_path, workers=1)
    url, key = served.url, served.key
    figures = Figures(world.name, f"{len(ABSURD) + len(RAW)} absurd dates and bodies", 0)
    requests: list[tuple[str | None, int, bytes | dict[str, object]]] = [
        (field, 400, {"attributes": ["email"], "events": ["add"], **extra})
        for field, extra in ABSURD
    ]
    requests += [(None, 400, body) for body in RAW]
    edge = {"segment_filter": world.segments[0], "attributes": ["email"], "events": ["add"]}
    requests += [(None, 201, {**edge, **e}) for e in EDGE]
    accepted: list[str] = []
    for field, wanted, body in requests:
        begin = time.monotonic()
        try:
            reply = call("POST", f"{url}/v1/exports", key, body)
        except OSError as exc:
            figures.divergent += 1
            figures.violations.append(f"{str(body)[:80]}: connection failed ({exc})")
            continue
        figures.commands += 1
        figures.recovery_s = max(figures.recovery_s, time.monotonic() - begin)
        named = reply.json().get("field") if reply.status == 400 else None
        if reply.status != wanted or (field is not None and named != field):
            figures.divergent += 1
            figures.violations.append(
                f"{str(body)[:80]}: {reply.status} field={named!r}, wanted {wanted} on {field}"
            )
        elif wanted == 201:
            accepted.append(reply.json()["export_id"])
    for export_id in accepted:  # the calendar's edges are built, not failed
        deadline = time.monotonic() + 120
        while True:
            status = call("GET", f"{url}/v1/exports/{export_id}/status", key).json()
            if status["status"] in ("READY", "FAILED") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if status["status"] != "READY":
            figures.divergent += 1
            figures.violations.append(
                f"an export at the calendar's edge ended {status['status']}: {status['error']}"
            )
    if call("GET", f"{url}/healthz").status != 200:
        figures.violations.append("serve unhealthy after the absurd dates")
    figures.fault += f" + {len(EDGE)} at the calendar's edges built"
    _finish(world, figures)
