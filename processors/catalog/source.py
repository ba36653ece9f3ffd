"""Reading catalog YAML with positions: every value knows its file and line.

The catalog is composed into YAML nodes (never constructed into Python
objects by PyYAML), so numbers are read from their source text straight into
``Decimal`` -- ``0.1`` never passes through a binary float -- and every
problem can name the file and line it came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

import yaml

from processors.catalog.errors import CatalogError, SourceRef
from processors.money import MAX_FRACTION_DIGITS, MAX_INTEGER_DIGITS, too_fine, too_large

_BOOL_TAG = "tag:yaml.org,2002:bool"
_NULL_TAG = "tag:yaml.org,2002:null"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Names end up inside state keys joined by "|" and in reports: keep them plain.
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]*$")


def compose(file: str, text: str) -> yaml.Node | None:
    """The YAML node tree of one catalog file, or None for an empty file."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise CatalogError(file, line, "YAML", f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise CatalogError(file, 1, "YAML", f"not valid YAML: {exc}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise CatalogError(file, 1, "YAML", "nested too deeply to be a catalog") from None


class Value:
    """One YAML node being read as part of a named catalog entry."""

    def __init__(self, file: str, node: yaml.Node, entry: str, key: str | None = None) -> None:
        self.file = file
        self.node = node
        self.entry = entry
        self.key = key  # the mapping key this value is under, named in its errors

    @property
    def ref(self) -> SourceRef:
        return SourceRef(self.file, self.node.start_mark.line + 1, self.entry)

    def fail(self, message: str) -> CatalogError:
        return CatalogError.at(self.ref, message if self._names_key(message) else
                               f"{self.key}: {message}")

    def _names_key(self, message: str) -> bool:
        """True when the error names the key already: no key, or the entry or the
        message says it (a top-level section is its own entry)."""
        return (self.key is None or message.startswith(self.key)
                or self.entry.rsplit(" ", 1)[-1] == self.key)

    def renamed(self, entry: str) -> Value:
        return Value(self.file, self.node, entry, self.key)

    def _scalar(self, what: str) -> yaml.ScalarNode:
        if not isinstance(self.node, yaml.ScalarNode) or self.node.tag == _NULL_TAG:
            raise self.fail(f"expected {what}")
        return self.node

    def text(self) -> str:
        return str(self._scalar("a text value").value)

    def identifier(self) -> str:
        name = self.text()
        if not IDENTIFIER.match(name):
            raise self.fail(
                f"{name!r} is not a valid name (letters, digits and _ . : @ + -, "
                "starting with a letter or digit)"
            )
        return name

    def decimal(self) -> Decimal:
        node = self._scalar("a decimal number")
        if node.tag == _BOOL_TAG:
            raise self.fail(f"expected a decimal number, got {node.value!r}")
        try:
            value = Decimal(node.value)
        except InvalidOperation:
            raise self.fail(f"expected a decimal number, got {node.value!r}") from None
        if not value.is_finite():
            raise self.fail(f"expected a finite decimal number, got {node.value!r}")
        if too_large(value) or too_fine(value):
            raise self.fail(f"{node.value!r} is out of range: at most {MAX_INTEGER_DIGITS} "
                            f"digits before the decimal point and {MAX_FRACTION_DIGITS} after")
        return value

    def boolean(self) -> bool:
        node = self._scalar("true or false")
        if node.tag != _BOOL_TAG:
            raise self.fail(f"expected true or false, got {node.value!r}")
        return str(node.value).lower() in ("true", "yes", "on")

    def instant(self) -> datetime:
        """A date (midnight UTC) or a date-time with an explicit offset, as UTC."""
        raw = self.text()
        try:
            if _DATE.match(raw):
                return datetime.combine(date.fromisoformat(raw), datetime.min.time(), UTC)
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise self.fail(f"expected a date or date-time, got {raw!r}") from None
        if moment.tzinfo is None:
            raise self.fail(f"date-time {raw!r} needs a timezone offset, e.g. Z")
        try:
            return moment.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:59:59-05:00: no UTC value
            raise self.fail(f"date-time {raw!r} is outside the supported range once in "
                            "UTC") from None

    def items(self) -> Iterator[Value]:
        """The entries of a YAML list, each labelled ``entry[i]``."""
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.fail("expected a list")
        for index, child in enumerate(self.node.value):
            yield Value(self.file, child, f"{self.entry}[{index}]")

    def identifiers(self) -> list[tuple[str, Value]]:
        """A list of names, each with its value (for precise error lines)."""
        return [(item.identifier(), item) for item in self.items()]

    def mapping(
        self, required: AbstractSet[str] = frozenset(), optional: AbstractSet[str] = frozenset()
    ) -> Fields:
        """A mapping with exactly these keys allowed; any other key is an error."""
        return Fields.read(self, required | optional, required)

    def open_mapping(self) -> Fields:
        """A mapping whose keys are data (e.g. a rate row's ``match``), not a schema."""
        return Fields.read(self, None, frozenset())


class Fields:
    """A YAML mapping whose keys are checked: required present, none unknown."""

    def __init__(self, owner: Value, values: dict[str, Value], lines: dict[str, int]) -> None:
        self.owner = owner
        self._values = values
        self._lines = lines

    @classmethod
    def read(
        cls, owner: Value, allowed: AbstractSet[str] | None, required: AbstractSet[str]
    ) -> Fields:
        if not isinstance(owner.node, yaml.MappingNode):
            raise owner.fail("expected a mapping of keys to values")
        values: dict[str, Value] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in owner.node.value:
            key = Value(owner.file, key_node, owner.entry).text()
            if key in values:
                raise Value(owner.file, key_node, owner.entry).fail(f"duplicate key {key!r}")
            if allowed is not None and key not in allowed:
                expected = ", ".join(sorted(allowed))
                raise Value(owner.file, key_node, owner.entry).fail(
                    f"unknown key {key!r} (expected one of: {expected})"
                )
            values[key] = Value(owner.file, value_node, owner.entry, key)
            lines[key] = key_node.start_mark.line + 1
        missing = sorted(required - values.keys())
        if missing:
            raise owner.fail(f"missing required key {missing[0]!r}")
        return cls(owner, values, lines)

    @property
    def ref(self) -> SourceRef:
        base = self.owner.ref
        return SourceRef(base.file, base.line, base.entry, MappingProxyType(dict(self._lines)))

    def renamed(self, entry: str) -> Fields:
        """The same mapping, labelled ``entry`` in errors (e.g. once its name is known)."""
        values = {key: value.renamed(entry) for key, value in self._values.items()}
        return Fields(self.owner.renamed(entry), values, self._lines)

    def names(self) -> list[str]:
        return list(self._values)

    def each(self, key: str) -> Iterator[Value]:
        """The entries of the list under ``key`` (none when the key is absent)."""
        value = self._values.get(key)
        if value is None:
            return iter(())
        return value.renamed(f"{self.owner.entry} {key}").items()

    def req(self, key: str) -> Value:
        return self._values[key]

    def get(self, key: str) -> Value | None:
        return self._values.get(key)

    def fail(self, key: str, message: str) -> CatalogError:
        return CatalogError.at(self.ref.at(key), message)
