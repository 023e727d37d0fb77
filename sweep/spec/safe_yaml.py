"""Reading sweep files: ``yaml.safe_load`` with the limits a hostile file needs.

- A key given twice in one mapping is refused, naming both lines (YAML would keep
  the last silently).
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

from typing import Any

import yaml

from ..core.errors import SpecError

MAX_VALUES = 200_000
MAX_DEPTH = 40


class _Duplicate(Exception):
    pass


def _check_duplicates(root: yaml.Node | None) -> None:
    """Refuse a mapping that gives a key twice (each node visited once: aliases share)."""
    seen_nodes: set[int] = set()
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = (key_node.tag, key_node.value)
                    here = key_node.start_mark.line + 1
                    if key in lines:
                        raise _Duplicate(f"{key_node.value!r} is given twice, at lines "
                                         f"{lines[key]} and {here}")
                    lines[key] = here
                stack.extend((key_node, value_node))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


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
        _check_duplicates(yaml.compose(text, Loader=yaml.SafeLoader))
        doc = yaml.safe_load(text)
    except _Duplicate as exc:
        raise SpecError(source, expected=f"each key once per mapping: {exc}") from None
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
    return doc


__all__ = ["MAX_DEPTH", "MAX_VALUES", "expanded_size", "load_yaml"]
