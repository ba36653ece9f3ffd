from __future__ import annotations

import pytest
import yaml

from stream.strict_yaml import DuplicateKeyError, load_yaml


def test_it_reads_what_safe_load_reads() -> None:
    text = ("top:\n  a: 1\n  b: [x, {c: 2.5}]\n  when: 2026-11-03\n"
            "base: &base {x: 1, y: 2}\nmerged:\n  <<: *base\n  x: 3\n")
    assert load_yaml(text) == yaml.safe_load(text)
    assert load_yaml(text)["merged"] == {"x": 3, "y": 2}  # an explicit key beats a merge


@pytest.mark.parametrize(("text", "where"), [
    ("a: 1\nb: 2\na: 3\n", "line 3, column 1: the key 'a' is given twice in one mapping "
                           r"\(first on line 1\)"),
    ("top:\n  k: 1\n  j: 2\n  k: 3\n", "line 4, column 3: the key 'k' .* on line 2"),
    ("- {x: 1, x: 2}\n", "line 1, column 10: the key 'x'"),
    ("1: a\n1: b\n", "the key 1 is given twice"),
])
def test_a_key_given_twice_is_refused_naming_both_lines(text: str, where: str) -> None:
    with pytest.raises(DuplicateKeyError, match=where):
        load_yaml(text)


def test_the_refusal_is_a_yaml_error_so_callers_report_it_with_the_file() -> None:
    assert issubclass(DuplicateKeyError, yaml.YAMLError)


def test_it_cannot_build_python_objects() -> None:
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object/apply:os.system ['true']\n")
