"""The fleet file's JSON Schema: completion, hover and red squiggles in the editor, as you type.

It is generated from the pydantic models (``FleetSpec.model_json_schema``), so it cannot drift
from what the loader accepts. pydantic describes each field by its Python type, which is not
what the file holds: a duration is a float in Python but reads ``30s`` or ``7d`` from YAML, a
size is an int but reads ``2GB``. The loader gets there through validators, and pydantic's
schema sees only the type behind them. So the generator below maps each validator to what the
file may hold:

- durations: a number of seconds, or text such as ``500ms``, ``30s``, ``1h30m``, ``7d``;
- sizes: a byte count or text such as ``2GB``, ``512MiB``; size limits also ``-1``;
- limits: integers from ``-1`` (unlimited); ``max_deliver`` / ``max_ack_pending`` never 0;
- ``retention``: also the seed's (and the nats CLI's) ``work-queue`` spelling;
- ``deliver``: a policy name, or an ISO time to start from;
- subjects, the prefix, role and stream names: the patterns the loader enforces.

The schema is meant never to refuse a file the loader accepts. What it cannot say — that a
``send_to`` names a declared role, that some stream captures each consumer's subjects, that a
backoff list is no longer than ``max_deliver`` — stays with the loader and ``fleetbus check``.
Where pydantic's lax mode takes more than people write (``0``/``1`` for booleans, ``true``
or ``"1000"`` for numbers), the schema asks for the plain form: ``true``, ``1000``.

Editors find the schema through the first line of the fleet file ``fleetbus init`` writes,
``# yaml-language-server: $schema=fleet.schema.json``: one schema file beside the fleet
files of a directory, written by ``fleetbus init`` and refreshed by ``fleetbus schema --out``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from fleetbus.fleet import FleetSpec
from fleetbus.wire import subjects

__all__ = ["DIALECT", "SCHEMA_FILE", "fleet_schema", "fleet_schema_text"]

SCHEMA_FILE = "fleet.schema.json"
"""The schema's file name, beside the fleet file; the seed's first line points at it."""
DIALECT = "https://json-schema.org/draft/2020-12/schema"

_NUMBER = r"[0-9]+(\.[0-9]+)?"
# parse_duration: parts like 30s or 1h30m, any case, spaces ignored.
DURATION_PATTERN = rf"^\s*({_NUMBER} *([mM][sS]|[smhdwSMHDW]) *)+\s*$"
# parse_size: a number and an optional unit: b, k, kb, kib, ... t, tb, tib (any case).
_SIZE_BODY = rf"{_NUMBER}\s*([kKmMgGtT][iI]?[bB]?|[bB])?"
SIZE_PATTERN = rf"^\s*{_SIZE_BODY}\s*$"
LIMIT_SIZE_PATTERN = rf"^\s*(-1|{_SIZE_BODY})\s*$"
# validate_subject: tokens with no dot, whitespace or wildcard inside; * as a whole token;
# > only last.
_TOKEN = r"[^.\s*>]+"
SUBJECT_PATTERN = rf"^(({_TOKEN}|\*)(\.({_TOKEN}|\*))*(\.>)?|>)$"
PREFIX_PATTERN = rf"^{_TOKEN}(\.{_TOKEN})*$"
ROLE_PATTERN = subjects._ROLE.pattern
_ROLE_BODY = ROLE_PATTERN.removeprefix("^").removesuffix("$")
STREAM_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # FleetSpec's stream names (tests hold them equal)
# datetime.fromisoformat takes dates, date-times and week dates: all start with a year.
ISO_TIME_PATTERN = r"^[0-9]{4}"

_DURATION_HELP = "seconds, or text: 500ms, 30s, 5m, 2h, 7d, 1h30m"
_SIZE_HELP = "bytes, or text: 512MB, 2GB, 1GiB"


def _duration() -> JsonSchemaValue:
    return {
        "type": ["number", "string"],
        "minimum": 0,
        "pattern": DURATION_PATTERN,
        "description": _DURATION_HELP,
    }


def _size() -> JsonSchemaValue:
    return {
        "type": ["integer", "string"],
        "minimum": 0,
        "pattern": SIZE_PATTERN,
        "description": _SIZE_HELP,
    }


def _limit_size() -> JsonSchemaValue:
    return {
        "type": ["integer", "string"],
        "minimum": -1,
        "pattern": LIMIT_SIZE_PATTERN,
        "description": f"{_SIZE_HELP}; -1 for unlimited",
    }


# The validators the models put in front of (or after) their Python types, by name, and what
# each lets the file hold. A validator renamed in the models fails the tests of this schema.
_BEFORE: dict[str, Callable[[], JsonSchemaValue]] = {
    "parse_duration": _duration,
    "parse_size": _size,
    "_parse_limit_size": _limit_size,
}


def _positive(inner: JsonSchemaValue) -> JsonSchemaValue:
    out = {k: v for k, v in inner.items() if k != "minimum"}
    return {**out, "exclusiveMinimum": 0}


def _no_negative(inner: JsonSchemaValue) -> JsonSchemaValue:
    return {**inner, "minimum": -1, "description": "-1 for unlimited"}


def _subject(inner: JsonSchemaValue) -> JsonSchemaValue:
    return {
        **inner,
        "pattern": SUBJECT_PATTERN,
        "description": "relative to the prefix (agents.> is P.agents.>); wildcards * and >",
    }


_AFTER: dict[str, Callable[[JsonSchemaValue], JsonSchemaValue]] = {
    "_positive": _positive,
    "_no_negative": _no_negative,
    "_subject": _subject,
}


class _FleetFileSchema(GenerateJsonSchema):
    """pydantic's generator, with the fleet file's validators read as what they accept."""

    def function_before_schema(
        self, schema: core_schema.BeforeValidatorFunctionSchema
    ) -> JsonSchemaValue:
        make = _BEFORE.get(schema["function"]["function"].__name__)
        return make() if make is not None else super().function_before_schema(schema)

    def function_after_schema(
        self, schema: core_schema.AfterValidatorFunctionSchema
    ) -> JsonSchemaValue:
        inner = super().function_after_schema(schema)
        adjust = _AFTER.get(schema["function"]["function"].__name__)
        return adjust(inner) if adjust is not None else inner


def _field_validators(schema: JsonSchemaValue) -> None:
    """What the models' field validators (not visible to pydantic's schema) accept."""
    defs: dict[str, JsonSchemaValue] = schema["$defs"]
    retention = defs["StreamSpec"]["properties"]["retention"]
    retention["enum"] = [*retention["enum"], "work-queue"]
    for spec in defs.values():
        props = spec.get("properties", {})
        if "deliver" in props:
            props["deliver"] = {
                "anyOf": [
                    {"enum": ["all", "new", "last", "last_per_subject"]},
                    {"type": "string", "pattern": ISO_TIME_PATTERN},
                ],
                "default": props["deliver"].get("default", "all"),
                "description": "all, new, last, last_per_subject, or an ISO time to start from",
            }
        for key in ("max_deliver", "max_ack_pending"):
            if key in props:
                props[key]["not"] = {"const": 0}
                props[key]["description"] = "at least 1, or -1 for unlimited"
    root = schema["properties"]
    root["prefix"]["pattern"] = PREFIX_PATTERN
    root["streams"]["propertyNames"] = {"pattern": STREAM_NAME_PATTERN}
    root["roles"]["propertyNames"] = {"pattern": ROLE_PATTERN}
    root["roles"]["minProperties"] = 1
    role = defs["RoleSpec"]["properties"]
    role["send_to"]["items"] = {"type": "string", "pattern": rf"^(\*|{_ROLE_BODY})$"}


def fleet_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the fleet file, as a dict."""
    generated = FleetSpec.model_json_schema(schema_generator=_FleetFileSchema)
    _field_validators(generated)
    return {
        "$schema": DIALECT,
        "title": "fleetbus fleet file",
        "description": (
            "Roles, streams, consumers, permissions and alert thresholds of a fleetbus fleet"
            " (docs/fleet-file.md). Written by `fleetbus schema`; `fleetbus check` also checks"
            " the cross-references a schema cannot."
        ),
        **{k: v for k, v in generated.items() if k not in ("title", "description")},
    }


def fleet_schema_text() -> str:
    """The schema as the file ``fleetbus schema`` writes: indented JSON, newline-terminated."""
    return json.dumps(fleet_schema(), indent=2, ensure_ascii=False) + "\n"
