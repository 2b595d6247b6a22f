"""The stack's KRaft cluster ids never start with ``-`` (the storage tool would read an option)."""

from __future__ import annotations

import base64

from segflow.stack import kafka_node


def test_cluster_ids_are_uuids_that_never_start_with_a_dash() -> None:
    ids = [kafka_node._new_cluster_id() for _ in range(5000)]  # ~78 would start with "-" before
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
