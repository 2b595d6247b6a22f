"""A specialised Avro binary decoder generated from a schema: the consumer's hot path.

fastavro's ``schemaless_reader`` costs ~20-30 µs for one segment command (a ``BytesIO``, and a
walk over the schema for every record), more than the whole decode + validate + plan budget of
10 µs. As ``fastenc`` does for encoding, this module turns the schema into Python source with
every field, union and enum inlined, compiled once, which decodes the same record in a few µs.

It is an accelerator, never the judge: it returns a record only for bytes it decodes exactly as
fastavro would (well-formed varints within 64 bits, lengths within the buffer, union and enum
indexes in range, strict UTF-8, nothing left over), and raises ``NotFastDecodable`` for
anything else. The codec then decodes those bytes with fastavro, so the outcome, and the
dead-letter reason of bad bytes, is fastavro's. Tests prove the two agree on generated records
and on arbitrary bytes. Supported types: the contract's (null, boolean, int, long, float,
double, bytes, string, enum, array, record, two-branch nullable unions); anything else raises
``UnsupportedSchemaError`` from ``fastenc`` and the codec uses fastavro alone.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Any

from segflow.contract.fastenc import SchemaCodeGen, UnsupportedSchemaError

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
# Zig-zag value of every one-byte varint (the common case: lengths, counts, indexes).
_ZZ = tuple((b >> 1) ^ -(b & 1) for b in range(128))
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


class NotFastDecodable(ValueError):  # noqa: N818 - a verdict, not a failure: "use fastavro"
    """The bytes are not a record this decoder is sure to read as fastavro does."""


# A varint: up to 9 bytes with the continuation bit, then one without (10 bytes at most).
_VARINT = re.compile(rb"[\x80-\xff]{0,9}[\x00-\x7f]").match
# Versions and expiries of one file share their high bits: the value of a varint's bytes after
# its first two (14 bits) is cached by those bytes, so a 9-byte version costs one dict lookup.
_HIGH: dict[bytes, int] = {}
_HIGH_MAX = 4096


def _long_tail(buf: bytes, pos: int) -> tuple[int, int]:
    """The multi-byte varint (zig-zag long) at ``pos``: (value, next pos)."""
    match = _VARINT(buf, pos)
    if match is None:
        raise NotFastDecodable("varint longer than 10 bytes or cut off")
    end = match.end()
    low = (buf[pos] & 0x7F) | (buf[pos + 1] & 0x7F) << 7
    if end - pos > 2:
        tail = buf[pos + 2 : end]
        high = _HIGH.get(tail)
        if high is None:
            high = 0
            for shift, byte in enumerate(tail):
                high |= (byte & 0x7F) << (7 * shift)
            if len(_HIGH) >= _HIGH_MAX:
                _HIGH.clear()
            _HIGH[tail] = high
        n = low | high << 14
        if n >> 64:
            raise NotFastDecodable("varint beyond 64 bits")
    else:
        n = low
    return (n >> 1) ^ -(n & 1), end


class _Generator(SchemaCodeGen):
    """Emits the body of ``decode(buf, p)`` for one schema."""

    def __init__(self, schema: Any) -> None:
        super().__init__(schema, "K")

    def resolve(self, node: Any) -> Any:
        if isinstance(node, str) and node not in _PRIMITIVES:
            if node not in self.names:
                raise UnsupportedSchemaError(f"unknown named type {node!r}")
            return self.names[node]
        if isinstance(node, dict) and node.get("type") in _PRIMITIVES and len(node) == 1:
            return node["type"]
        return node

    def long(self, var: str, indent: int) -> None:
        self.emit(indent, "b = buf[p]")
        self.emit(indent, "if b < 128:")
        self.emit(indent + 1, f"{var} = ZZ[b]")
        self.emit(indent + 1, "p += 1")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{var}, p = long_tail(buf, p)")

    def value(self, node: Any, var: str, indent: int) -> None:
        node = self.resolve(node)
        if isinstance(node, list):
            self.union(node, var, indent)
            return
        kind = node if isinstance(node, str) else node["type"]
        if kind == "null":
            self.emit(indent, f"{var} = None")
        elif kind == "boolean":
            self.emit(indent, "b = buf[p]")
            self.emit(indent, "p += 1")
            self.emit(indent, "if b > 1:")
            self.emit(indent + 1, "raise NFD('boolean byte')")
            self.emit(indent, f"{var} = b == 1")
        elif kind in ("int", "long"):
            self.long(var, indent)
            if kind == "int":
                self.emit(indent, f"if not {_INT_MIN} <= {var} <= {_INT_MAX}:")
                self.emit(indent + 1, "raise NFD('int out of range')")
        elif kind in ("float", "double"):
            size, unpack = (4, "UNPACK_F") if kind == "float" else (8, "UNPACK_D")
            self.emit(indent, f"e = p + {size}")
            self.emit(indent, "if e > n_buf:")
            self.emit(indent + 1, "raise NFD('truncated')")
            self.emit(indent, f"{var} = {unpack}(buf, p)[0]")
            self.emit(indent, "p = e")
        elif kind in ("string", "bytes"):
            length = self.var("n")
            self.long(length, indent)
            self.emit(indent, f"e = p + {length}")
            self.emit(indent, f"if {length} < 0 or e > n_buf:")
            self.emit(indent + 1, "raise NFD('length')")
            self.emit(indent, f"{var} = buf[p:e]" + (".decode()" if kind == "string" else ""))
            self.emit(indent, "p = e")
        elif kind == "enum":
            if len(node["symbols"]) > 64:
                raise UnsupportedSchemaError("enums of more than 64 symbols are not supported")
            # Index i is the one byte 2i: a dict from that byte to the symbol.
            symbols = self.const({2 * i: symbol for i, symbol in enumerate(node["symbols"])})
            self.emit(indent, f"{var} = {symbols}.get(buf[p])")
            self.emit(indent, f"if {var} is None:")
            self.emit(indent + 1, "raise NFD('enum index')")
            self.emit(indent, "p += 1")
        elif kind == "array":
            self.array(node, var, indent)
        elif kind in ("record", "error"):
            self.record(node, var, indent)
        else:
            raise UnsupportedSchemaError(f"type {kind!r} is not supported by the fast decoder")

    def array(self, node: dict[str, Any], var: str, indent: int) -> None:
        count = self.var("c")
        item = self.var("x")
        self.emit(indent, f"{var} = []")
        self.long(count, indent)
        self.emit(indent, f"while {count}:")
        self.emit(indent + 1, f"if {count} < 0:")
        # A negative count is followed by the block's size in bytes (skipped here).
        self.emit(indent + 2, f"{count} = -{count}")
        self.long("_", indent + 2)
        # Every item of the contract's arrays takes at least one byte: a count beyond the
        # bytes left is garbage, refused before it could loop.
        self.emit(indent + 1, f"if {count} > n_buf - p:")
        self.emit(indent + 2, "raise NFD('count')")
        self.emit(indent + 1, f"for _ in range({count}):")
        self.value(node["items"], item, indent + 2)
        self.emit(indent + 2, f"{var}.append({item})")
        self.long(count, indent + 1)
        if self._min_size(node["items"]) == 0:
            raise UnsupportedSchemaError("arrays of zero-byte items are not supported")

    def _min_size(self, node: Any) -> int:
        node = self.resolve(node)
        if isinstance(node, list):
            return 1
        kind = node if isinstance(node, str) else node["type"]
        if kind == "null":
            return 0
        if kind in ("record", "error"):
            return sum(self._min_size(f["type"]) for f in node["fields"])
        return 1

    def union(self, branches: list[Any], var: str, indent: int) -> None:
        if len(branches) != 2 or "null" not in branches:
            raise UnsupportedSchemaError("only two-branch nullable unions are supported")
        null_index = branches.index("null")
        other = branches[1 - null_index]
        self.emit(indent, "b = buf[p]")
        self.emit(indent, "p += 1")
        self.emit(indent, f"if b == {2 * null_index}:")
        self.emit(indent + 1, f"{var} = None")
        self.emit(indent, f"elif b == {2 * (1 - null_index)}:")
        self.value(other, var, indent + 1)
        self.emit(indent, "else:")
        self.emit(indent + 1, "raise NFD('union index')")

    def _nullable(self, node: Any) -> bool:
        node = self.resolve(node)
        return isinstance(node, list) and len(node) == 2 and "null" in node

    def record(self, node: dict[str, Any], var: str, indent: int) -> None:
        fields = node["fields"]
        field_vars = [self.var("f") for _ in fields]
        i = 0
        while i < len(fields):
            run = i
            while run < len(fields) and self._nullable(fields[run]["type"]):
                run += 1
            if run - i >= 2:
                # Consecutive nullable fields are null together in most records (a feed
                # command's profile and replace fields): one comparison reads them all.
                zeros = self.const(bytes(2 * fld["type"].index("null") for fld in fields[i:run]))
                self.emit(indent, f"if buf.startswith({zeros}, p):")
                self.emit(indent + 1, " = ".join(field_vars[i:run]) + " = None")
                self.emit(indent + 1, f"p += {run - i}")
                self.emit(indent, "else:")
                for k in range(i, run):
                    self.value(fields[k]["type"], field_vars[k], indent + 1)
                i = run
            else:
                self.value(fields[i]["type"], field_vars[i], indent)
                i += 1
        parts = [f"{fld['name']!r}: {v}" for fld, v in zip(fields, field_vars, strict=True)]
        self.emit(indent, f"{var} = {{{', '.join(parts)}}}")


def compile_decoder(schema: dict[str, Any]) -> Callable[[bytes, int], Any]:
    """A function ``decode(buf, pos)`` returning the record whose body starts at ``pos``.

    It raises ``NotFastDecodable`` for bytes it cannot vouch for (see the module docstring)
    and ``UnsupportedSchemaError`` here when the schema uses a construct it does not handle.
    """
    gen = _Generator(schema)
    gen.record(schema, "rec", 2)
    body = gen.lines
    lines = [
        "def decode(buf, p):",
        "    n_buf = len(buf)",
        "    try:",
        *body,
        "    except (IndexError, UnicodeDecodeError) as exc:",
        "        raise NFD(type(exc).__name__) from None",
        "    if p != n_buf:",
        "        raise NFD('trailing bytes')",
        "    return rec",
    ]
    namespace: dict[str, Any] = {
        "ZZ": _ZZ,
        "NFD": NotFastDecodable,
        "long_tail": _long_tail,
        "UNPACK_F": struct.Struct("<f").unpack_from,
        "UNPACK_D": struct.Struct("<d").unpack_from,
        **gen.consts,
    }
    source = "\n".join(lines) + "\n"
    code = compile(source, f"<segflow fastdec {schema.get('name', '?')}>", "exec")
    exec(code, namespace)  # noqa: S102 - source generated above from the schema, not input
    decoder: Callable[[bytes, int], Any] = namespace["decode"]
    return decoder
