"""``check_record`` (the consumer's fast validation) against the pydantic model.

The model is the definition; ``certainly_valid`` may only say True for what the model accepts
(otherwise the model is asked). So: every record it accepts, the model accepts; and
``check_record`` raises exactly when ``validate_record`` raises, with the same message.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import given

from segflow.contract.ids import MAX_LONG, MAX_TIMESTAMP_MS, MAX_VERSION
from segflow.contract.models import InvalidCommandError, SegmentCommand, validate_record
from segflow.contract.validation import certainly_valid, check_record
from tests.unit.contract.strategies import commands
from tests.unit.contract.wide_records import BATCH, BOUNDARY, seeds, wide_record

# Values a field may hold instead of its own: other types, edges just inside and outside
# every bound, texts that are almost user keys, JSON that is almost valid.
ODD_VALUES: tuple[Any, ...] = (
    None, True, False, 0, 1, -1, MAX_VERSION, MAX_VERSION + 1, MAX_LONG, MAX_LONG + 1,
    -(2**63), -(2**63) - 1, MAX_TIMESTAMP_MS, MAX_TIMESTAMP_MS + 1, 1.0, "", " ", "x",
    "x" * 128, "x" * 129, "x" * 256, "x" * 257, "email:a@b", "email:A@b", "email:a@",
    "email:@b", "email: a@b", "user_id:x", "user_id:x ", "user_id:", "user_id:a\x00b",
    "user_id:a\u200bb", "user_id:" + "x" * 512, "user_id:" + "x" * 513, "account:1:2",
    "account:1", "account: 1:2", "account:1:2:3", "email_hash:İ", "user_agent:\u00a0x",
    "{}", "[]", "{not json", "NaN", '{"a":1}', "[1]", [], ["s"], ["s", "s"], [""], ["x" * 257],
    [1], ["s"] * 1001, [f"s{i}" for i in range(1001)], {}, {"id": "s"},
    {"external_id": "x"}, {"file": "f", "line": 1}, ("s",), b"x",
    "FEED_ADD", "REPLACE_END", "MEDIARITHMICS", "feed_add",
)  # fmt: skip


def _same_verdict(record: Any) -> None:
    try:
        validate_record(record)
        expected = None
    except InvalidCommandError as exc:
        expected = str(exc)
    if certainly_valid(record):
        assert expected is None, f"fast path accepted what the model refuses: {expected}"
    try:
        check_record(record)
        got = None
    except InvalidCommandError as exc:
        got = str(exc)
    assert got == expected


def _mutate(rng: random.Random, record: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(record)
    targets: list[tuple[dict[str, Any], str]] = [(out, key) for key in out]
    for nested in ("segment", "person", "origin"):
        if isinstance(out.get(nested), dict):
            targets += [(out[nested], key) for key in out[nested]]
    tags = (out.get("person") or {}).get("substitution_tags")
    if tags:
        targets += [(tags[0], "tag"), (tags[0], "value")]
    for _ in range(rng.choice((1, 1, 2, 3))):
        holder, key = rng.choice(targets)
        pick = rng.random()
        if pick < 0.08:
            holder.pop(key, None)
        elif pick < 0.12:
            holder["unexpected"] = 1
        elif pick < 0.25 and isinstance(holder.get(key), str) and holder[key]:
            text = holder[key]
            holder[key] = rng.choice((text + " ", " " + text, text.upper(), text[:-1], text * 2))
        else:
            holder[key] = rng.choice(ODD_VALUES)
    return out


@given(commands)
def test_valid_commands_are_certainly_valid(command: SegmentCommand) -> None:
    assert certainly_valid(command.to_record())
    check_record(command.to_record())


@BOUNDARY
@given(seeds)
def test_wide_records_are_certainly_valid_and_the_model_agrees(seed: int) -> None:
    rng = random.Random(seed)
    for i in range(BATCH // 10):
        record = wide_record(rng)
        assert certainly_valid(record), record["operation"]
        if i == 0:
            validate_record(record)


@BOUNDARY
@given(seeds)
def test_the_fast_check_refuses_whatever_the_model_refuses_with_its_message(seed: int) -> None:
    rng = random.Random(seed)
    record: dict[str, Any] = dict(wide_record(rng))
    for _ in range(BATCH // 10):
        _same_verdict(_mutate(rng, record))


@given(commands)
def test_mutated_commands_get_the_models_verdict(command: SegmentCommand) -> None:
    rng = random.Random(command.version)
    for _ in range(5):
        _same_verdict(_mutate(rng, dict(command.to_record())))
