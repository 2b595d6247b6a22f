"""The stack's generated configuration: one node unchanged, N nodes a real cluster.

Pure: the node list, server.properties, cassandra.yaml and ``env`` lines are built from
settings without starting anything.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from segflow.settings import StackProcessSettings, StackSettings
from segflow.stack import cassandra_node, kafka_node, manager, topology


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def _yaml(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.splitlines() if ": " in line)
    return {key: value.strip() for key, value in pairs if not key.startswith(" ")}


def _stack(tmp_path: Path, nodes: int) -> StackSettings:
    return StackSettings(state_dir=tmp_path / "stack", nodes=nodes, kafka_port=23092)


def test_one_node_keeps_its_names_address_and_replication(tmp_path: Path) -> None:
    settings = _stack(tmp_path, 1)
    specs = topology.nodes(settings)
    assert [spec.name for spec in specs] == ["kafka", "cassandra"]
    assert {spec.address for spec in specs} == {"127.0.0.1"}
    assert specs[0].directory == (tmp_path / "stack" / "kafka").resolve()
    props = _props(kafka_node.server_properties(settings, specs[0]))
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{settings.kafka_controller_port}"
    assert props["offsets.topic.replication.factor"] == "1"
    assert "min.insync.replicas" not in props
    assert "default.replication.factor" not in props
    yaml = _yaml(cassandra_node.cassandra_yaml(settings, specs[1]))
    assert yaml["listen_address"] == "127.0.0.1"
    assert yaml["hinted_handoff_enabled"] == "false"
    assert "initial_token" not in yaml
    assert manager.env_lines(settings) == [
        "export SEGFLOW_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:23092",
        "export SEGFLOW_CASSANDRA__CONTACT_POINTS=127.0.0.1",
        f"export SEGFLOW_CASSANDRA__PORT={settings.cassandra_port}",
    ]


def test_three_nodes_form_one_quorum_and_one_ring(tmp_path: Path) -> None:
    settings = _stack(tmp_path, 3)
    kafkas = topology.nodes(settings, "kafka")
    cassandras = topology.nodes(settings, "cassandra")
    assert [spec.name for spec in kafkas] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [spec.address for spec in cassandras] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert len({spec.directory for spec in kafkas + cassandras}) == 6

    controller = settings.kafka_controller_port
    for spec in kafkas:
        props = _props(kafka_node.server_properties(settings, spec))
        assert props["node.id"] == str(spec.index)
        assert props["controller.quorum.voters"] == ",".join(
            f"{i}@127.0.0.{i}:{controller}" for i in (1, 2, 3)
        )
        assert props["listeners"] == (
            f"PLAINTEXT://{spec.address}:23092,CONTROLLER://{spec.address}:{controller}"
        )
        assert props["advertised.listeners"] == f"PLAINTEXT://{spec.address}:23092"
        assert props["log.dirs"].startswith(str(spec.directory))
        for key in ("offsets.topic.replication.factor", "default.replication.factor"):
            assert props[key] == "3"
        assert props["min.insync.replicas"] == "2"
        assert props["transaction.state.log.min.isr"] == "2"

    tokens = []
    for spec in cassandras:
        text = cassandra_node.cassandra_yaml(settings, spec)
        yaml = _yaml(text)
        assert yaml["listen_address"] == yaml["rpc_address"] == spec.address
        assert f'- seeds: "127.0.0.1:{settings.cassandra_storage_port}"' in text
        assert yaml["native_transport_port"] == str(settings.cassandra_port)
        assert yaml["hinted_handoff_enabled"] == "true"
        assert yaml["hints_directory"].startswith(str(spec.directory))
        tokens.append(int(yaml["initial_token"]))
    # Evenly spaced over Murmur3's range: each node owns a third of the ring.
    assert tokens == sorted(tokens)
    assert tokens[0] == -(2**63)
    assert {b - a for a, b in itertools.pairwise(tokens)} == {2**64 // 3}
    assert all(-(2**63) <= token < 2**63 for token in tokens)

    env = manager.env_lines(settings)
    assert (
        "export SEGFLOW_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:23092,127.0.0.2:23092,127.0.0.3:23092"
        in env
    )
    assert "export SEGFLOW_CASSANDRA__CONTACT_POINTS=127.0.0.1,127.0.0.2,127.0.0.3" in env
    assert "export SEGFLOW_CASSANDRA__REPLICATION_FACTOR=3" in env
    assert "export SEGFLOW_KAFKA__TOPIC_REPLICATION_FACTOR=3" in env


def test_node_names_and_kinds_select_nodes(tmp_path: Path) -> None:
    settings = _stack(tmp_path, 3)
    assert [spec.name for spec in topology.find(settings, "kafka-2")] == ["kafka-2"]
    assert [spec.name for spec in topology.find(settings, "cassandra")] == [
        "cassandra-1",
        "cassandra-2",
        "cassandra-3",
    ]
    assert topology.find(settings, "kafka-4") == []
    assert topology.find(_stack(tmp_path, 1), "kafka-1") == []


def test_down_finds_nodes_of_another_node_count_on_disk(tmp_path: Path) -> None:
    settings = _stack(tmp_path, 1)
    for name in ("kafka", "kafka-2", "cassandra-3", "notes", "kafka-x"):
        (settings.state_dir / name).mkdir(parents=True)
    assert sorted(spec.name for spec in topology.on_disk(settings)) == [
        "cassandra-3",
        "kafka",
        "kafka-2",
    ]


def test_commands_without_nodes_act_on_the_running_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGFLOW_STACK__STATE_DIR", str(tmp_path))
    monkeypatch.delenv("SEGFLOW_STACK__NODES", raising=False)
    implicit = StackProcessSettings().stack
    assert manager.running_count(implicit).nodes == 1
    (tmp_path / manager.NODES_FILE).write_text("3")
    assert manager.running_count(implicit).nodes == 3
    monkeypatch.setenv("SEGFLOW_STACK__NODES", "1")
    assert manager.running_count(StackProcessSettings().stack).nodes == 1
