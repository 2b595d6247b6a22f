"""What a Prometheus scrape and a probe expect from a segflow HTTP port, checked over HTTP.

Shared by the consumer's port (tests/unit/test_observability.py) and the export API
(tests/integration/test_export.py): both must negotiate the exposition format, compress when
asked, answer ``HEAD`` like ``GET`` without a body, and carry the process and build metrics.
"""

from __future__ import annotations

import gzip
import socket
from urllib.parse import urlsplit

from segflow import __version__
from tests.support.export_server import Reply, call

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _headers(reply: Reply) -> dict[str, str]:
    return {name.lower(): value for name, value in reply.headers.items()}


def raw_head(base: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """``HEAD path`` over a bare socket: status, headers and whatever bytes followed them.

    HTTP clients never read a body after ``HEAD``, so they cannot see a server that wrongly
    sends one (and corrupts the next request on a kept-alive connection); the socket can.
    """
    where = urlsplit(base)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, rest


def assert_prometheus_endpoints(base: str) -> str:
    """Check ``/metrics`` and ``/healthz`` of ``base``; return the plain-text exposition."""
    plain = call("GET", f"{base}/metrics")
    assert plain.status == 200
    assert _headers(plain)["content-type"].startswith("text/plain; version=0.0.4")
    text = plain.body.decode()
    build = [line for line in text.splitlines() if line.startswith("segflow_build_info{")]
    assert len(build) == 1
    assert f'version="{__version__}"' in build[0]
    assert 'python="3.' in build[0]
    assert "\nprocess_resident_memory_bytes " in text
    assert "\npython_info{" in text

    open_metrics = call("GET", f"{base}/metrics", headers={"Accept": OPENMETRICS})
    assert _headers(open_metrics)["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.body.endswith(b"# EOF\n")

    zipped = call("GET", f"{base}/metrics", headers={"Accept-Encoding": "gzip"})
    assert _headers(zipped)["content-encoding"] == "gzip"
    assert b"segflow_build_info" in gzip.decompress(zipped.body)

    status, headers, rest = raw_head(base, "/metrics")
    assert (status, rest) == (200, b"")
    assert int(headers["content-length"]) > 0
    assert headers["content-type"] == _headers(plain)["content-type"]

    for probe in ("/healthz", "/readyz"):
        got = call("GET", f"{base}{probe}")
        status, headers, rest = raw_head(base, probe)
        assert (status, rest) == (got.status, b""), probe
        assert int(headers["content-length"]) == len(got.body), probe
    return text
