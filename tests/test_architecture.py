"""The shape of the package, checked: imports go down the layers, nats-py's internals are
touched in one module, the types users receive are exported, and long modules say why."""

from __future__ import annotations

import ast
import inspect
import re
import typing
from pathlib import Path

import fleetbus

SRC = Path(fleetbus.__file__).parent

LAYERS: list[list[str]] = [
    [
        "fleetbus.js.acks",
        "fleetbus.natsconf",
        "fleetbus._version",
        "fleetbus._files",
        "fleetbus._background",
        "fleetbus._backlog",
        "fleetbus._terminal",
    ],
    ["fleetbus.errors"],
    ["fleetbus.telemetry"],
    ["fleetbus.wire"],
    ["fleetbus.fleet"],
    ["fleetbus.js"],
    ["fleetbus.server", "fleetbus.security"],
    ["fleetbus.provision"],
    ["fleetbus.tasks", "fleetbus.presence"],
    ["fleetbus.deadletters"],
    ["fleetbus.environment"],
    ["fleetbus.client"],
    ["fleetbus.runtime"],
    ["fleetbus.ops"],
    ["fleetbus.deploy"],
    ["fleetbus.mcp", "fleetbus.dashboard"],
    ["fleetbus.cli", "fleetbus.testing"],
    ["fleetbus.__main__", "fleetbus"],
]
"""Bottom up. A module may import from its own component or from a lower layer; components
of one layer (server | security, the fronts) are independent of each other."""


def _component(module: str) -> tuple[int, str]:
    best: tuple[int, str] | None = None
    for level, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (
                best is None or len(name) > len(best[1])
            ):
                best = (level, name)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fleetbus"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.startswith("fleetbus"):
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in _modules() else base)
    return found


def test_every_import_goes_down_the_layers() -> None:
    wrong: list[str] = []
    for module, path in sorted(_modules().items()):
        level, component = _component(module)
        for target in sorted(_imports(module, path)):
            their_level, theirs = _component(target)
            if theirs == component or their_level < level:
                continue
            wrong.append(f"{module} ({component}) imports {target} ({theirs})")
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(wrong)


def test_only_one_module_touches_nats_py_internals() -> None:
    internals = re.compile(
        r"\b(nc|sub|client|self\._nc)\._[a-z]|_server_info|_send_command|_pending_queue"
    )
    offenders = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for path in SRC.rglob("*.py")
        if path.name != "_natspy.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if internals.search(line)
    ]
    assert not offenders, "nats-py internals outside fleetbus.js._natspy:\n" + "\n".join(offenders)


def test_long_modules_say_why_they_are_one_piece() -> None:
    long = []
    for module, path in _modules().items():
        lines = path.read_text().count("\n")
        if lines > 400:
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            if "one piece" not in doc.lower():
                long.append(f"{module}: {lines} lines")
    assert not long, "split these, or say in the docstring why each is one piece:\n" + "\n".join(
        long
    )


def _public_types(cls: type) -> set[type]:
    """The fleetbus classes that ``cls``'s public methods return or accept."""
    out: set[type] = set()
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") or not callable(member):
            continue
        try:
            hints = typing.get_type_hints(member, vars(fleetbus) | vars(typing))
        except Exception:
            continue
        for hint in hints.values():
            for arg in _flatten(hint):
                if isinstance(arg, type) and arg.__module__.startswith("fleetbus."):
                    out.add(arg)
    return out


def _flatten(hint: object) -> list[object]:
    args = typing.get_args(hint)
    return [hint] if not args else [a for arg in args for a in _flatten(arg)]


def test_the_types_users_receive_are_exported() -> None:
    exported = {getattr(fleetbus, name) for name in fleetbus.__all__ if name != "__version__"}
    users_touch = [fleetbus.Fleet, fleetbus.TaskHandle, fleetbus.Agent, fleetbus.Meeting]
    missing = sorted(
        f"{t.__module__}.{t.__qualname__}"
        for cls in users_touch
        for t in _public_types(cls)
        if t not in exported
    )
    assert not missing, "returned or accepted by the public API but not in fleetbus.__all__:\n" + (
        "\n".join(missing)
    )


def test_everything_in_all_is_importable() -> None:
    for name in fleetbus.__all__:
        assert hasattr(fleetbus, name), name
