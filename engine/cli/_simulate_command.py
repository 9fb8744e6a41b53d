"""``brokergate simulate BROKER``: the broker's simulator kit (``Broker.simulator()``), in the
foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import sys

import trio

from brokergate.engine._errors import cannot_listen
from brokergate.engine.cli._secrets import UsageError
from brokergate.machines.brokers import broker_named


async def _simulate_broker(name: str, host: str, port: int) -> None:
    kit = broker_named(name).simulator()  # imports the simulator: only this command needs it
    async with kit.running(host, port) as lines:
        for line in lines:
            print(line, flush=True)
        print("stop with Ctrl-C", flush=True)
        await trio.sleep_forever()


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C: a KeyboardInterrupt, or one that trio delivered inside the
    exception groups of the nurseries it passed through, with nothing else in them."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(KeyboardInterrupt)[1] is None
    return isinstance(exc, KeyboardInterrupt)


def simulate(args: argparse.Namespace) -> int:
    try:
        trio.run(_simulate_broker, args.broker, args.host, args.port)
    except BaseException as exc:
        refused = cannot_listen(exc)
        if refused is not None:
            raise UsageError(f"cannot listen on {args.host}:{args.port}: "
                             f"{refused.strerror}") from None
        if not interrupted(exc):
            raise
        print("simulator stopped", file=sys.stderr)
    return 0
