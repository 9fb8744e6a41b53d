"""The runtime machine takes a shorter road through transitions than stock ``transitions.Machine``
(machines/_runtime.py). These tests build stock machines from the very same definitions and drive
a model on each, side by side, through the same random events: every command out of the two
must be the same, in the same order, and so must every state.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cqg_frames
import pytest
import qst_frames
from transitions import Machine

from brokergate.machines import (
    AUTHENTICATED,
    AWAITING_LOGIN_RESPONSE,
    BACKOFF,
    CONNECTING,
    TERMINAL_STATES,
    Closed,
    Command,
    Connected,
    ConnectFailed,
    CredentialReady,
    Event,
    FetchCredential,
    FrameReceived,
    HttpAnswered,
    HttpFailed,
    HttpRequest,
    LoginModel,
    Secret,
    Start,
    StartTimer,
    Stop,
    TimerFired,
    Transitioned,
)
from brokergate.machines._runtime import RuntimeMachine, build_machine
from brokergate.machines.cqg import CqgConfig, CqgSession, LogonHistory
from brokergate.machines.cqg import table as cqg_machine
from brokergate.machines.firstock import FirstockConfig
from brokergate.machines.firstock import table as firstock_machine
from brokergate.machines.firstock.model import FirstockSession
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
