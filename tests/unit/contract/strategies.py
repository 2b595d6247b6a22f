"""Hypothesis strategies: valid segment commands for every operation, and raw identifiers."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from segflow.contract.enums import Operation, Source
from segflow.contract.ids import MAX_TIMESTAMP_MS, MAX_VERSION
from segflow.contract.models import (
    Origin,
    Person,
    SegmentCommand,
    SegmentDefinition,
    SubstitutionTag,
)
from segflow.contract.user_keys import (
    UserKeyError,
    account_key,
    email_hash_key,
    email_key,
    user_agent_key,
    user_id_key,
)

# Any Unicode text Avro can carry (no lone surrogates).
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
identifier = st.text(
    st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=30
).filter(lambda v: v.strip() == v and v != "")
segment_ref = identifier.filter(lambda v: len(v) <= 256)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=10,
)


def _keyed(build: Any, *parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def attempt(values: tuple[str, ...]) -> str | None:
        try:
            return str(build(*values))
        except UserKeyError:
            return None

    return st.tuples(*parts).map(attempt).filter(lambda key: key is not None)  # type: ignore[return-value]


user_keys = st.one_of(
    _keyed(account_key, identifier.filter(lambda v: ":" not in v), identifier),
    _keyed(email_hash_key, identifier),
    _keyed(user_agent_key, identifier),
    _keyed(email_key, st.emails()),
    _keyed(user_id_key, identifier),
)
versions = st.integers(1, MAX_VERSION)
origins = st.none() | st.builds(Origin, file=text, line=st.integers(0, 2**40))


@st.composite
def _common(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "command_id": draw(st.text(min_size=1, max_size=64)),
        "execution_id": draw(identifier),
        "source": draw(st.sampled_from(Source)),
        "version": draw(versions),
        "origin": draw(origins),
    }


def _refs(draw: st.DrawFn, minimum: int = 0) -> list[str]:
    return draw(st.lists(segment_ref, min_size=minimum, max_size=4, unique=True))


@st.composite
def feed_commands(draw: st.DrawFn) -> SegmentCommand:
    """FEED_ADD / FEED_REMOVE."""
    operation = draw(st.sampled_from([Operation.FEED_ADD, Operation.FEED_REMOVE]))
    ids = _refs(draw)
    names = _refs(draw, 0 if ids else 1)
    fields: dict[str, Any] = {}
    if operation is Operation.FEED_ADD:
        fields["expires_at_ms"] = draw(st.none() | st.integers(0, MAX_TIMESTAMP_MS))
        fields["data_bag"] = draw(st.none() | json_values.map(json.dumps))
    return SegmentCommand(
        **draw(_common()),
        operation=operation,
        user_key=draw(user_keys),
        segment_ids=ids,
        segment_technical_names=names,
        **fields,
    )


@st.composite
def override_commands(draw: st.DrawFn) -> SegmentCommand:
    """OVERRIDE_ADD / BLOCK / RESET."""
    return SegmentCommand(
        **draw(_common()),
        operation=draw(
            st.sampled_from(
                [Operation.OVERRIDE_ADD, Operation.OVERRIDE_BLOCK, Operation.OVERRIDE_RESET]
            )
        ),
        user_key=draw(user_keys),
        segment_ids=_refs(draw, 1),
        metadata=draw(st.none() | st.dictionaries(text, json_values, max_size=3).map(json.dumps)),
        reference_id=draw(st.none() | text),
        description=draw(st.none() | text),
    )


definitions = st.builds(
    SegmentDefinition,
    id=segment_ref,
    name=st.none() | text,
    description=st.none() | text,
    broadcast_medium_id=st.none() | text,
    segment_type=st.none() | text,
)
persons = st.builds(
    Person,
    external_id=identifier,
    first_name=st.none() | text,
    last_name=st.none() | text,
    email=st.none() | text,
    phone=st.none() | text,
    substitution_tags=st.lists(
        st.builds(SubstitutionTag, tag=text.filter(bool), value=text), max_size=3
    ),
)


@st.composite
def replace_commands(draw: st.DrawFn) -> SegmentCommand:
    """REPLACE_BEGIN / MEMBER / END."""
    operation = draw(
        st.sampled_from([Operation.REPLACE_BEGIN, Operation.REPLACE_MEMBER, Operation.REPLACE_END])
    )
    definition = draw(definitions)
    fields: dict[str, Any] = {"segment_ids": [definition.id]}
    if operation is Operation.REPLACE_BEGIN:
        fields["segment"] = definition
    elif operation is Operation.REPLACE_END:
        fields["segment"] = draw(st.none() | st.just(definition))
        fields["member_count"] = draw(st.integers(0, MAX_VERSION))
    else:
        person = draw(persons)
        fields["person"] = person
        fields["user_key"] = user_id_key(person.external_id)
    return SegmentCommand(**draw(_common()), operation=operation, **fields)


commands = st.one_of(feed_commands(), override_commands(), replace_commands())
