"""What a table's conditions say in a diagram, carried by the condition functions themselves.

Every condition a machine table names is decorated with ``@condition``: the words a reviewer
reads on the edge (and, where a later row of the same trigger is reached only when it did not
hold, the words for that), or the policy action kind whose rows satisfy it (``policy="fail"``:
the edge is labelled with those rows' signals). ``machines/diagrams/graph.py`` reads the labels
and refuses a condition without one, so a new condition cannot reach a diagram as a function
name.

A callback can say what its edge implies too: ``take_exhausted`` runs only where the retry
bound is spent (``@implies_not(retry_allowed)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_LABEL = "__condition_label__"
_IMPLIES_NOT = "__implies_not__"


@dataclass(frozen=True, slots=True)
class ConditionLabel:
    """How a condition reads in a diagram."""

    #: Its words ("attempts left"); None for a policy condition read from its rows alone.
    text: str | None
    #: Its words when a later row is reached because it did not hold (default: "not <text>").
    negated: str | None
    #: The policy action kind whose rows satisfy it ("fail", "retry"...), if it is one.
    policy: str | None


def condition(text: str | None = None, *, negated: str | None = None,
              policy: str | None = None) -> Callable[[F], F]:
    """Label a condition: ``@condition("attempts left", negated="attempts used up")``, or
    ``@condition(policy="fail")`` for one that holds for the policy rows of that kind."""
    if text is None and policy is None:
        raise ValueError("a condition needs words or a policy action kind")

    def mark(func: F) -> F:
        setattr(func, _LABEL, ConditionLabel(text, negated, policy))
        return func

    return mark


def label_of(func: Callable[..., Any]) -> ConditionLabel:
    """The label of a table's condition; ``TypeError`` naming it when it has none."""
    label = getattr(func, _LABEL, None)
    if not isinstance(label, ConditionLabel):
        name = getattr(func, "__qualname__", repr(func))
        module = getattr(func, "__module__", "?")
        raise TypeError(f"condition {module}.{name} has no label: decorate it with "
                        "@condition(...) from brokergate.machines._labels")
    return label


def negated_text(func: Callable[..., Any]) -> str:
    """What a later row of the trigger implies when ``func`` held for an earlier one."""
    label = label_of(func)
    if label.negated is not None:
        return label.negated
    if label.text is None:
        raise TypeError(f"policy condition {func.__qualname__} has no words for its negation")
    return f"not {label.text}"


def implies_not(cond: Callable[..., Any]) -> Callable[[F], F]:
    """Mark a callback whose edge is taken only where ``cond`` did not hold."""

    def mark(func: F) -> F:
        setattr(func, _IMPLIES_NOT, cond)
        return func

    return mark


def implied_not(func: Callable[..., Any]) -> Callable[..., Any] | None:
    """The condition a callback's edge implies did not hold (``implies_not``), if any."""
    cond: Callable[..., Any] | None = getattr(func, _IMPLIES_NOT, None)
    return cond
