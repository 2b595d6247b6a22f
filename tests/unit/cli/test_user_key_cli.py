"""``segflow user`` canonicalises what a person types, with the readers' own rules."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segflow.contract.user_keys import (
    UserKeyError,
    account_key,
    canonical_user_key,
    email_key,
    parse_user_key,
    user_id_key,
)


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("email:jane@example.com", "email:jane@example.com"),
        ("Email: Jane@Example.COM ", "email:jane@example.com"),
        (" ACCOUNT:1000:acc-3", "account:1000:acc-3"),
        ("user_id: U-1 ", "user_id:U-1"),
        ("email_hash:AbC", "email_hash:AbC"),
    ],
)
def test_typed_keys_become_canonical(typed: str, canonical: str) -> None:
    assert canonical_user_key(typed) == canonical


@pytest.mark.parametrize("typed", ["not a key", "phone:1", "email:", "email:nobody", "account:x"])
def test_what_cannot_be_a_key_is_refused(typed: str) -> None:
    with pytest.raises(UserKeyError):
        canonical_user_key(typed)


identifier = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=":"),
    min_size=1,
    max_size=40,
).filter(lambda text: text.strip() != "")


@given(identifier, identifier)
def test_keys_the_readers_build_are_fixed_points(left: str, right: str) -> None:
    keys = [account_key(left, right), user_id_key(left)]
    with contextlib.suppress(UserKeyError):
        keys.append(email_key(f"{left}@{right}"))
    for key in keys:
        assert canonical_user_key(key) == key
        assert str(parse_user_key(key)) == key
        assert canonical_user_key(key.upper().split(":", 1)[0] + ":" + key.split(":", 1)[1]) == key
