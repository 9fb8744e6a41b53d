"""The runtime machine: ``transitions.Machine`` run the short way, and ``build_machine``.

Stock transitions resolves callbacks by name on each call, writes a debug log record around
every step (six per transition, each a logger call even when debug logging is off) and looks
every state up through several layers of accessors. Every callback here is a function taking
the EventData (``send_event=True``), every state a string, and the model's state lives in
``model.state``, so the runtime machine takes the short road through the same steps, in
transitions' own order:

    prepare_event; for each edge from the current state: prepare, conditions (first edge whose
    conditions hold wins), before_state_change, before, exit the source, set the state, enter
    the destination, on_final, after, after_state_change; finalize_event; on_exception if one
    raised.

This module alone reaches into transitions' internals, and ``pyproject.toml`` bounds the
dependency (``transitions>=0.9.2,<0.10``) because of it. What it relies on:

- ``Event._trigger(event_data)`` and ``Event.trigger(model, ...)``: overridden (``_Event``);
  ``Event.transitions`` (a dict: source state name -> list of ``Transition``) and
  ``Event.machine`` are read.
- ``Transition.execute(event_data)`` and ``Transition._change_state(event_data)``: overridden
  (``_Transition``); ``Transition.prepare / conditions / before / after`` (lists of callables,
  here functions) and ``.source`` / ``.dest`` (state names) are read;
  ``Transition.condition_cls`` is set.
- ``Condition.func`` and ``Condition.target`` (``_Condition.check`` is overridden).
- ``Machine._process(callable)``: queueing (``queued=True``: a trigger fired from inside a
  callback runs after the current one) is transitions' own, untouched.
- ``Machine.transition_cls``, ``Machine.event_cls`` (set), ``Machine.callbacks`` (overridden),
  and the machine's callback lists ``before_state_change``, ``after_state_change``,
  ``prepare_event``, ``finalize_event``, ``on_exception``, ``on_final``.
- ``Machine.states`` (name -> ``State``: ``.name``, ``.on_enter``, ``.on_exit``, ``.final``)
  and ``Machine.events`` (name -> ``Event``).
- ``EventData(state, event, machine, model, args, kwargs)`` and its fields ``state``,
  ``transition``, ``result``, ``error``, ``model``, ``machine``, ``event``, ``kwargs``.

The machines are built from the same definitions as the diagrams, and
tests/test_runtime_equivalence.py drives every broker's models through stock transitions and
through this machine side by side (random walks, and every trigger from every state that has an
edge for it) and compares states, commands and model fields. It halves the machine's cost per
transition (bench/transitions.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from transitions import Event as TransitionsEvent
from transitions import EventData, Machine
from transitions.core import Condition, Transition

from brokergate.machines._edges import record
from brokergate.machines._states import DISCONNECTED


class _Condition(Condition):
    def check(self, event_data: EventData) -> bool:
        # A function, never a name: _check_callables refused names when the machine was built.
        return bool(self.func(event_data) == self.target)  # type: ignore[operator]


class _Transition(Transition):
    condition_cls = _Condition

    def execute(self, event_data: EventData) -> bool:
        machine: Any = event_data.machine  # its callback lists hold functions only
        for func in self.prepare:
            func(event_data)  # type: ignore[operator]
        for condition in self.conditions:
            if condition.func(event_data) != condition.target:  # type: ignore[operator]
                return False
        for func in machine.before_state_change:
            func(event_data)
        for func in self.before:
            func(event_data)  # type: ignore[operator]
        if self.dest:  # None: an internal transition, no change of state
            self._change_state(event_data)
        for func in self.after:
            func(event_data)  # type: ignore[operator]
        for func in machine.after_state_change:
            func(event_data)
        return True

    def _change_state(self, event_data: EventData) -> None:
        machine: Any = event_data.machine
        states = machine.states
        for func in states[self.source].on_exit:
            func(event_data)
        dest = states[self.dest]
        model: Any = event_data.model
        model.state = self.dest
        event_data.state = dest
        for func in dest.on_enter:
            func(event_data)
        if dest.final:
            for func in machine.on_final:
                func(event_data)


class _Event(TransitionsEvent):
    def trigger(self, model: Any, *args: Any, **kwargs: Any) -> bool:
        data = EventData(None, self, self.machine, model, args=args, kwargs=kwargs)
        return bool(self.machine._process(partial(self._trigger, data)))

    def _trigger(self, event_data: EventData) -> bool:
        machine: Any = self.machine
        model: Any = event_data.model
        try:
            state = machine.states[model.state]
            event_data.state = state
            edges = self.transitions.get(state.name)
            if edges is not None:  # otherwise ignored, as ignore_invalid_triggers asks
                for func in machine.prepare_event:
                    func(event_data)
                for trans in edges:
                    event_data.transition = trans
                    if trans.execute(event_data):
                        event_data.result = True
                        break
        except BaseException as err:
            event_data.error = err  # type: ignore[assignment]  # as transitions does
            if not machine.on_exception:
                raise
            for func in machine.on_exception:
                func(event_data)
        finally:
            for func in machine.finalize_event:
                func(event_data)
        return bool(event_data.result)


class RuntimeMachine(Machine):
    """``transitions.Machine`` for function callbacks and string states, run the short way
    (see the module's docstring)."""

    transition_cls = _Transition
    event_cls = _Event

    def callbacks(self, funcs: Iterable[str | Callable[..., bool | None]],
                  event_data: EventData) -> None:
        for func in funcs:
            func(event_data)  # type: ignore[operator]  # functions only (_check_callables)


def _check_callables(machine: Machine) -> None:
    """Refuse a callback or condition given by name: the runtime machine would not resolve it."""
    found: list[object] = [*machine.before_state_change, *machine.after_state_change,
                           *machine.prepare_event, *machine.finalize_event,
                           *machine.on_exception, *machine.on_final]
    for state in machine.states.values():
        found += [*state.on_enter, *state.on_exit]
    for event in machine.events.values():
        for edges in event.transitions.values():
            for t in edges:
                found += [*t.prepare, *t.before, *t.after, *(c.func for c in t.conditions)]
    named = [f for f in found if not callable(f)]
    if named:
        raise TypeError(f"{machine.name}: callbacks must be functions, not names: {named!r}")


def build_machine(
    states: list[dict[str, Any]], transitions: list[dict[str, Any]], name: str,
    machine_class: type[Machine] = RuntimeMachine,
) -> Machine:
    """The one runtime machine of a broker, shared by all its sessions (no diagram extension).

    ``machine_class`` is for tests, which build stock ``transitions.Machine`` from the same
    definitions to check that the runtime machine behaves the same.
    """
    machine = machine_class(
        model=None,
        states=states,
        transitions=transitions,
        initial=DISCONNECTED,
        auto_transitions=False,
        send_event=True,
        queued=True,
        ignore_invalid_triggers=True,
        after_state_change=[record],
        name=name,
    )
    _check_callables(machine)
    return machine
