"""``brokergate login BROKER``: log in, do what the broker's options ask, hold, log out; the
result line and the exit code."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from brokergate.engine._audit import AuditLog
from brokergate.engine._errors import SessionError
from brokergate.engine._gateway import Gateway, open_gateway
from brokergate.engine._tokens import FileTokenStore
from brokergate.engine.cli._fleet_login import (
    FleetWatch,
    check_fleet_options,
    coordinator_failure,
    fleet_gateway,
)
from brokergate.engine.cli._secrets import CommandLineSecrets, UsageError
from brokergate.machines import DISCONNECTED, TERMINAL_STATES, Backoff, Transitioned
from brokergate.machines._broker import Broker, BrokerCli, CommandLineError
from brokergate.machines._config import SessionSettings
from brokergate.machines.brokers import broker_named

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_FAILED = 3
EXIT_LOCKED_OUT = 4
EXIT_PROVISIONING = 5
EXIT_GAVE_UP = 6
EXIT_DISPLACED = 7
#: The fleet's coordinator (Redis) could not be reached: nothing was sent to the broker.
EXIT_COORDINATOR = 8

#: Reasons that are not plain failures, by exit code.
_EXIT_BY_REASON = {
    "invalid_config": EXIT_USAGE,
    "gave_up": EXIT_GAVE_UP,
    "displaced": EXIT_DISPLACED,
}
_EXIT_BY_STATE = {"locked_out": EXIT_LOCKED_OUT, "provisioning": EXIT_PROVISIONING,
                  "displaced": EXIT_DISPLACED}


def exit_code(outcome: dict[str, Any]) -> int:
    """The process exit code for a session outcome (``outcome`` as in the result line)."""
    if outcome["outcome"] == "authenticated":
        return EXIT_OK
    reason = outcome.get("reason")
    if reason in _EXIT_BY_REASON:
        return _EXIT_BY_REASON[reason]
    return _EXIT_BY_STATE.get(outcome.get("state", ""), EXIT_FAILED)


def login_config(part: BrokerCli, args: argparse.Namespace) -> SessionSettings:
    """The session's configuration: the broker's options by its CLI part, then the options
    every login has."""
    try:
        config = part.config(args, CommandLineSecrets())
    except CommandLineError as exc:
        raise UsageError(str(exc)) from None
    return dataclasses.replace(
        config,
        connect_timeout=args.connect_timeout,
        login_timeout=args.login_timeout,
        ca_file=args.ca_file,
        backoff=Backoff(max_attempts=args.max_attempts if args.max_attempts > 0 else None),
    )


def _result(session: Any, authenticated: bool) -> dict[str, Any]:
    out = session.outcome()
    outcome = "authenticated" if authenticated else out["state"]
    if not authenticated and out.get("reason") in _EXIT_BY_REASON:
        outcome = out["reason"]
    return {
        "broker": session.broker,
        "session_id": session.session_id,
        "account": session.account,
        "outcome": outcome,
        **out,
    }


async def run_login(broker: Broker[Any], config: SessionSettings, args: argparse.Namespace,
                    audit: AuditLog) -> dict[str, Any]:
    """Log in, do what the broker's options ask and hold as asked, log out; the result line as
    a dict. With ``--coordinator`` the session runs on the fleet's Redis."""
    keeps_tokens = broker.has("token_store")
    keep = keeps_tokens and args.keep_session
    async with _gateway(broker, args, audit) as (gateway, coordinator):
        watch = FleetWatch(coordinator, broker, config) if coordinator is not None else None
        async with gateway.session(config, keep_session=keep) as session:
            if watch is None:
                result = await _session_result(broker, session, args)
            else:
                events = watch.subscribe(session)  # before the session's tasks run
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch.run, events)
                    result = await _session_result(broker, session, args)
                    nursery.cancel_scope.cancel()
        if watch is not None:
            result["fleet"] = watch.report.as_dict()
    if result["outcome"] == "authenticated":
        result["state"] = session.state  # after the logout
    return result


@asynccontextmanager
async def _gateway(broker: Broker[Any], args: argparse.Namespace,
                   audit: AuditLog) -> AsyncIterator[tuple[Gateway, Any]]:
    """The gateway of one process (``--token-dir`` keeps day tokens in files), or on the
    fleet's coordinator, with the coordinator."""
    if args.coordinator is not None:
        async with fleet_gateway(args, audit) as found:
            yield found
        return
    token_dir = getattr(args, "token_dir", None)
    store = FileTokenStore(token_dir) if broker.has("token_store") and token_dir else None
    async with open_gateway(audit=audit, token_store=store) as gateway:
        yield gateway, None


async def _session_result(broker: Broker[Any], session: Any,
                          args: argparse.Namespace) -> dict[str, Any]:
    """Wait for the login, do what the broker's options ask, hold as asked."""
    try:
        await session.wait_authenticated()
    except SessionError:
        return _result(session, authenticated=False)
    result = _result(session, authenticated=True)
    result.update(await broker.cli().after_login(session, args))
    if args.hold > 0:
        with trio.move_on_after(args.hold):
            await _watch_until_ended(session)
        if _ended(session.state):
            return _result(session, authenticated=False)
        # The counts (attempts; logons and restores) as they stand after the hold.
        result.update(session.outcome(), epoch=session.epoch)
    return result


def _ended(state: str) -> bool:
    return state in TERMINAL_STATES or state == DISCONNECTED


async def _watch_until_ended(session: Any) -> None:
    """Return when the session ends by itself (failed, displaced, logged off by the broker)."""
    async with session.events() as events:
        async for event in events:
            if isinstance(event, Transitioned) and _ended(event.dst):
                return


def login(args: argparse.Namespace) -> int:
    broker = broker_named(args.broker)
    check_fleet_options(args)
    config = login_config(broker.cli(), args)
    audit = AuditLog.to_file(args.audit_log) if args.audit_log else AuditLog.stderr()
    try:
        result = trio.run(run_login, broker, config, args, audit)
    except BaseException as exc:
        said = coordinator_failure(exc)
        if said is None:
            raise
        raise said from None
    finally:
        audit.close()
    print(json.dumps(result, default=str), flush=True)
    return exit_code(result)
