r"""Call codec benchmark: ``Call.from_json`` and ``Call.to_json`` against the Go-exact codec.

The baseline is the codec runnerpool had before issue #13: a byte-exact port of Go's
``encoding/json`` (``_gojson.py``, ``_model.py``, ``_model_fast.py``), read from git at
``--baseline`` (default: the last commit that had it) into a temporary package, so both run in
this process, interleaved. Its encoder wrote Go's exact bytes, so the documents decoded here are
the ones Go's ``json.Marshal`` writes for each call (``&`` written ``\u0026`` and so on).

Calls:

* ``plain``: the Engage benchmark's call (``bench.grpc_stacks.CALL_JSON``, the spec's sync call
  of section 6.3): no query string, no annotations, no cpus.
* ``query+annotations``: the trigger call Fn's LB built in the recorded session (a URL with a
  query string, in the URL and a header; four annotations, one an object), with ``cpus``.

For each call: microseconds per decode and per encode, best of ``--repeats`` rounds of
``--number`` operations, and the new codec's speed-up over the baseline. Without git or the
baseline commit, the new codec is measured alone.

Run: ``python -m bench.codec`` (``--help`` for the knobs).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.grpc_stacks import CALL_JSON
from runnerpool import Call

BASELINE_REV = "1c701f0"
"""The last commit with the Go-exact codec."""
ROOT = Path(__file__).resolve().parents[1]
BASELINE_FILES = ("_gojson.py", "_model.py", "_model_fast.py")
APP_ID = "01M8V7QVBPR00040JY20000001"
FN_ID = "01M8V7R8KNR00040JY20000003"
TRIGGER_URL = "http://127.0.0.1:24082/t/myapp/hello?a=1&a=2"


def calls() -> dict[str, dict[str, Any]]:
    """Each benchmark call's fields, by name."""
    template = Call.from_json(CALL_JSON)
    plain: dict[str, Any] = {f.name: getattr(template, f.name) for f in dataclasses.fields(Call)}
    query: dict[str, Any] = {
        **plain,
        "id": "01M8V7WC86R00040JY28000001",
        "image": "httpinfo:0.0.1",
        "url": TRIGGER_URL,
        "timeout": 20,
        "idle_timeout": 40,
        "memory": 256,
        "cpus": 100,
        "config": {"APP_CFG": "a1", "FN_MEMORY": "256", "FN_FN_ID": FN_ID, "FN_APP_ID": APP_ID},
        "annotations": {
            "example.com/team": '"blue"',
            "example.com/shared": '"fn"',
            "example.com/fnonly": '{"n":1}',
            "fnproject.io/fn/invokeEndpoint": f'"http://127.0.0.1:24080/invoke/{FN_ID}"',
        },
        "headers": {
            "Content-Type": ["text/plain"],
            "Fn-Http-H-X-Dup": ["d1", "d2"],
            "Fn-Http-Method": ["POST"],
            "Fn-Http-Request-Url": [TRIGGER_URL],
            "Fn-Intent": ["httprequest"],
        },
        "syslog_url": "tcp://127.0.0.1:24999",
        "app_id": APP_ID,
        "fn_id": FN_ID,
        "trigger_id": "01M8V7RGCTR00040JY20000008",
    }
    return {"plain": plain, "query+annotations": query}


def load_baseline(rev: str, into: Path) -> ModuleType | None:
    """Import the baseline's ``_model`` from git, or return ``None`` if git cannot give it."""
    package = into / "runnerpool_baseline_codec"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in BASELINE_FILES:
        shown = subprocess.run(
            ["git", "show", f"{rev}:src/runnerpool/{name}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if shown.returncode != 0:
            print(f"baseline unavailable ({rev}: {shown.stderr.strip()}); new codec only")
            return None
        (package / name).write_text(shown.stdout)
    sys.path.insert(0, str(into))
    return importlib.import_module("runnerpool_baseline_codec._model")


def best_us(operation: Callable[[], object], number: int, repeats: int) -> float:
    """Microseconds per operation, best of ``repeats`` rounds."""
    return min(timeit.repeat(operation, number=number, repeat=repeats)) / number * 1e6


def measure(
    baseline: ModuleType | None, number: int, repeats: int
) -> list[tuple[str, str, float, float | None]]:
    """Rows of (call, operation, new µs, baseline µs)."""
    rows: list[tuple[str, str, float, float | None]] = []
    for name, fields in calls().items():
        new_call = Call(**fields)
        # The baseline wrote Go's exact bytes; without it, ours stand in (also valid Go input).
        old_call = None if baseline is None else baseline.Call(**fields)
        document = new_call.to_json() if old_call is None else old_call.to_json()
        if Call.from_json(document) != new_call:
            raise RuntimeError(f"{name}: the new codec misread the document")
        operations: list[tuple[str, Callable[[], object], Callable[[], object] | None]] = [
            ("decode", partial(Call.from_json, document), None),
            ("encode", new_call.to_json, None if old_call is None else old_call.to_json),
        ]
        if baseline is not None:
            operations[0] = ("decode", operations[0][1], partial(baseline.Call.from_json, document))
        for operation, new, old in operations:
            new_rounds: list[float] = []
            old_rounds: list[float] = []
            for _ in range(repeats):  # interleaved, so machine noise hits both alike
                new_rounds.append(best_us(new, number, 1))
                if old is not None:
                    old_rounds.append(best_us(old, number, 1))
            rows.append((name, operation, min(new_rounds), min(old_rounds, default=None)))
    return rows


def print_table(rows: Sequence[tuple[str, str, float, float | None]]) -> None:
    """Print one line per call and operation."""
    print(f"{'call':<18} {'op':<7} {'new µs':>8} {'Go-exact µs':>12} {'speed-up':>9}")
    for name, operation, new_us, old_us in rows:
        old = "" if old_us is None else f"{old_us:.1f}"
        ratio = "" if old_us is None else f"{old_us / new_us:.1f}x"
        print(f"{name:<18} {operation:<7} {new_us:>8.1f} {old:>12} {ratio:>9}")


def main(argv: Sequence[str] | None = None) -> None:
    """Measure both codecs and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--number", type=int, default=5000, help="operations per round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; best kept")
    parser.add_argument("--baseline", default=BASELINE_REV, help="git revision of the baseline")
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}; baseline {args.baseline}")
    with tempfile.TemporaryDirectory(prefix="runnerpool-codec-") as tmp:
        baseline = load_baseline(args.baseline, Path(tmp))
        try:
            rows = measure(baseline, args.number, args.repeats)
        finally:
            if baseline is not None:
                sys.path.remove(tmp)
    print_table(rows)


if __name__ == "__main__":
    main()
