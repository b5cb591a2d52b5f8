"""The README's JSON reference, read and checked: every ``--json`` output of docq must
match the shape the README gives for its command (see the README's "JSON output").

A shape is JSON: ``"int"``, ``"float"``, ``"str"``, ``"bool"`` and ``"time"`` (ISO 8601
UTC) are types, ``"object"`` any object, ``"A|B"`` either (words that are not types are
the values a string takes), ``[X]`` a list of X, ``{"or null": X}`` X or null, and an
object whose one key is ``"<name>"`` maps any key to its value's shape. Every other
object must have exactly the keys shown.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_SHAPE = re.compile(r"^(?P<lead>`docq [^`]+`.*?):\n\n```json\n(?P<shape>.*?)\n```", re.M | re.S)


@cache
def shapes() -> dict[str, Any]:
    """The README's shapes by command, as written before each block (``docq stats --json``)."""
    section = README.read_text(encoding="utf-8").split("### JSON output", 1)[1].split("\n### ", 1)[0]
    found: dict[str, Any] = {}
    for match in _SHAPE.finditer(section):
        for title in re.findall(r"`(docq [^`]+)`", match["lead"]):
            found[title] = json.loads(match["shape"])
    return found


def shape_of(command: str) -> Any:
    """The documented shape of ``command`` (as the README names it)."""
    known = shapes()
    assert command in known, f"the README's JSON reference has no block for `{command}`: {sorted(known)}"
    return known[command]


def problems(value: Any, shape: Any, where: str = "$") -> list[str]:
    """Where ``value`` departs from ``shape`` (empty when it matches)."""
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {value!r:.80}"]
        return [p for i, item in enumerate(value) for p in problems(item, shape[0], f"{where}[{i}]")]
    if isinstance(shape, dict):
        if set(shape) == {"or null"}:
            return [] if value is None else problems(value, shape["or null"], where)
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {value!r:.80}"]
        if len(shape) == 1 and next(iter(shape)).startswith("<"):
            inner = next(iter(shape.values()))
            return [p for key, item in value.items() for p in problems(item, inner, f"{where}.{key}")]
        found = [f"{where}: missing key {key!r}" for key in shape if key not in value]
        found += [f"{where}: undocumented key {key!r}" for key in value if key not in shape]
        return found + [
            p for key in shape if key in value for p in problems(value[key], shape[key], f"{where}.{key}")
        ]
    options = str(shape).split("|")
    if any(_is(value, option) for option in options):
        return []
    return [f"{where}: {value!r:.80} is not {shape}"]


def _is(value: Any, option: str) -> bool:
    match option:
        case "int":
            return isinstance(value, int) and not isinstance(value, bool)
        case "float":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "str":
            return isinstance(value, str)
        case "bool":
            return isinstance(value, bool)
        case "null":
            return value is None
        case "object":
            return isinstance(value, dict)
        case "time":
            return isinstance(value, str) and TIME.fullmatch(value) is not None
        case _:
            return value == option


def check(command: str, value: Any) -> None:
    """Assert that ``value`` is what the README documents for ``command``."""
    found = problems(value, shape_of(command))
    assert not found, f"`{command}` departs from the README's JSON reference:\n" + "\n".join(found[:20])
