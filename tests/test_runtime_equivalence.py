"""The runtime machine takes a shorter road through transitions than stock ``transitions.Machine``
(machines/_runtime.py). These tests build stock machines from the very same definitions and drive
a model on each, side by side: through the same random walks, and through every trigger from
every state that has an edge for it with every variant of what the trigger carries. Every
command out of the two must be the same, in the same order, and so must every state and every
field of the model.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import broker_models
import cqg_frames
import pytest
import qst_frames
from broker_models import CONFIGS
from transitions import Machine

from brokergate.machines import (
    AUTHENTICATED,
    AWAITING_LOGIN_RESPONSE,
    BACKOFF,
    CONNECTING,
    TERMINAL_STATES,
    Action,
    Backoff,
    Closed,
    Command,
    Connected,
    ConnectFailed,
    CredentialReady,
    Disconnect,
    Displace,
    Event,
    Fail,
    Fault,
    FetchCredential,
    FrameReceived,
    FullLogon,
    HttpAnswered,
    HttpFailed,
    HttpRequest,
    LockOut,
    LoginModel,
    Redirect,
    Relogon,
    Restore,
    Retry,
    Secret,
    Start,
    StartTimer,
    Stop,
    Succeed,
    TimerFired,
    Transitioned,
)
from brokergate.machines._labels import label_of
from brokergate.machines._runtime import RuntimeMachine, build_machine
from brokergate.machines.brokers import BROKERS as REGISTRY
from brokergate.machines.cqg import CqgConfig, CqgSession, LogonHistory
from brokergate.machines.cqg import cqg_session_pb2 as cqg_pb
from brokergate.machines.cqg import table as cqg_machine
from brokergate.machines.firstock import FirstockConfig
from brokergate.machines.firstock import table as firstock_machine
from brokergate.machines.firstock.model import FirstockSession
from brokergate.machines.firstock.slots import SocketSlots
from brokergate.machines.qst import QstConfig, QstSession
from brokergate.machines.qst import table as qst_machine

STEPS = 150
SEEDS = range(60)


#: Edges (source, destination) the walks must have taken: a little under what they take.
MIN_EDGES = {"qst": 18, "cqg": 20, "firstock": 19}


def _stock(module: Any) -> Machine:
    machine = build_machine(module.STATES, module.TRANSITIONS, name=f"stock-{module.BROKER}",
                            machine_class=Machine)
    assert not isinstance(machine, RuntimeMachine)
    return machine


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the three brokers: how to build a model on a given machine, and what may happen to it ----


def _qst(machine: Machine, clock: _Clock, seed: int) -> LoginModel:
    kind = type("StockQst", (QstSession,), {"MACHINE": machine, "__slots__": ()})
    config = QstConfig(url="ws://127.0.0.1:1/", user_name="u", password=Secret("pw"),
                       client_id="c")
    model: LoginModel = kind(config, rng=random.Random(seed))
    return model


def _cqg(machine: Machine, clock: _Clock, seed: int) -> LoginModel:
    kind = type("StockCqg", (CqgSession,), {"MACHINE": machine, "__slots__": ()})
    config = CqgConfig(url="ws://127.0.0.1:1/", user_name="u", password=Secret("pw"),
                       client_app_id="c", min_logon_interval=0.0)
    model: LoginModel = kind(config, rng=random.Random(seed), clock=clock,
                             history=LogonHistory())
    return model


_WALL = datetime(2026, 11, 21, 3, 0, 10, tzinfo=UTC)


def _firstock(machine: Machine, clock: _Clock, seed: int) -> LoginModel:
    kind = type("StockFirstock", (FirstockSession,), {"MACHINE": machine, "__slots__": ()})
    config = FirstockConfig(
        base_url="http://127.0.0.1:9/api/V3", user_id="U1", password=Secret("pw"),
        api_key=Secret("key"), vendor_code="U1_API", totp=Secret("123456"),
        socket="noren", socket_url="ws://127.0.0.1:9/NorenWSTP/",
    )
    model: LoginModel = kind(config, rng=random.Random(seed), clock=clock,
                             wall=lambda: _WALL)
    return model


QST_FRAMES = [qst_frames.login_ok(), qst_frames.error(1, "bad password"),
              qst_frames.error(6, "busy"), qst_frames.error(1000, "later"),
              qst_frames.provisioning("sign"), qst_frames.logout_ok(), b"\xff\x00"]
CQG_FRAMES = [cqg_frames.logon_ok(), cqg_frames.logon_result(103, "bad"),
              cqg_frames.logon_result(104), cqg_frames.restore_result(0),
              cqg_frames.restore_result(103), cqg_frames.logged_off(1),
              cqg_frames.ping(), b"\xff\x00"]
_TOKEN = json.dumps({"status": "Success", "data": {"actid": "U1", "susertoken": "s" * 64}})
FIRSTOCK_ANSWERS = [(200, _TOKEN), (200, json.dumps({"status": "Success", "data": "bye"})),
                    (400, json.dumps({"status": "Failed", "name": "INVALID_CREDENTIALS"})),
                    (429, "slow down"), (500, "oops"), (200, "not json")]
FIRSTOCK_FRAMES = ['{"t":"ck","s":"OK","uid":"U1"}', '{"t":"ck","s":"NOT_OK"}', "garbage"]


#: Each walk starts logged in and settled (so that restores, logouts and renewals are within
#: reach), then goes where the dice take it.
QST_START: list[Event] = [Start(), Connected(1), FrameReceived(1, QST_FRAMES[0]),
                          TimerFired("stable")]
CQG_START: list[Event] = [Start(), Connected(1), FrameReceived(1, CQG_FRAMES[0]),
                          TimerFired("stable")]
FIRSTOCK_START: list[Event] = [Start(), HttpAnswered("login", 1, 200, _TOKEN.encode()),
                               Connected(1), FrameReceived(1, FIRSTOCK_FRAMES[0]),
                               TimerFired("stable")]

BROKERS: dict[str, tuple[Any, Callable[[Machine, _Clock, int], LoginModel], list[Any],
                         list[Event]]] = {
    "qst": (qst_machine, _qst, QST_FRAMES, QST_START),
    "cqg": (cqg_machine, _cqg, CQG_FRAMES, CQG_START),
    "firstock": (firstock_machine, _firstock, FIRSTOCK_FRAMES, FIRSTOCK_START),
}


@dataclass
class _Asked:
    """What the machine has asked for so far, so that the dice can answer it."""

    timers: list[str] = field(default_factory=list)
    http: list[HttpRequest] = field(default_factory=list)
    credentials: list[str] = field(default_factory=list)

    def note(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, StartTimer):
                self.timers.append(command.name)
            elif isinstance(command, HttpRequest):
                self.http.append(command)
            elif isinstance(command, FetchCredential):
                self.credentials.append(command.kind)


def _next_event(rng: random.Random, model: LoginModel, asked: _Asked,
                frames: list[Any]) -> Event:
    timers, http, credentials = asked.timers, asked.http, asked.credentials
    epoch = model.epoch
    roll = rng.random()
    if roll < 0.05:
        return Start()
    if roll < 0.08:
        return Stop(logout=rng.random() < 0.7)
    if roll < 0.2:
        return Connected(epoch)
    if roll < 0.27:
        return Closed(epoch, rng.choice([1000, 1006, 1011, 4101, 4102]), "bye")
    if roll < 0.3:
        return ConnectFailed(epoch, "refused")
    if roll < 0.45 and timers:
        return TimerFired(rng.choice(timers))
    if roll < 0.6 and http:
        request = rng.choice(http)
        if rng.random() < 0.15:
            return HttpFailed(request.call, request.serial, "refused")
        status, body = rng.choice(FIRSTOCK_ANSWERS)
        return HttpAnswered(request.call, request.serial, status, body.encode())
    if roll < 0.65 and credentials:
        return CredentialReady(rng.choice(credentials), Secret("654321"))
    return FrameReceived(epoch, rng.choice(frames))


@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_the_runtime_machine_does_what_stock_transitions_does(broker: str) -> None:
    module, build, frames, start = BROKERS[broker]
    stock = _stock(module)
    edges: set[tuple[str, str]] = set()
    for seed in SEEDS:
        clock = _Clock()
        runtime_model = build(module.MACHINE, clock, seed)
        stock_model = build(stock, clock, seed)
        rng = random.Random(seed)
        asked = _Asked()
        for step in range(len(start) + STEPS):
            if runtime_model.state in TERMINAL_STATES:  # start again: a person would
                runtime_model = build(module.MACHINE, clock, seed + step)
                stock_model = build(stock, clock, seed + step)
                asked = _Asked()
            if step < len(start):
                event = start[step]
            else:
                event = _next_event(rng, runtime_model, asked, frames)
            clock.now += rng.choice([0.0, 0.0, 0.5, 5.0, 5.0, 120.0])
            out: list[Command] = runtime_model.handle(event)
            expected = stock_model.handle(event)
            where = f"{broker} seed {seed} step {step} {event!r}"
            assert out == expected, where
            assert runtime_model.state == stock_model.state, where
            asked.note(out)
            edges.update((c.src, c.dst) for c in out if isinstance(c, Transitioned))
    # The random walk must get around, or the comparison proves little.
    assert {(AWAITING_LOGIN_RESPONSE, AUTHENTICATED), (AUTHENTICATED, BACKOFF),
            (BACKOFF, CONNECTING)} <= edges
    assert len(edges) >= MIN_EDGES[broker], sorted(edges)
    if broker == "cqg":
        assert (AUTHENTICATED, "restoring") in edges


# --- every trigger from every state, through every registered broker -------------------------
#
# The walks above go where the dice take them. Here each broker's model is put in every state
# that has an edge for a trigger and fired that trigger with every variant of what it carries
# (each policy action, with and without detail, each value of the trigger's own arguments),
# under several model and configuration setups; the runtime and the stock machine must leave the
# same state, the same commands and the same model behind, and between them the variants must
# take every edge of the table.

#: One or more actions of every kind a policy can give (``@condition(policy=...)`` kinds).
ACTIONS: dict[str, list[Action]] = {
    "fail": [Fail("bad_thing", Fault.BROKER)],
    "lock_out": [LockOut()],
    "displace": [Displace()],
    "retry": [Retry("dropped"), Retry("busy", max_attempts=1, exhausted="busy_too_long"),
              Retry("soon", immediate=True, min_delay=2.0)],
    "restore": [Restore("connection_lost")],
    "succeed": [Succeed()],
    "relogon": [Relogon(kind, "refused") for kind in
                ("one_time_password", "access_token", "totp", "token")],
    "redirect": [Redirect()],
    "full_logon": [FullLogon("restore_refused")],
    "disconnect": [Disconnect("logged_off")],
}

_LOGON_OK = cqg_pb.LogonResult(result_code=0, base_time="2026-01-01T00:00:00",
                               protocol_version_major=2, protocol_version_minor=230,
                               server_time=1000, user_id=42, session_token="tok",
                               inactivity_timeout=1)
_LOGON_NO_TOKEN = cqg_pb.LogonResult(result_code=0, base_time="2026-01-01T00:00:00",
                                     protocol_version_major=2, protocol_version_minor=230,
                                     server_time=0)
_RESTORED = cqg_pb.RestoreOrJoinSessionResult(result_code=0, base_time="2026-01-01T00:00:00",
                                              server_time=5000, inactivity_timeout=2)
_REDIRECTS = [None, "ws://127.0.0.1:2/", "wss://elsewhere.example/"]

#: What a trigger carries besides ``action`` and ``detail``: each key's values are combined.
EXTRAS: dict[str, dict[str, list[Any]]] = {
    "logon_result": {"result": [_LOGON_OK, _LOGON_NO_TOKEN], "redirect_url": _REDIRECTS,
                     "error_code": [0]},
    "restore_result": {"result": [_RESTORED]},
    "logged_off": {"redirect_url": _REDIRECTS},
    "credential_ready": {"value": [None, Secret("654321")], "problem": [None, "it broke"]},
    "socket_verdict": {"ok": [True, False], "limit": [False, True]},
    "token_refused": {"generation": [1, 0]},
    "stop": {"logout": [True, False]},
    "login_answer": {"data": [{"susertoken": "s" * 64}], "min_delay": [0.0, 3.0]},
    "validation_answer": {"data": [{"actid": "U1"}], "min_delay": [0.0]},
    "closed": {"close_code": [1006]},
    "renew": {"explain": [True]},
}


def _variants(trigger: str) -> list[dict[str, Any]]:
    extras = EXTRAS.get(trigger, {})
    combined: list[dict[str, Any]] = [{}]
    for key, values in extras.items():
        combined = [{**c, key: v} for c in combined for v in values]
    actions: list[Action | None] = [None, *(a for group in ACTIONS.values() for a in group)]
    return [{**c, **({"action": a} if a is not None else {}),
             **({"detail": d} if d is not None else {})}
            for c in combined for a in actions for d in (None, "what the broker said")]


def _prime_qst(model: Any) -> None:
    model.attempt, model.streak, model.streak_reason = 2, 1, "dropped"


def _prime_cqg(model: Any) -> None:
    _prime_qst(model)
    model.session_token = Secret("tok")
    model.lost_at = model.clock() - 1.0
    model.pending_credential = "one_time_password"
    model.inactivity_timeout = 1
    model.redirects = 1
    model.logon_url = "ws://127.0.0.1:2/"
    model.logons = 1
    model.history.attempted(model.clock() - 1.0)
    model.history.succeeded(model.clock() - 1.0)


def _prime_cqg_settled(model: Any) -> None:
    _prime_cqg(model)
    model.attempt = 0  # up for the stability window: a loss is restored at once


def _prime_cqg_window_passed(model: Any) -> None:
    _prime_cqg(model)
    model.lost_at = model.clock() - 3600.0


def _prime_firstock(model: Any) -> None:
    _prime_qst(model)
    model.token, model.token_created, model.token_generation = Secret("t" * 64), _WALL, 1
    model.candidate, model.candidate_created = Secret("c" * 64), _WALL
    model.relogged = "socket_verdict"
    model.totp_retried = True


_OTHER_SOCKETS = (object(), object(), object())


def _prime_firstock_no_slot(model: Any) -> None:
    _prime_firstock(model)
    model.candidate = model.candidate_created = None
    for holder in _OTHER_SOCKETS:  # the user's three sockets are held elsewhere in the process
        model.slots.take(holder)


def _wall() -> datetime:
    return _WALL


def _spent(model: Any) -> None:
    model.attempt = 3  # the configured bound (_BOUNDED)
    model.streak, model.streak_reason = 1, "busy"


_BOUNDED = Backoff(max_attempts=3)

#: (name, configuration overrides, what to set on the fresh model) for each broker.
SETUPS: dict[str, list[tuple[str, dict[str, Any], Callable[[Any], None] | None]]] = {
    "qst": [("fresh", {}, None), ("retried", {}, _prime_qst),
            ("spent", {"backoff": _BOUNDED}, _spent),
            ("invalid", {"client_id": ""}, None)],
    "cqg": [("fresh", {"min_logon_interval": 0.0}, None),
            ("held", {"min_logon_interval": 30.0}, _prime_cqg),
            ("settled", {}, _prime_cqg_settled),
            ("spaced", {"min_logon_interval": 30.0}, _prime_cqg_window_passed),
            ("spent", {"backoff": _BOUNDED, "daily_logon_limit": 1}, _prime_cqg_window_passed),
            ("providers", {"restore": False, "otp_provider": lambda: "1",
                           "access_token_provider": lambda: "a", "user_name": None,
                           "password": None, "restore_window": 0.5}, None),
            ("providers_held", {"restore": False, "otp_provider": lambda: "1",
                                "min_logon_interval": 0.0}, _prime_cqg),
            # A lease granted without a session to restore, too soon after the last logon.
            ("unrestorable", {"restore": False, "min_logon_interval": 30.0}, _prime_cqg)],
    "firstock": [("fresh", {}, None),
                 ("socket", {"socket": "noren", "socket_url": "ws://127.0.0.1:9/ws/"},
                  _prime_firstock),
                 ("no_slot", {"socket": "noren", "socket_url": "ws://127.0.0.1:9/ws/"},
                  _prime_firstock_no_slot),
                 ("socket_fresh", {"socket": "v2", "socket_url": "ws://127.0.0.1:9/ws/",
                                   "totp": None, "totp_seed": Secret("JBSWY3DPEHPK3PXP")},
                  lambda m: setattr(m, "token", Secret("t" * 64))),
                 ("provider", {"totp": None, "totp_provider": lambda: "1",
                               "backoff": _BOUNDED}, _spent),
                 ("stored", {}, lambda m: (setattr(m, "candidate", Secret("c" * 64)),
                                           setattr(m, "candidate_created", _WALL)))],
}


def _fields(model: Any) -> dict[str, Any]:
    """Everything a model holds, comparable across two models."""
    out: dict[str, Any] = {}
    for cls in type(model).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name == "_out" or not hasattr(model, name):
                continue
            value = getattr(model, name)
            if isinstance(value, random.Random):
                value = value.getstate()
            elif isinstance(value, LogonHistory | SocketSlots):
                value = repr(value)
            out[name] = value
    return out


def _fire(model: Any, trigger: str, kwargs: dict[str, Any]) -> list[Command]:
    out: list[Command] = []
    model._out = out
    try:
        model.fire(trigger, **kwargs)
    finally:
        model._out = ()
    return out


def _table_edges(transitions: Any) -> set[tuple[str, str, str]]:
    found = set()
    for row in transitions:
        sources = [row["source"]] if isinstance(row["source"], str) else row["source"]
        found |= {(s, row["trigger"], row["dest"] or s) for s in sources}
    return found


def test_every_condition_kind_is_exercised() -> None:
    kinds = {label_of(c).policy for broker in REGISTRY for row in broker.transitions
             for c in row.get("conditions", [])} - {None}
    assert kinds <= set(ACTIONS)


@pytest.mark.parametrize("broker", REGISTRY, ids=[b.name for b in REGISTRY])
def test_every_trigger_from_every_state_as_stock_transitions_does(broker: Any) -> None:
    stock = build_machine(list(broker.states), list(broker.transitions),
                          name=f"stock-{broker.name}", machine_class=Machine)
    assert not isinstance(stock, RuntimeMachine)
    runtime = broker_models.build_model(broker, CONFIGS[broker.name]()).MACHINE
    triggers = {row["trigger"] for row in broker.transitions}
    taken: set[tuple[str, str, str]] = set()
    fired = raised = 0
    for setup, overrides, prime in SETUPS[broker.name]:
        config = CONFIGS[broker.name](**overrides)
        for trigger in sorted(triggers):
            sources = sorted(runtime.events[trigger].transitions)
            for source in sources:
                for kwargs in _variants(trigger):
                    pair = []
                    clock = _Clock()
                    for _ in range(2):
                        model = broker_models.build_model(broker, config, seed=7, clock=clock,
                                                          wall=_wall)
                        if prime is not None:
                            prime(model)
                        model.state = source
                        pair.append(model)
                    runtime_model, stock_model = pair
                    stock_model.__class__ = type(f"Stock{type(stock_model).__name__}",
                                                 (type(stock_model),),
                                                 {"MACHINE": stock, "__slots__": ()})
                    where = f"{broker.name} {setup}: {source} --{trigger}--> {kwargs}"
                    try:
                        out = _fire(runtime_model, trigger, dict(kwargs))
                    except Exception as exc:  # the stock machine must fail the same way
                        with pytest.raises(type(exc)):
                            _fire(stock_model, trigger, dict(kwargs))
                        raised += 1
                        continue
                    expected = _fire(stock_model, trigger, dict(kwargs))
                    fired += 1
                    assert out == expected, where
                    assert runtime_model.state == stock_model.state, where
                    assert _fields(runtime_model) == _fields(stock_model), where
                    taken |= {(c.src, c.trigger, c.dst) for c in out
                              if isinstance(c, Transitioned)}
    print(f"{broker.name}: {fired} firings compared, {raised} raised alike")
    assert fired > 1000 and raised < fired / 10, (fired, raised)
    missing = _table_edges(broker.transitions) - taken
    assert not missing, sorted(missing)
