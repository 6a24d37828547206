"""Configuration keys a function's environment must not carry: they run code or steer loaders.

A call's ``config`` becomes its function process's environment. Some variables are read by the
dynamic loader, an interpreter or a shell before any function code runs, and turn into code
execution: ``PYTHONWARNINGS=all:0:antigravity.x:0:0`` imports a module, which opens
``$BROWSER`` as a shell command. Both the load balancer's functions file and the runner refuse
them, by name (case-insensitive: some tools fold case).
"""

from __future__ import annotations

__all__ = ["unsafe_config_key"]

#: Prefixes of families that change how a program starts, loads or interprets code.
_PREFIXES = (
    "LD_",  # the dynamic loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT
    "DYLD_",  # macOS's loader
    "PYTHON",  # PYTHONSTARTUP, PYTHONPATH, PYTHONHOME, PYTHONWARNINGS (imports a module) ...
    "PERL",  # PERL5OPT (-M runs a module), PERL5LIB, PERL5DB
    "RUBY",  # RUBYOPT (-r), RUBYLIB
    "NODE_",  # NODE_OPTIONS (--require)
    "BASH_FUNC_",  # exported shell functions, run in place of commands
    "GIT_",  # GIT_SSH_COMMAND, GIT_EXTERNAL_DIFF, GIT_PAGER, GIT_CONFIG_* ...
)
#: Single variables that name a program to run or a file of code to load.
_NAMES = frozenset(
    {
        "BROWSER",  # webbrowser runs it as a command line
        "BASH_ENV",  # sourced by every non-interactive bash
        "ENV",  # sourced by sh (dash) and bash in POSIX mode
        "SHELLOPTS",  # xtrace with PS4 runs command substitutions
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "IFS",
        "GCONV_PATH",  # glibc's iconv loads shared objects from it
        "GLIBC_TUNABLES",
        "OPENSSL_CONF",  # may load an engine (a shared object)
        "OPENSSL_ENGINES",
        "OPENSSL_MODULES",
        "JAVA_TOOL_OPTIONS",  # -javaagent
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "PAGER",
        "EDITOR",
        "VISUAL",
        "SSH_ASKPASS",
        "PATH",  # the runner sets it: a config PATH could put a function's /tmp first
    }
)


def unsafe_config_key(key: str, value: str = "") -> str | None:
    """Return why a config entry may not become a function's environment, or ``None``.

    Args:
        key: The variable's name.
        value: Its value.
    """
    if not key:
        return "an environment variable needs a name"
    if "=" in key or "\0" in key or "\0" in value:
        return "environment variables cannot hold '=' in their name, nor NUL characters"
    upper = key.upper()
    if upper in _NAMES or upper.startswith(_PREFIXES):
        return (
            f"{key} is refused: it changes how the function's interpreter, loader or shell "
            "starts, and would run code chosen by the configuration"
        )
    return None
