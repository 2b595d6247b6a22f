"""Which nodes a stack of ``stack.nodes`` nodes has: names, loopback addresses, directories.

Pure: no I/O, so the configuration generated from it is unit-tested.

- One node (the default) keeps the layout it always had: ``kafka`` and ``cassandra`` on
  127.0.0.1, in ``<state_dir>/kafka`` and ``<state_dir>/cassandra``.
- N nodes: ``kafka-1..N`` and ``cassandra-1..N``, node *i* on 127.0.0.*i* (Linux routes all of
  127/8 to loopback), every node on the same ports, in ``<state_dir>/kafka-i`` etc.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from segflow.settings import StackSettings

Kind = Literal["kafka", "cassandra"]
KINDS: tuple[Kind, ...] = ("kafka", "cassandra")


@dataclass(frozen=True)
class NodeSpec:
    """One node of the stack: its kind, its 1-based index among its kind, and where it lives."""

    kind: Kind
    index: int
    count: int
    state_dir: Path

    @property
    def clustered(self) -> bool:
        """True in a stack of several nodes (replication, quorums)."""
        return self.count > 1

    @property
    def name(self) -> str:
        """``kafka``/``cassandra`` alone, ``kafka-2``/``cassandra-2`` in a cluster."""
        return f"{self.kind}-{self.index}" if self.clustered else self.kind

    @property
    def address(self) -> str:
        """The loopback address the node binds: 127.0.0.<index>."""
        return node_address(self.index)

    @property
    def directory(self) -> Path:
        """All of this node's files: config, data and logs."""
        return self.state_dir.resolve() / self.name


def node_address(index: int) -> str:
    """127.0.0.<index>: one loopback address per node, so every node keeps the same ports."""
    return f"127.0.0.{index}"


def nodes(settings: StackSettings, kind: Kind | None = None) -> list[NodeSpec]:
    """Every node of the stack (Kafka first), or only those of ``kind``."""
    kinds = KINDS if kind is None else (kind,)
    return [
        NodeSpec(each, index, settings.nodes, settings.state_dir)
        for each in kinds
        for index in range(1, settings.nodes + 1)
    ]


def find(settings: StackSettings, name: str) -> list[NodeSpec]:
    """The nodes ``name`` means: one node (``kafka-2``) or every node of a kind (``kafka``)."""
    return [spec for spec in nodes(settings) if name in (spec.name, spec.kind)]


def node_names(settings: StackSettings) -> list[str]:
    """The names ``logs``/``kill``/``start`` accept: each node's, and each kind's."""
    names = [spec.name for spec in nodes(settings)]
    return names + [kind for kind in KINDS if kind not in names]


def replication_factor(count: int) -> int:
    """Replicas of topics and of the keyspace in a stack of ``count`` nodes (at most 3)."""
    return min(3, count)


def min_insync_replicas(count: int) -> int:
    """``min.insync.replicas``: 2 of 3 replicas, so one broker may be lost without losing acks."""
    return 2 if replication_factor(count) >= 3 else 1


def cassandra_token(index: int, count: int) -> int:
    """Evenly spaced Murmur3 tokens, so every node owns the same share of the ring."""
    return -(2**63) + (index - 1) * (2**64 // count)


def on_disk(settings: StackSettings) -> list[NodeSpec]:
    """Nodes whose directories exist under the state dir, whatever node count made them."""
    root = settings.state_dir.resolve()
    if not root.is_dir():
        return []
    found: list[NodeSpec] = []
    for path in sorted(root.iterdir()):
        kind, _, index = path.name.partition("-")
        if not path.is_dir() or kind not in KINDS:
            continue
        if not index:
            found.append(NodeSpec(_kind(kind), 1, 1, settings.state_dir))
        elif index.isdigit() and int(index) >= 1:
            # Any count above 1 names the node ``kind-index``.
            found.append(NodeSpec(_kind(kind), int(index), max(2, int(index)), settings.state_dir))
    return found


def _kind(name: str) -> Kind:
    return "kafka" if name == "kafka" else "cassandra"
