"""Config files and overrides: YAML read safely (no alias bombs), ``--set a.b=c`` and literal settings
applied to a raw mapping, and which keys two configs disagree on. Validation is ``config.py``'s."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml

from hindsight_ray.core.errors import UserError


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], value parsed as YAML)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {text!r}: expected KEY=VALUE, e.g. search.stage1.units=[8,16]")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise UserError(
            f"--set {key}: value {value!r} is not valid YAML ({exc.__class__.__name__})"
        ) from None
    return key.strip().split("."), parsed


def apply_overrides(
    raw: dict[str, Any], overrides: list[str], literal: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A copy of ``raw`` with every ``KEY=VALUE`` override set (the value parsed as YAML), then every
    ``literal`` dotted key set to its value as given (``--name "run #3"`` is that name, not YAML)."""
    merged = copy.deepcopy(raw)
    settings = [parse_override(text) for text in overrides]
    settings += [
        (key.split("."), value) for key, value in (literal or {}).items() if value is not None
    ]
    for path, value in settings:
        node = merged
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"--set {'.'.join(path)}: {part} is a value, not a section")
            node = child
        node[path[-1]] = value
    return merged


MAX_NODES = 100_000


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values a YAML node holds once its aliases are expanded (capped just past MAX_NODES)."""
    if id(node) in memo:
        return memo[id(node)]
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = min(total, MAX_NODES + 1)
    return memo[id(node)]


class UniqueKeyLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    """YAML's safe loader, but a key given twice in one mapping is an error (plain YAML keeps the last)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise UserError(f"the key {key!r} is given twice (line {mark.line + 1}); keep one")
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping in a YAML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} cannot be read: {exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None and _expanded_size(root, {}) > MAX_NODES:
            # a "billion laughs" file: a few lines of aliases (*name) that expand into an enormous value
            raise UserError(
                f"config file {path} expands to more than {MAX_NODES:,} values (YAML aliases); write the values out"
            )
        raw = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader that refuses repeated keys
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise UserError(f"config file {path} is not valid YAML{line}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(
            f"config file {path} must hold a mapping of keys, not a {type(raw).__name__}"
        )
    return raw


def changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two config mappings."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def validation_message(error: Any, model: Any) -> str:
    """A pydantic ``ValidationError`` on ``model`` as one line: the key, what is wrong, what was given, and
    for an unknown key the closest known one."""
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        *parents, leaf = [str(part) for part in first["loc"]]
        section: Any = model
        for parent in parents:
            section = section.model_fields[parent].annotation
        close = difflib.get_close_matches(leaf, list(section.model_fields), n=1)
        hint = f"; did you mean {'.'.join([*parents, close[0]])}?" if close else ""
        return f"unknown config key {key}{hint}"
    message = str(first["msg"]).removeprefix("Value error, ")
    if not key:
        return f"config: {message}"
    got = first.get("input")
    text = repr(got)
    shown = (
        "" if isinstance(got, dict) else f" (got {text if len(text) <= 80 else text[:77] + '...'})"
    )
    return f"config key {key}: {message}{shown}"
