"""Reading sweep files: ``yaml.safe_load`` with the limits a hostile file needs.

- A key given twice in one mapping takes its last value, as PyYAML and W&B do (W&B
  runs such files), with a warning naming the key, its lines and the value used.
- Anchors and aliases are fine, but a document that would expand to more than
  ``MAX_VALUES`` values (an alias bomb: a few hundred bytes that expand to billions
  of list items) is refused at once, before anything walks it.
- Nesting deeper than ``MAX_DEPTH`` is refused (nothing in a sweep file nests that
  deep; Python's recursion would fail later, in the middle of a run).

Example:
    >>> load_yaml("a: 1\\nb: [1, 2]\\n")
    {'a': 1, 'b': [1, 2]}
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import yaml

from ..core.errors import SpecError

MAX_VALUES = 200_000
MAX_DEPTH = 40
MERGE_TAG = "tag:yaml.org,2002:merge"


def duplicate_keys(root: yaml.Node | None) -> list[str]:
    """One sentence per key given more than once in a mapping: its place, its lines and
    the value used (the last, as PyYAML takes it). Each node is visited once (aliases
    share); merge keys (``<<``) are no duplicates (YAML merges them all).

    Example: ``duplicate_keys(yaml.compose("a: 1\na: 2\n"))`` -> ``["'a' is given twice,
    at lines 1 and 2: the last is used (2)"]``
    """
    notes: list[str] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")] if root is not None else []
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            places: dict[tuple[str, str], list[tuple[int, yaml.Node]]] = {}
            for key_node, value_node in node.value:
                child = path
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != MERGE_TAG:
                    places.setdefault((key_node.tag, key_node.value), []).append(
                        (key_node.start_mark.line + 1, value_node))
                    child = f"{path}.{key_node.value}" if path else str(key_node.value)
                stack.extend(((value_node, child), (key_node, path)))
            for (_, name), where in places.items():
                if len(where) > 1:
                    notes.append(_duplicate_note(name, path, where))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))
    return sorted(notes)


def _duplicate_note(name: str, path: str, where: list[tuple[int, yaml.Node]]) -> str:
    lines = [str(line) for line, _ in where]
    listed = ", ".join(lines[:-1]) + f" and {lines[-1]}"
    times = "twice" if len(where) == 2 else f"{len(where)} times"
    inside = f" in {path}" if path else ""
    return (f"{name!r} is given {times}{inside}, at lines {listed}: the last is used "
            f"({_shown(where[-1][1])}), as PyYAML and W&B do")


def _shown(node: yaml.Node, limit: int = 80) -> str:
    """A node's value as a short text, for a message."""
    try:
        text = json.dumps(yaml.safe_load(yaml.serialize(node)), default=str)
    except (yaml.YAMLError, ValueError, TypeError, RecursionError):
        text = f"the value at line {node.start_mark.line + 1}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expanded_size(doc: Any, limit: int = MAX_VALUES, depth_limit: int = MAX_DEPTH) -> int:
    """How many values ``doc`` holds once aliases are expanded (shared objects counted at
    every place they appear), stopping past ``limit``; raises ValueError past
    ``depth_limit`` levels. Linear in the distinct objects, whatever the expansion."""
    memo: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        if depth > depth_limit:
            raise ValueError(f"values nested more than {depth_limit} levels deep")
        if isinstance(node, (list, dict)):
            key = id(node)
            if key in memo:
                return memo[key]
            children = node.values() if isinstance(node, dict) else node
            total = 1
            for child in children:
                total += size(child, depth + 1)
                if total > limit:
                    break
            memo[key] = total
            return total
        return 1

    return size(doc, 0)


def load_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML text with the limits above; every problem is a ``SpecError`` naming
    ``source`` and the line where YAML can tell it."""
    try:
        # Composing the node tree is linear in the text, aliases included.
        notes = duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader))
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(source, expected=f"valid YAML{where}: {problem}") from None
    except RecursionError:
        raise SpecError(source, expected=f"YAML nested at most {MAX_DEPTH} levels deep"
                        ) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise SpecError(source, expected=f"valid YAML: {exc}") from None
    try:
        size = expanded_size(doc)
    except ValueError as exc:
        raise SpecError(source, expected=f"YAML nested at most {MAX_DEPTH} levels deep ({exc})"
                        ) from None
    if size > MAX_VALUES:
        raise SpecError(source, expected=f"a document of at most {MAX_VALUES:,} values once "
                        f"its aliases are expanded (anchors and aliases that multiply "
                        f"lists are refused)")
    for note in notes:
        warnings.warn(f"{source}: {note}", stacklevel=2)
    return doc


__all__ = ["MAX_DEPTH", "MAX_VALUES", "duplicate_keys", "expanded_size", "load_yaml"]
