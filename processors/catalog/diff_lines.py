"""The shape of a ``rating catalog diff`` line, shared by the modules that compare sections.

Entities are paired by identity; an added one is shown with a summary, a removed
one by its key, and each changed field of a pair is ``name old -> new``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


def paired(kind: str, old: Mapping[str, T], new: Mapping[str, T],
           summary: Callable[[T], str], changes: Callable[[T, T], list[str]]) -> list[str]:
    """Added, removed and changed entities of one kind, in key order."""
    lines: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            lines.append(f"{kind} added: {key} ({summary(new[key])})")
        elif key not in new:
            lines.append(f"{kind} removed: {key}")
        else:
            lines += [f"{kind} {key}: {change}" for change in changes(old[key], new[key])]
    return lines


def changed(name: str, old: object, new: object) -> list[str]:
    """``name old -> new`` when the values differ, else nothing."""
    return [] if old == new else [f"{name} {shown(old)} -> {shown(new)}"]


def shown(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"  # as written in the catalog
    if isinstance(value, tuple):
        return ", ".join(shown(item) for item in value) if value else "none"
    return str(value)
