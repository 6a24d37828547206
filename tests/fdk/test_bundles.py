"""Function bundles: how images resolve to directories, and func.yaml entrypoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from runnerpool.fdk import BundleError, Bundles


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "team" / "hello").mkdir(parents=True)
    (tmp_path / "team" / "hello" / "func.py").write_text("def handler(ctx, data=None): ...\n")
    (tmp_path / "team" / "hello" / "requirements.txt").write_text("six\n")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "func.py").write_text("def handler(ctx, data=None): ...\n")
    return tmp_path


class TestResolve:
    def test_defaults(self, root: Path) -> None:
        """A bundle with func.py runs its ``handler``; no requirements means none."""
        bundle = Bundles(root).resolve("plain")
        assert (bundle.path, bundle.module, bundle.entrypoint) == (
            root / "plain",
            root / "plain" / "func.py",
            "handler",
        )
        assert bundle.requirements == ""

    def test_tag_and_namespace(self, root: Path) -> None:
        """``team/hello:0.0.2`` is the bundle ``team/hello``; its requirements are read."""
        bundle = Bundles(root).resolve("team/hello:0.0.2")
        assert bundle.path == root / "team" / "hello"
        assert bundle.requirements == "six\n"

    def test_environment_key_follows_requirements(self, root: Path) -> None:
        """Bundles with equal requirements share an environment; different ones do not."""
        bundles = Bundles(root)
        (root / "other").mkdir()
        (root / "other" / "func.py").write_text("")
        assert bundles.resolve("other").environment_key == bundles.resolve("plain").environment_key
        assert (
            bundles.resolve("team/hello").environment_key
            != bundles.resolve("plain").environment_key
        )

    @pytest.mark.parametrize("image", ["missing", "../escape", "/etc", "", "team"])
    def test_no_bundle(self, root: Path, image: str) -> None:
        """Unknown images, and paths out of the root, are refused with a clear error."""
        with pytest.raises(BundleError):
            Bundles(root).resolve(image)

    def test_func_yaml(self, root: Path) -> None:
        """func.yaml's entrypoint names the module (``/function`` is the bundle) and handler."""
        bundle_dir = root / "yaml"
        bundle_dir.mkdir()
        (bundle_dir / "app.py").write_text("")
        (bundle_dir / "func.yaml").write_text(
            "name: yaml\nentrypoint: /python/bin/fdk /function/app.py main\n"
        )
        bundle = Bundles(root).resolve("yaml")
        assert (bundle.module, bundle.entrypoint) == (bundle_dir / "app.py", "main")

    @pytest.mark.parametrize(
        ("text", "error"),
        [
            ("entrypoint: [unclosed\n", "not valid YAML"),
            ("entrypoint: /python/bin/fdk\n", "names no .py file"),
        ],
    )
    def test_bad_func_yaml(self, root: Path, text: str, error: str) -> None:
        """A malformed func.yaml is refused, naming the problem."""
        (root / "plain" / "func.yaml").write_text(text)
        with pytest.raises(BundleError, match=error):
            Bundles(root).resolve("plain")

    def test_images(self, root: Path) -> None:
        """Every directory with a func.py or func.yaml is a bundle."""
        assert Bundles(root).images() == ["plain", "team/hello"]
