"""The one error a catalog load raises: where, which entry, and what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from processors.errors import RatingError


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a catalog entry was written: file, 1-based line and a readable label.

    ``field_lines`` remembers the line of each key of the entry's mapping so a
    problem with one field can point at that field's own line.
    """

    file: str
    line: int
    entry: str
    field_lines: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )

    def at(self, key: str) -> SourceRef:
        """The same entry, pointing at the line of ``key`` when it was written."""
        return SourceRef(self.file, self.field_lines.get(key, self.line), self.entry)


class CatalogError(RatingError):
    """A catalog that cannot be loaded. Nothing of it is used."""

    def __init__(self, file: str, line: int, entry: str, message: str) -> None:
        super().__init__(f"{file}:{line}: {entry}: {message}")
        self.file = file
        self.line = line
        self.entry = entry
        self.message = message

    @classmethod
    def at(cls, ref: SourceRef, message: str) -> CatalogError:
        return cls(ref.file, ref.line, ref.entry, message)
