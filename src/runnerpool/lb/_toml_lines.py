"""Finding the line of a key in TOML text: tomllib gives values without their positions.

A small scanner over the source: it follows table and array-of-tables headers and the keys
within them, so that a configuration error can name the line of the offending key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence

__all__ = ["BARE_KEY", "KeyPath", "locate"]

#: A TOML bare key: written without quotes.
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

#: A key's path: table names, array indices and keys, e.g. ``("functions", 1, "memory")``.
KeyPath = tuple[str | int, ...]


def locate(text: str, path: KeyPath) -> int | None:
    try:
        lines = _key_lines(text)
    except (ValueError, IndexError):
        return None
    for length in range(len(path), 0, -1):
        line = lines.get(path[:length])
        if line is not None:
            return line
    return None


def _key_lines(text: str) -> dict[KeyPath, int]:
    """Map each table and key of a valid TOML document to the line where it is defined."""
    lines: dict[KeyPath, int] = {}
    counts: dict[KeyPath, int] = {}
    table: KeyPath = ()
    value = _ValueScanner()
    for number, line in enumerate(text.split("\n"), start=1):
        if value.open:
            value.feed(line, 0)
            continue
        pos = len(line) - len(line.lstrip(" \t"))
        if not line[pos:].strip() or line[pos] == "#":
            continue
        if line[pos] == "[":
            is_array = line.startswith("[[", pos)
            parts, _ = _read_key(line, pos + (2 if is_array else 1))
            table = _resolve(parts[:-1] if is_array else parts, counts)
            if is_array:
                array = (*table, parts[-1])
                counts[array] = counts.get(array, 0) + 1
                lines.setdefault(array, number)
                table = (*array, counts[array] - 1)
            lines.setdefault(table, number)
            continue
        parts, pos = _read_key(line, pos)
        key = (*table, *parts)
        for length in range(len(table) + 1, len(key) + 1):
            lines.setdefault(key[:length], number)
        value.feed(line, pos + 1)
    return lines


def _resolve(parts: Sequence[str], counts: Mapping[KeyPath, int]) -> KeyPath:
    # A name that is an array of tables means its last element so far, as in TOML.
    path: KeyPath = ()
    for part in parts:
        path = (*path, part)
        if path in counts:
            path = (*path, counts[path] - 1)
    return path


def _read_key(line: str, pos: int) -> tuple[list[str], int]:
    """Read a dotted key at ``pos``; return its parts and the position after it."""
    parts: list[str] = []
    while True:
        pos = _skip_blanks(line, pos)
        if line[pos] == '"':
            end = _string_end(line, pos)
            parts.append(str(tomllib.loads(f"k = {line[pos:end]}")["k"]))
        elif line[pos] == "'":
            end = line.index("'", pos + 1) + 1
            parts.append(line[pos + 1 : end - 1])
        else:
            match = BARE_KEY.match(line, pos)
            if match is None:
                raise ValueError(f"no key at column {pos + 1}")
            end = match.end()
            parts.append(match[0])
        pos = _skip_blanks(line, end)
        if not line.startswith(".", pos):
            return parts, pos
        pos += 1


def _skip_blanks(line: str, pos: int) -> int:
    while pos < len(line) and line[pos] in " \t":
        pos += 1
    return pos


def _string_end(line: str, pos: int) -> int:
    """Return the position after the one-line basic string that starts at ``pos``."""
    pos += 1
    while line[pos] != '"':
        pos += 2 if line[pos] == "\\" else 1
    return pos + 1


class _ValueScanner:
    """Follows multi-line strings and brackets, so that lines inside a value are not keys."""

    __slots__ = ("closing", "depth")

    def __init__(self) -> None:
        self.depth = 0
        self.closing: str | None = None

    @property
    def open(self) -> bool:
        return self.depth > 0 or self.closing is not None

    def feed(self, line: str, pos: int) -> None:
        while pos < len(line):
            if self.closing is not None:
                pos = self._close(line, pos, self.closing)
                if pos < 0:
                    return
                self.closing = None
            elif line.startswith(('"""', "'''"), pos):
                self.closing = line[pos : pos + 3]
                pos += 3
            elif line[pos] == "#":
                return
            elif line[pos] == '"':
                pos = _string_end(line, pos)
            elif line[pos] == "'":
                pos = line.index("'", pos + 1) + 1
            else:
                self.depth += (line[pos] in "[{") - (line[pos] in "]}")
                pos += 1

    @staticmethod
    def _close(line: str, pos: int, closing: str) -> int:
        """Return the position after ``closing`` ends the string, or -1 if it does not here."""
        while pos < len(line):
            if closing == '"""' and line[pos] == "\\":
                pos += 2
            elif line.startswith(closing, pos):
                # In a run of four or five quotes, the first one or two are content.
                end = pos + 3
                while end < len(line) and end < pos + 5 and line[end] == closing[0]:
                    end += 1
                return end
            else:
                pos += 1
        return -1
