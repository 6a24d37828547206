"""Metric tags: where each label value of the placer and agent views comes from.

Fn labels its views with the tag keys an embedder registers, and reads the values from the
request's context. runnerpool does the same with :func:`tagged`, and fills three keys itself:

* ``fn_id`` and ``app_id``: the call's function and app (``call.model``), unless a
  :func:`tagged` block sets them;
* ``runner``: the address of the runner an attempt went to. It labels only the views that
  are recorded per runner (an attempt's outcome, a runner's reported latencies); a view
  recorded once per call has no ``runner`` label at all, since no single runner explains it.

Each tag multiplies the series of every view it labels: ``fn_id`` by the functions called,
``runner`` by the runners, ``app_id`` by the apps (README, "Metrics").
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from operator import attrgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from ._model import Call

__all__ = [
    "LB_TAG_KEYS",
    "RUNNER_TAG",
    "TagPlan",
    "check_keys",
    "check_lb_tags",
    "current_tags",
    "parse_lb_tags",
    "tagged",
]

#: The tag keys the load balancer can fill by itself, in the order the docs list them.
LB_TAG_KEYS = ("fn_id", "app_id", "runner")

#: The tag key whose value is the runner an attempt went to.
RUNNER_TAG = "runner"
#: The tag keys whose values are attributes of the call's model of the same name.
_MODEL_KEYS = frozenset({"fn_id", "app_id"})

TAGS: ContextVar[Mapping[str, str]] = ContextVar(
    "runnerpool_metric_tags", default=MappingProxyType({})
)
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@contextlib.contextmanager
def tagged(**values: str) -> Iterator[None]:
    """Set metric tag values for the code inside the ``with`` block (and tasks it starts).

    Tags set here add to, and override, the ones already set by an enclosing block; they
    also override the values the load balancer takes from the call (``fn_id``, ``app_id``).

    Args:
        **values: Tag name to value, e.g. ``fn_id="f1"``.
    """
    token = TAGS.set({**TAGS.get(), **values})
    try:
        yield
    finally:
        TAGS.reset(token)


def current_tags(keys: Sequence[str]) -> tuple[str, ...]:
    """Return the values of these tag keys in the current context (``""`` when unset)."""
    if not keys:
        return ()
    values = TAGS.get()
    return tuple([values.get(key, "") for key in keys])


def check_keys(tag_keys: Sequence[str]) -> tuple[str, ...]:
    """Return the tag keys as a tuple, checked.

    Raises:
        ValueError: If a key is not a valid Prometheus label name, or one repeats.
    """
    keys = tuple(tag_keys)
    for key in keys:
        if not _LABEL_NAME.match(key) or key.startswith("__"):
            raise ValueError(f"tag key {key!r} is not a valid Prometheus label name")
    if len(set(keys)) != len(keys):
        raise ValueError(f"tag keys must be distinct: {keys}")
    return keys


def parse_lb_tags(text: str) -> tuple[str, ...]:
    """Parse a comma-separated list of the load balancer's tag keys (``"fn_id,runner"``).

    Blanks around keys are ignored; an empty text means no tags.

    Raises:
        ValueError: If a key is not one of :data:`LB_TAG_KEYS`, or one repeats.
    """
    return check_lb_tags(key.strip() for key in text.split(",") if key.strip())


def check_lb_tags(keys: Iterable[str]) -> tuple[str, ...]:
    """Return the load balancer's tag keys as a tuple, checked.

    Raises:
        ValueError: If a key is not one of :data:`LB_TAG_KEYS`, or one repeats.
    """
    keys = tuple(keys)
    unknown = [key for key in keys if key not in LB_TAG_KEYS]
    if unknown:
        raise ValueError(
            f"unknown metric tag {unknown[0]!r}: choose among {', '.join(LB_TAG_KEYS)}"
        )
    return check_keys(keys)


class TagPlan:
    """Where the values of a set of tag keys come from, for the views of one registration.

    Args:
        keys: The registered tag keys (checked with :func:`check_keys`).

    Attributes:
        keys: Every key: the labels of the views recorded per runner.
        call_keys: The keys without ``runner``: the labels of the views recorded per call.
    """

    __slots__ = ("_getter", "_runner_index", "_single", "call_keys", "keys")

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = check_keys(keys)
        self.call_keys = tuple(key for key in self.keys if key != RUNNER_TAG)
        self._runner_index = self.keys.index(RUNNER_TAG) if RUNNER_TAG in self.keys else None
        # The usual case, only the call's own ids and no tagged() block, reads them in one
        # C call: a quarter of the general path's time (docs/benchmarks.md).
        self._getter = (
            attrgetter(*self.call_keys)
            if self.call_keys and set(self.call_keys) <= _MODEL_KEYS
            else None
        )
        self._single = len(self.call_keys) == 1

    def call_tags(self, model: Call) -> tuple[str, ...]:
        """Return the values of :attr:`call_keys` for a call, in the current context."""
        keys = self.call_keys
        if not keys:
            return ()
        values = TAGS.get()
        getter = self._getter
        if getter is not None and not values:
            found: str | tuple[str, ...] = getter(model)
            return (cast("str", found),) if self._single else cast("tuple[str, ...]", found)
        return tuple([values.get(key) or _from_model(key, model) for key in keys])

    def runner_tags(self, call_tags: tuple[str, ...], address: str) -> tuple[str, ...]:
        """Return the values of :attr:`keys`: ``call_tags`` with the runner's address added."""
        index = self._runner_index
        if index is None:
            return call_tags
        if index == 0:
            return (address, *call_tags)
        if index == len(call_tags):
            return (*call_tags, address)
        return (*call_tags[:index], address, *call_tags[index:])


def _from_model(key: str, model: Call) -> str:
    if key == "fn_id":
        return model.fn_id
    if key == "app_id":
        return model.app_id
    return ""
