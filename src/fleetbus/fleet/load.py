"""Read a fleet file (YAML or TOML) into a ``FleetSpec``; every error names file, key, reason."""

from __future__ import annotations

import tomllib
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fleetbus.errors import FleetFileError
from fleetbus.fleet.template import SEED_FLEET_YAML
from fleetbus.fleet.topology import FleetSpec

__all__ = ["DEFAULT_FLEET_FILE", "load_fleet", "parse_fleet", "seed_fleet"]

DEFAULT_FLEET_FILE = "fleet.yaml"


def load_fleet(path: str | Path) -> FleetSpec:
    """Load and validate the fleet file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FleetFileError(
            str(path), [("", "no such file; `fleetbus init` writes one with the seed's fleet")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetFileError(str(path), [("", f"cannot read it: {exc}")]) from None
    return parse_fleet(text, str(path), toml=path.suffix.lower() == ".toml")


def seed_fleet() -> FleetSpec:
    """The fleet ``fleetbus init`` writes: the seed's topology with its fixes."""
    return parse_fleet(SEED_FLEET_YAML, "<built-in seed fleet>")


def parse_fleet(text: str, source: str, *, toml: bool = False) -> FleetSpec:
    data = _parse_toml(text, source) if toml else _parse_yaml(text, source)
    if data is None:
        raise FleetFileError(
            source, [("", "the file is empty; `fleetbus init` writes one with the seed's fleet")]
        )
    if not isinstance(data, dict):
        raise FleetFileError(
            source, [("", f"the file must hold a mapping of keys, got {type(data).__name__}")]
        )
    try:
        spec = FleetSpec.model_validate(data, context={"defer_references": True})
    except ValidationError as exc:
        raise FleetFileError(source, [_problem(err) for err in exc.errors()]) from None
    problems = spec.reference_problems()
    if problems:
        raise FleetFileError(source, problems)
    return spec


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML has it (its wheels do): a fleet file of 4,000 roles parses
about 6 times faster, and with a third less memory at its peak, than with the pure-Python one."""


_MERGE = "tag:yaml.org,2002:merge"


class _StrictLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """YAML's safe loader, refusing a mapping that names a key twice: PyYAML keeps the last
    one silently, so a merge slip (``send_to`` twice, a role twice) would change what a role
    may do without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:  # `<<: *defaults`: merged keys are meant to be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                raise _DuplicateKey(
                    "while reading a mapping",
                    node.start_mark,
                    f"a key must be a name, not a {type(key).__name__}",
                    key_node.start_mark,
                )
            if key in seen:
                first = seen[key].start_mark
                raise _DuplicateKey(
                    f"while reading a mapping (first {key!r} at line {first.line + 1})",
                    node.start_mark,
                    f"the key {key!r} is given twice",
                    key_node.start_mark,
                )
            seen[key] = key_node
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "somewhere"
        raise FleetFileError(source, [("", f"not valid YAML at {where}: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise FleetFileError(source, [("", f"not valid YAML: {exc}")]) from None


def _parse_toml(text: str, source: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FleetFileError(source, [("", f"not valid TOML: {exc}")]) from None


def _problem(err: Any) -> tuple[str, str]:
    loc = [str(part) for part in err["loc"] if not str(part).startswith("function-")]
    # pydantic names the branch of an Optional or a validator; drop those noise segments
    loc = [p for p in loc if p not in ("ConsumerSpec", "EventsSpec", "UpdatesSpec")]
    key = ""
    for part in loc:
        key += f"[{part}]" if part.isdigit() else (f".{part}" if key else part)
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "extra_forbidden":
        msg = "unknown key (check its spelling; `fleetbus init` writes every key)"
    elif kind == "missing":
        msg = "required key is missing"
    elif msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    elif kind == "literal_error":
        msg = f"{err.get('input')!r} is not allowed: {msg.removeprefix('Input should be ')}"
        msg = msg.replace(" is not allowed: ", " is not allowed; use ")
    elif isinstance(err.get("input"), bool):
        # YAML reads yes/no/on/off as booleans: `replicas: yes` is not 1
        msg = f"{str(err['input']).lower()} (YAML's reading of yes/no/on/off): {msg}"
    elif isinstance(err.get("input"), str | int | float):
        # pydantic's own messages ("Input should be a valid integer") omit the value
        msg = f"{err['input']!r}: {msg}"
    return key, msg
