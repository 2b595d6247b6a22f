"""Canonical user keys: one string per person and identifier *type*, whatever the source.

Commands from different upstream systems about the same identifier must meet on one key
(a Village ``user_id`` and a Segmenter ``externalId`` are the same ``user_id:`` key), so keys
are named by identifier type, never by source:

* ``account:{compartment_id}:{user_account_id}``: mediarithmics compartment + user account
* ``email_hash:{v}``: mediarithmics email_hash
* ``user_agent:{v}``: mediarithmics user_agent_id
* ``email:{v}``: Village ``user`` containing ``@`` (trimmed, lower-cased)
* ``user_id:{v}``: Village ``user`` without ``@``, and Segmenter ``externalId``

Every value is trimmed of surrounding whitespace, must be non-empty, at most
``MAX_IDENTIFIER_CHARS`` characters and free of control characters; a compartment id may not
contain ``:`` (it would make ``account:`` keys ambiguous). Only e-mails are lower-cased: other
identifiers are opaque and case-sensitive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

MAX_IDENTIFIER_CHARS = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UserKeyError(ValueError):
    """An identifier that cannot become a canonical user key; the message says why."""


class KeyType(StrEnum):
    """The identifier types, i.e. the user-key prefixes."""

    ACCOUNT = "account"
    EMAIL_HASH = "email_hash"
    USER_AGENT = "user_agent"
    EMAIL = "email"
    USER_ID = "user_id"


def clean_identifier(value: str, what: str) -> str:
    """Trim ``value`` and check it can be part of a key (raises ``UserKeyError``)."""
    text = value.strip()
    if not text:
        raise UserKeyError(f"{what} is empty")
    if len(text) > MAX_IDENTIFIER_CHARS:
        raise UserKeyError(f"{what} is longer than {MAX_IDENTIFIER_CHARS} characters")
    if not text.isprintable() and _CONTROL.search(text):
        raise UserKeyError(f"{what} contains control characters")
    return text


def account_key(compartment_id: str, user_account_id: str) -> str:
    """``account:{compartment_id}:{user_account_id}``."""
    compartment = clean_identifier(compartment_id, "compartment_id")
    if ":" in compartment:
        raise UserKeyError("compartment_id must not contain ':'")
    return f"account:{compartment}:{clean_identifier(user_account_id, 'user_account_id')}"


def email_hash_key(email_hash: str) -> str:
    """``email_hash:{v}`` (the hash is kept as sent: its case is its own business)."""
    return "email_hash:" + clean_identifier(email_hash, "email_hash")


def user_agent_key(user_agent_id: str) -> str:
    """``user_agent:{v}``."""
    return "user_agent:" + clean_identifier(user_agent_id, "user_agent_id")


def email_key(email: str) -> str:
    """``email:{v}``: trimmed and lower-cased, with something on both sides of the last ``@``."""
    text = clean_identifier(email, "email").lower()
    local, _, domain = text.rpartition("@")
    if not local or not domain:
        raise UserKeyError("email needs text before and after '@'")
    return "email:" + text


def user_id_key(user_id: str) -> str:
    """``user_id:{v}`` (Village user ids and Segmenter externalIds)."""
    return "user_id:" + clean_identifier(user_id, "user_id")


def village_user_key(user: str) -> str:
    """Village ``user``: an e-mail when it contains ``@``, otherwise a user id."""
    return email_key(user) if "@" in user else user_id_key(user)


@dataclass(frozen=True, slots=True)
class UserKey:
    """A parsed canonical key: its type and its value part(s)."""

    type: KeyType
    parts: tuple[str, ...]

    def __str__(self) -> str:
        return ":".join((self.type.value, *self.parts))


def canonical_user_key(text: str) -> str:
    """The canonical form of a key typed by a person (``segflow user``): ``Email: Jane@X.com``
    gives ``email:jane@x.com``. The type prefix is case-insensitive and trimmed; the value is
    cleaned by the same rules the readers apply. Raises ``UserKeyError`` when it cannot be one.
    """
    prefix, sep, rest = text.strip().partition(":")
    if not sep:
        raise UserKeyError(
            f"{text[:80]!r} has no type prefix; expected one of "
            + ", ".join(f"{t.value}:..." for t in KeyType)
        )
    return _rebuild(_key_type(prefix.strip().lower()), rest)


def _key_type(prefix: str, quote: bool = True) -> KeyType:
    try:
        return KeyType(prefix)
    except ValueError:
        named = f" {prefix[:40]!r}" if quote else ""
        raise UserKeyError(
            f"unknown user key type{named}; expected one of " + ", ".join(t.value for t in KeyType)
        ) from None


def _rebuild(kind: KeyType, rest: str) -> str:
    if kind is KeyType.ACCOUNT:
        compartment, sep, account = rest.partition(":")
        if not sep:
            raise UserKeyError("account keys are account:{compartment_id}:{user_account_id}")
        return account_key(compartment, account)
    builder = {
        KeyType.EMAIL_HASH: email_hash_key,
        KeyType.USER_AGENT: user_agent_key,
        KeyType.EMAIL: email_key,
        KeyType.USER_ID: user_id_key,
    }[kind]
    return builder(rest)


def parse_user_key(key: str) -> UserKey:
    """Parse and check a canonical key (raises ``UserKeyError`` when it is not one).

    A key is canonical when rebuilding it from its parts gives the same string, so keys built
    by hand (upstream producers) are held to exactly the rules the readers apply. The
    messages never quote the key: they become dead-letter error texts, which hold no PII.
    """
    prefix, sep, rest = key.partition(":")
    if not sep:
        raise UserKeyError("user key has no type prefix")
    kind = _key_type(prefix, quote=False)
    rebuilt = _rebuild(kind, rest)
    if rebuilt != key:
        raise UserKeyError(
            "user key is not canonical (values trimmed, e-mails lower-cased, as the readers "
            "build them)"
        )
    parts: tuple[str, ...] = tuple(rest.partition(":")[::2]) if kind is KeyType.ACCOUNT else (rest,)
    return UserKey(kind, parts)
