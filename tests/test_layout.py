"""The package layout: private modules stay in their package, and rpc sits below runner.

A module named ``_x`` (or a name ``_y``) is private to the package that holds it: that package
and its subpackages may import it, other packages may not. ``runnerpool``'s own private modules
(``_errors``, ``_model``, ``_context``...) are therefore shared by every subpackage.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: (importing module prefix, private module prefix) -> why the crossing is allowed. Empty, and
#: meant to stay so: what one package needs of another is public there (the runner protocol's
#: wire contract is ``runnerpool.rpc.wire``; what several packages share sits at the root).
ALLOWED: dict[tuple[str, str], str] = {}


def _imports() -> list[tuple[str, list[str], list[str]]]:
    """Return (importing module, its package's parts, imported module's parts) for src/."""
    found = []
    for path in sorted((SRC / "runnerpool").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        package = parts[:-1]
        if parts[-1] == "__init__":
            parts = package
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            if target[0] != "runnerpool":
                continue
            found.append((".".join(parts), package, target))
            found.extend(
                (".".join(parts), package, [*target, alias.name])
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            )
    return found


def test_no_private_name_crosses_a_package_boundary() -> None:
    """Outside the allow-list, a private module or name is imported only within its package."""
    crossings = set()
    for module, package, target in _imports():
        for index, part in enumerate(target):
            if part.startswith("_") and not part.startswith("__"):
                owner = target[:index]
                if package[: len(owner)] != owner:
                    crossings.add((module, ".".join(target)))
                break
    unexplained = sorted(
        (module, target)
        for module, target in crossings
        if not any(
            module.startswith(importer) and target.startswith(private)
            for importer, private in ALLOWED
        )
    )
    assert unexplained == []


def test_rpc_is_below_runner_and_the_service_packages() -> None:
    """The transport imports none of the packages above it, so no cycle can run through it."""
    above = ("runnerpool.runner", "runnerpool.lb", "runnerpool.pools", "runnerpool.fdk")
    upward = sorted(
        (module, ".".join(target))
        for module, _, target in _imports()
        if module.startswith("runnerpool.rpc") and ".".join(target).startswith(above)
    )
    assert upward == []
