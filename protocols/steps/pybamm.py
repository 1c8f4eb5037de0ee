"""PyBaMM Experiment strings as shorthand for cycling steps, parsed into the same models.

    "Discharge at C/10 until 2.8 V"        -> constant_current (discharge)
    "Charge at 0.5 mA for 2 hours or until 4.2 V"
    "Rest for 1 hour (1 minute period)"    -> rest, recorded every minute
    "Hold at 4.35 V until C/50"            -> constant_voltage

The result is a plain mapping validated like any written-out step, so units and bounds are
checked the same way. Power and resistance control ("at 4 W") are not supported.
"""

from __future__ import annotations

import re
from typing import Any

#: A step string longer than this is not one a lab writes; refused before matching.
MAX_STEP_CHARS = 200

_PATTERN = re.compile(
    r"^\s*(?P<verb>charge|discharge|rest|hold)"
    r"(?:\s+at\s+(?P<value>.+?))?"
    r"(?:\s+for\s+(?P<duration>.+?))?"
    r"(?:\s+or)?"
    r"(?:\s+until\s+(?P<until>.+?))?"
    r"(?:\s*\((?P<period>.+?)\s+period\))?\s*$",
    re.IGNORECASE,
)


def parse_pybamm(text: str) -> dict[str, Any]:
    """The step mapping for one PyBaMM experiment string; ValueError if it is not one."""
    if len(text) > MAX_STEP_CHARS:
        raise ValueError(f"a step string has at most {MAX_STEP_CHARS} characters, this one has"
                         f" {len(text)}")
    m = _PATTERN.match(text)
    if not m:
        raise ValueError(f"cannot read {text!r} as a step: expected e.g. 'Discharge at C/10 until"
                         " 2.8 V', 'Rest for 1 hour' or 'Hold at 4.35 V until C/50'")
    verb = m["verb"].lower()
    value, duration, until, period = m["value"], m["duration"], m["until"], m["period"]
    step: dict[str, Any] = {}
    if period:
        step["record_every"] = period
    if verb == "rest":
        if value or until or not duration:
            raise ValueError(f"{text!r}: a rest is written 'Rest for <duration>'")
        return {"kind": "rest", "duration": duration, **step}
    if not value:
        raise ValueError(f"{text!r}: say what to {verb} at ('{verb.capitalize()} at C/10 ...')")
    if not (duration or until):
        raise ValueError(f"{text!r}: give 'for <duration>', 'until <limit>' or both")
    if re.search(r"\b(W|mW|Ohm|ohm)\s*$", value):
        raise ValueError(f"{text!r}: power and resistance control are not supported")
    if duration:
        step["duration"] = duration
    if verb == "hold":
        step.update(kind="constant_voltage", voltage=value)
        if until:
            step["until_current"] = until
        return step
    step.update(kind="constant_current", direction=verb, current=value)
    if until:
        step["until_voltage"] = until
    return step


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" for c in word)


#: The JSON Schema of a step string (editors flag nothing ``validate`` accepts; what follows the
#: verb is checked by ``validate``). JSON Schema patterns have no case-insensitive flag.
SHORTHAND_SCHEMA: dict[str, Any] = {
    "type": "string",
    "maxLength": MAX_STEP_CHARS,
    "pattern": r"^\s*(" + "|".join(_any_case(v) for v in ("charge", "discharge", "rest", "hold"))
               + r")(\s|$)",
    "description": "a PyBaMM experiment string",
    "examples": ["Discharge at C/10 until 2.8 V", "Rest for 1 hour (1 minute period)",
                 "Hold at 4.35 V until C/50"],
}


class ShorthandJsonSchema:
    """In the JSON Schema, a step is its mapping or a PyBaMM string, as in validation."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {"anyOf": [SHORTHAND_SCHEMA, handler(core_schema)]}


def expand_shorthand(value: Any) -> Any:
    """Before validation: a string in a step list is a PyBaMM step."""
    return parse_pybamm(value) if isinstance(value, str) else value
