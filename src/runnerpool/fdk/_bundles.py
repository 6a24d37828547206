"""Function bundles: where a call's ``image`` points when functions run as local processes.

Fn runs a function from a container image; runnerpool runs it from a *bundle*, a directory
holding what Fn's Python images hold under ``/function``: ``func.py`` (or a ``func.yaml``
naming the entrypoint, as Fn's CLI writes it) and an optional ``requirements.txt``. The
image ``echo:0.1`` resolves to the bundle ``<root>/echo`` (a tag, after the
last ``:``, is ignored: a bundle directory holds one version at a time).
"""

from __future__ import annotations

import hashlib
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

from ._errors import BundleError

__all__ = ["Bundle", "Bundles"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bundle:
    """One function bundle, ready to run.

    Attributes:
        image: The image name that resolved to it.
        path: The bundle's directory (the process's working directory).
        module: The function's module, ``func.py`` unless ``func.yaml`` says otherwise.
        entrypoint: The handler's name in the module (``handler`` by default).
        requirements: The bundle's ``requirements.txt``, as text (``""`` if none).
    """

    image: str
    path: Path
    module: Path
    entrypoint: str
    requirements: str

    @property
    def environment_key(self) -> str:
        """What its Python environment depends on: the digest of its requirements."""
        return hashlib.sha256(self.requirements.encode()).hexdigest()[:16]


class Bundles:
    """Resolves images to bundles under one root directory.

    Args:
        root: The directory holding the bundles, one sub-directory per image name.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def resolve(self, image: str) -> Bundle:
        """Return the bundle of an image.

        Raises:
            BundleError: If there is no bundle for the image, or it is malformed.
        """
        name = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        try:
            path = (self.root / name).resolve()
            found = bool(name) and path.is_relative_to(self.root) and path.is_dir()
        except (ValueError, OSError):
            # A NUL byte, or a name too long for the file system: no such bundle either.
            found = False
        if not found:
            # The client sees this message: it names the image, not the runner's directories.
            logger.warning("No function bundle for image %r under %s", image, self.root)
            raise BundleError(f"image {image!r}: no function bundle on this runner")
        module, entrypoint = _entrypoint(path, image)
        if not module.is_file():
            raise BundleError(f"image {image!r}: the bundle has no {module.name}")
        requirements = path / "requirements.txt"
        return Bundle(
            image=image,
            path=path,
            module=module,
            entrypoint=entrypoint,
            requirements=requirements.read_text() if requirements.is_file() else "",
        )

    def images(self) -> list[str]:
        """Return the image names of every bundle under the root.

        A bundle is a directory holding a ``func.py`` or a ``func.yaml``.
        """
        found = {
            marker.parent.relative_to(self.root).as_posix()
            for pattern in ("func.py", "func.yaml")
            for marker in self.root.rglob(pattern)
        }
        return sorted(found)


def _entrypoint(path: Path, image: str) -> tuple[Path, str]:
    """Read the module and handler from ``func.yaml``'s entrypoint, or use Fn's defaults.

    Fn's Python ``func.yaml`` says e.g. ``entrypoint: /python/bin/fdk /function/func.py
    handler``; the ``.py`` word names the module (``/function`` is the bundle) and the word
    after it the handler.
    """
    spec = path / "func.yaml"
    if not spec.is_file():
        return path / "func.py", "handler"
    try:
        document = yaml.safe_load(spec.read_text())
    except yaml.YAMLError as exc:
        raise BundleError(f"image {image!r}: func.yaml is not valid YAML: {exc}") from None
    entry = document.get("entrypoint") if isinstance(document, dict) else None
    if entry is None:
        return path / "func.py", "handler"
    words = shlex.split(str(entry))
    modules = [i for i, word in enumerate(words) if word.endswith(".py")]
    if not modules:
        raise BundleError(f"image {image!r}: func.yaml's entrypoint {entry!r} names no .py file")
    index = modules[0]
    module = Path(words[index].removeprefix("/function/"))
    handler = words[index + 1] if index + 1 < len(words) else "handler"
    return path / module, handler
