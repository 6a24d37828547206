"""Config keys that would run code in a function's interpreter, loader or shell are refused."""

from __future__ import annotations

import pytest

from runnerpool._unsafe_env import unsafe_config_key
from runnerpool.lb._registry import ConfigError, Registry

UNSAFE = [
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "PYTHONWARNINGS",
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PYTHONHOME",
    "pythonpath",
    "BROWSER",
    "PERL5OPT",
    "BASH_ENV",
    "ENV",
    "BASH_FUNC_ls%%",
    "GCONV_PATH",
    "NODE_OPTIONS",
    "GIT_SSH_COMMAND",
    "OPENSSL_CONF",
    "PATH",
]


class TestUnsafeKeys:
    @pytest.mark.parametrize("key", UNSAFE)
    def test_refused(self, key: str) -> None:
        """Each variable that steers how code starts is refused, and the reason says so."""
        assert "is refused" in (unsafe_config_key(key) or "")

    @pytest.mark.parametrize("key", ["GREETING", "DB_URL", "FN_CUSTOM", "ENVIRONMENT", "HOME"])
    def test_ordinary_keys_pass(self, key: str) -> None:
        """Ordinary configuration passes."""
        assert unsafe_config_key(key, "value") is None

    @pytest.mark.parametrize(("key", "value"), [("", "x"), ("A=B", "x"), ("A", "x\0y")])
    def test_malformed_entries(self, key: str, value: str) -> None:
        """Names and values an environment cannot hold are refused too."""
        assert unsafe_config_key(key, value) is not None


class TestFunctionsFile:
    def test_app_config_error_names_the_line(self) -> None:
        """An app's PYTHONWARNINGS is a load error at its own line."""
        text = "\n".join(
            [
                "[[apps]]",
                'name = "a"',
                "[apps.config]",
                'GREETING = "hi"',
                'PYTHONWARNINGS = "all:0:antigravity.x:0:0"',
                "[[functions]]",
                'id = "f"',
                'name = "f"',
                'app = "a"',
                'image = "i"',
                "",
            ]
        )
        with pytest.raises(ConfigError) as caught:
            Registry.from_toml(text, "fns.toml")
        assert (caught.value.line, caught.value.field) == (5, "apps[0].config.PYTHONWARNINGS")
        assert "PYTHONWARNINGS is refused" in str(caught.value)

    def test_function_config_error_names_the_line(self) -> None:
        """A function's LD_PRELOAD is a load error at its line."""
        text = "\n".join(
            [
                "[[apps]]",
                'name = "a"',
                "[[functions]]",
                'id = "f"',
                'name = "f"',
                'app = "a"',
                'image = "i"',
                'config = { LD_PRELOAD = "/tmp/x.so" }',
                "",
            ]
        )
        with pytest.raises(ConfigError) as caught:
            Registry.from_toml(text, "fns.toml")
        assert caught.value.line == 8
        assert str(caught.value).startswith("fns.toml:8: functions[0].config.LD_PRELOAD: ")

    def test_image_with_control_characters(self) -> None:
        """A function's image with a control character is a load error at its line."""
        text = '[[apps]]\nname = "a"\n[[functions]]\nid = "f"\nname = "f"\napp = "a"\n'
        text += 'image = "hello\\u0000"\n'
        with pytest.raises(ConfigError, match="none of them control characters") as caught:
            Registry.from_toml(text, "fns.toml")
        assert caught.value.line == 7
