"""A large export with events while Cassandra is frozen (SIGSTOP) past the lease.

The data goes the real way (``produce`` -> ``segflow consume`` -> Cassandra): the world's
command mix over its segments, plus a bulk segment of many feed adds and removals whose
export is the subject. ``segflow serve`` (one worker, a lease of a few seconds) starts the
export; as soon as it runs, the Cassandra JVM is stopped for several leases, then thawed.

What must hold besides I1-I6 (``world.checks``):

* the job ends READY with exactly the reference model's rows (every profile, its attributes,
  every add/remove event with its command id), or FAILED with a reason that names no host or
  path; a FAILED export is requested again and that one must be READY and exact;
* never a half file: every 200 seen while polling during and after the fault is the whole,
  exact file, every ``.json.gz`` left in the export directory is complete, and no temporary
  file is left once the job ended.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from segflow.contract.records import CommandRecord
from tests.chaos.harness import ChaosWorld, Figures, Workload
from tests.support.consumer_harness import command
from tests.support.export_server import Reply, call
from tests.support.reference_model import effective_state

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

KEY = "chaos-export-key"
BULK_USERS = 30_000
LEASE_S = 3.0
FROZEN_S = 15.0  # five leases, and longer than the driver's 10 s request timeout


def _bulk(world: ChaosWorld, segment: str, users: int) -> Workload:
    """Feed adds of ``users`` users (data bags on a third), every tenth removed again."""
    execution_id = world.execution("bulk")
    base = int((time.time() - 3600) * 1_000_000)
    records: list[tuple[int, CommandRecord | bytes]] = []
    for i in range(users):
        add = command(execution_id, "FEED_ADD", base + i, f"user_id:{world.token}b{i}", [segment])
        add["data_bag"] = json.dumps({"n": i}) if i % 3 == 0 else None
        records.append((len(records), add))
    for i in range(0, users, 10):
        user = f"user_id:{world.token}b{i}"
        records.append(
            (len(records), command(execution_id, "FEED_REMOVE", base + users + i, user, [segment]))
        )
    return Workload(execution_id, records, set())


def _expected(workload: Workload, segment: str) -> dict[str, Any]:
    """The export the model predicts: profile -> (via, data_bag.n, {(event type, command id)})."""
    commands = [r for _, r in workload.records if isinstance(r, dict)]
    members = effective_state(commands, int(time.time() * 1000)).get(segment, {})
    events: dict[str, set[tuple[str, str]]] = {}
    for record in commands:
        kind = {"FEED_ADD": "add", "FEED_REMOVE": "remove"}[record["operation"]]
        events.setdefault(str(record["user_key"]), set()).add((kind, record["command_id"]))
    out: dict[str, Any] = {}
    for user, seen in events.items():
        member = members.get(user)
        bag = json.loads(member.data_bag) if member and member.data_bag else {}
        out[user] = (member.via if member else None, bag.get("n"), seen)
    return out


def _actual(data: dict[str, Any], segment: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for user, entry in data.items():
        section = entry["sections"][segment]
        attributes = section["attributes"]
        via = attributes.get("membership.via", {}).get("value")
        bag = attributes.get("data_bag.n", {}).get("value")
        seen = {(e["typeId"], e["correlationId"]) for e in section.get("events", [])}
        out[user] = (via, bag, seen)
    return out


def _wait_status(url: str, export_id: str, wanted: set[str], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            reply = call("GET", f"{url}/v1/exports/{export_id}/status", KEY)
            if reply.status == 200 and reply.json()["status"] in wanted:
                job: dict[str, Any] = reply.json()
                return job
        except OSError:
            pass
        assert time.monotonic() < deadline, f"export {export_id} never reached {wanted}"
        time.sleep(0.05)


class Downloader:
    """Polls the export's URL in a thread during and after the fault; keeps every 200 body."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.bodies: list[bytes] = []
        self.statuses: dict[int, int] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                reply = call("GET", self.url, KEY)
            except OSError:
                self.errors += 1
                continue
            self.statuses[reply.status] = self.statuses.get(reply.status, 0) + 1
            if reply.status == 200:
                self.bodies.append(reply.body)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)


def test_large_export_with_events_while_cassandra_frozen_past_the_lease(
    world: ChaosWorld, tmp_path: Path
) -> None:
    bulk_segment = f"chaos-{world.tag}-bulk"
    world.registry.create(bulk_segment, bucket_count=16)
    world.consumer()
    world.produce(world.workload(2000, poison_every=200))
    bulk = _bulk(world, bulk_segment, BULK_USERS)
    world.produce(bulk)
    world.wait_landed(900)
    expected = _expected(bulk, bulk_segment)

    export_dir = tmp_path / "exports"
    serve, url = world.serve(
        SEGFLOW_SERVE__API_KEYS=KEY,
        SEGFLOW_SERVE__EXPORT_DIR=str(export_dir),
        SEGFLOW_SERVE__WORKERS="1",
        SEGFLOW_SERVE__LEASE_S=str(LEASE_S),
        SEGFLOW_SERVE__SCAN_INTERVAL_S="0.2",
        SEGFLOW_SERVE__PAGE_SIZE="200",
    )
    now = time.time()
    request = {
        "segment_filter": bulk_segment,
        "attributes": ["membership.via", "data_bag.n"],
        "events": ["add", "remove"],
        "start_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 2 * 3600)),
        "end_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
    }

    def post() -> str:
        reply: Reply = call("POST", f"{url}/v1/exports", KEY, request)
        assert reply.status == 201, reply.body
        export_id: str = reply.json()["export_id"]
        return export_id

    export_id = post()
    _wait_status(url, export_id, {"RUNNING"}, 60)
    downloader = Downloader(f"{url}/v1/exports/{export_id}")
    world.nodes.freeze("cassandra")
    frozen_at = time.monotonic()
    try:
        time.sleep(FROZEN_S)
    finally:
        world.nodes.thaw("cassandra")
    world.fault_over()
    thawed_at = time.monotonic()
    first = _wait_status(url, export_id, {"READY", "FAILED"}, 600)
    final, retried = first, None
    if first["status"] == "FAILED":
        retried = post()
        final = _wait_status(url, retried, {"READY", "FAILED"}, 600)
    ready_s = time.monotonic() - thawed_at
    downloaded = call("GET", f"{url}/v1/exports/{retried or export_id}", KEY)
    time.sleep(1.0)  # a last poll or two after the end
    downloader.stop()
    serve.term()
    serve.wait(60)

    def check(figures: Figures) -> None:
        violations = figures.violations
        figures.fault = (
            f"Cassandra SIGSTOP {FROZEN_S:.0f}s mid-export (lease {LEASE_S:.0f}s, "
            f"{len(expected)} profiles): {first['status']} after {first['attempts']} attempts"
            + (f", retried -> {final['status']}" if retried else "")
        )
        figures.recovery_s = max(figures.recovery_s, ready_s)
        if first["status"] == "FAILED":
            error = str(first["error"] or "")
            if not error or "/" in error or "Errno" in error or "127.0.0.1" in error:
                violations.append(f"export FAILED without a clear, clean reason: {error!r}")
        if final["status"] != "READY" or downloaded.status != 200:
            violations.append(f"export ended {final['status']} (download {downloaded.status})")
            figures.lost += len(expected)
            return
        actual = _actual(json.loads(downloaded.body), bulk_segment)
        missing = set(expected) - set(actual)
        figures.lost += len(missing)
        differing = sum(1 for user in set(actual) if actual[user] != expected.get(user))
        figures.divergent += differing
        if missing or differing:
            violations.append(
                f"export: {len(missing)} profiles missing, {differing} differ from the model"
            )
        if final["profiles"] != len(expected):
            violations.append(f"export status counts {final['profiles']} profiles")
        torn = sum(1 for body in downloader.bodies if body != downloaded.body)
        if torn:
            violations.append(f"{torn} of {len(downloader.bodies)} downloads were not the file")
        for path in export_dir.iterdir():
            if path.name.endswith(".json.gz"):
                try:
                    json.loads(gzip.decompress(path.read_bytes()))
                except (OSError, EOFError, ValueError):
                    violations.append(f"a half file in the export directory: {path.name}")
            elif not path.name.startswith("."):
                violations.append(f"a temporary file left behind: {path.name}")
        bad = {s: n for s, n in downloader.statuses.items() if s not in (200, 404, 503)}
        if bad:
            violations.append(f"polls answered {bad} during or after the fault")
        print(
            f"\nexport: frozen {thawed_at - frozen_at:.1f}s, {first['status']} "
            f"(attempts {first['attempts']}), final {final['status']} {ready_s:.1f}s after "
            f"the thaw; polls {downloader.statuses}, {downloader.errors} refused; "
            f"{len(expected)} profiles, {len(downloaded.body)} bytes",
            flush=True,
        )

    world.checks.append(check)
    world.verify("Cassandra SIGSTOP mid-export", timeout_s=600)
