"""YAML for the hand-edited files (settings, API tokens, workload) that refuses a key
given twice in one mapping.

``yaml.safe_load`` keeps the last of two equal keys without a word, so a second
``role:`` in a token entry, or a ``processor:`` section pasted twice into the settings,
silently replaces the first. The catalog has its own node-based reader that refuses
them too (``processors/catalog/source.py``).
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.YAMLError):
    """A mapping gives one key twice; the text names the line of each."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``SafeLoader`` whose mappings refuse a key they already hold."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges; the anchor's own keys were checked
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: construct_mapping itself refuses it
            if first is not None:
                mark = key_node.start_mark
                raise DuplicateKeyError(
                    f"line {mark.line + 1}, column {mark.column + 1}: the key {key!r} is "
                    f"given twice in one mapping (first on line {first.start_mark.line + 1})")
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def yaml_error_text(exc: Exception) -> str:
    """One line for a YAML (or read) error: ``line L, column C: problem``, without the
    multi-line excerpt PyYAML prints."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return (f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML: "
                f"{exc.problem or exc.context}")
    return " ".join(str(exc).split())


def load_yaml(text: str) -> Any:
    """``yaml.safe_load``, but a key twice in one mapping is a ``DuplicateKeyError`` (a
    ``yaml.YAMLError``, so callers report it with the file name like any YAML error)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
