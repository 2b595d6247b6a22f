"""Put a real librdkafka producer into its fatal state, as an idempotence failure would.

librdkafka exports ``rd_kafka_test_fatal_error`` for exactly this ("trigger a fatal error
for testing purposes"); confluent-kafka does not wrap it, so it is called through ctypes
with the client handle confluent-kafka keeps right after the Python object header. The
producer then behaves as after a real fatal error: every later ``produce`` fails with
``_FATAL``, and the broker stays real.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys

import confluent_kafka

INVALID_PRODUCER_EPOCH = 47


def _library() -> ctypes.CDLL:
    here = os.path.dirname(confluent_kafka.__file__)
    found = sorted(glob.glob(os.path.join(here, os.pardir, "confluent_kafka.libs", "librdkafka*")))
    lib = ctypes.CDLL(found[0] if found else "librdkafka.so.1")
    lib.rd_kafka_test_fatal_error.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p]
    lib.rd_kafka_test_fatal_error.restype = ctypes.c_int
    lib.rd_kafka_name.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_name.restype = ctypes.c_char_p
    return lib


def make_fatal(producer: confluent_kafka.Producer) -> None:
    """Raise a fatal INVALID_PRODUCER_EPOCH error inside ``producer``'s librdkafka handle."""
    lib = _library()
    handle = ctypes.c_void_p.from_address(id(producer) + sys.getsizeof(object())).value
    name = lib.rd_kafka_name(handle) or b""
    assert name.startswith(b"rdkafka#producer"), f"not a librdkafka producer handle: {name!r}"
    assert lib.rd_kafka_test_fatal_error(handle, INVALID_PRODUCER_EPOCH, b"segflow test") == 0
