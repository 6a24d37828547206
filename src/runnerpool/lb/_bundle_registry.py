"""A registry of the function bundles in a directory: what ``runnerpool dev --bundles`` serves.

Each sub-directory holding ``func.py`` or ``func.yaml`` is one function of one app, named
by its ``func.yaml`` (:mod:`._func_yaml`) or else by the directory; its image is the
directory's name, which the runners resolve to the same bundle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._func_yaml import bundle_function
from ._registry import App, ConfigError, Registry

if TYPE_CHECKING:
    from pathlib import Path

    from ._registry import Function

__all__ = ["DEV_APP", "bundle_directories", "registry_from_bundles"]

#: The app of the functions found in a bundles directory.
DEV_APP = "dev"
#: Directories that are never bundles: caches and tools' own.
_NOT_BUNDLES = frozenset({"__pycache__", "node_modules"})


def bundle_directories(root: Path) -> list[Path]:
    """Return the bundles under ``root``: its sub-directories with ``func.py`` or ``func.yaml``.

    Hidden directories (``.git``, ``.venv``) and caches are skipped; the order is by name.
    """
    return sorted(
        path
        for path in root.iterdir()
        if path.is_dir()
        and not path.name.startswith(".")
        and path.name not in _NOT_BUNDLES
        and ((path / "func.py").is_file() or (path / "func.yaml").is_file())
    )


def registry_from_bundles(root: Path, app_name: str = DEV_APP) -> Registry:
    """Return one function per bundle under ``root``, all in one app.

    Args:
        root: The directory of bundles.
        app_name: The app's name and id.

    Returns:
        The registry; it has no functions if ``root`` holds no bundle.

    Raises:
        ConfigError: If ``root`` is not a directory, a ``func.yaml`` is invalid, or two
            bundles declare the same name.
    """
    if not root.is_dir():
        raise ConfigError(str(root), None, None, "not a directory of function bundles")
    app = App(id=app_name, name=app_name)
    functions: list[Function] = []
    first: dict[str, Path] = {}
    for directory in bundle_directories(root):
        function = bundle_function(directory, image=directory.name, app=app)
        if function.id in first:
            raise ConfigError(
                str(directory / "func.yaml"),
                None,
                "name",
                f"duplicate function name {function.id!r} (also the bundle {first[function.id]})",
            )
        first[function.id] = directory
        functions.append(function)
    return Registry([app], functions)
