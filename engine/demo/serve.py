"""``brokergate demo --serve``: the demo's sessions held by the service, with its status page
and metrics on a loopback port, until Ctrl-C.

The simulators start as for ``brokergate demo``, with the accounts of the demo's one-session
scenarios (or those ``--scenario`` names); each scenario's session is declared to the service
as ``brokergate run`` would read it from a file, with no schedule. The service then holds them:
the ones the scenario expects to log in stay authenticated (green on the page), the ones it
expects to be refused stay as the broker left them (red, with the reason), so ``/healthz`` says
503 and why. The URL is printed; Ctrl-C (or SIGTERM) logs every session out and stops.
"""

from __future__ import annotations

import hashlib
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TextIO

import trio

from brokergate.engine._errors import ConfigurationError
from brokergate.engine.demo import stage_simulators
from brokergate.engine.demo.scenarios import TOTP_WINDOW_AFTER, DemoClock, Scenario, pick


def serve_demo(out_dir: Path, names: list[str] | None, *, host: str = "127.0.0.1",
               port: int = 0, out: TextIO | None = None) -> int:
    """Run it; the exit code (0 after a clean stop, 2 for an unknown scenario)."""
    out = out or sys.stdout
    try:
        chosen = [sc for sc in pick(names) if sc.sessions == 1]
    except ValueError as exc:
        print(f"brokergate demo: {exc}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return trio.run(_serve, chosen, out_dir, host, port, out)
    except BaseException as exc:
        found = exc
        while isinstance(found, BaseExceptionGroup) and len(found.exceptions) == 1:
            found = found.exceptions[0]
        if not isinstance(found, ConfigurationError):
            raise
        print(f"brokergate demo: {found}", file=sys.stderr)  # the port in use, say
        return 2


async def _serve(chosen: list[Scenario[Any]], out_dir: Path, host: str, port: int,
                 out: TextIO) -> int:
    from brokergate.engine.service._file import (  # noqa: PLC0415 - the ops extra
        ServiceFile,
        ServiceSettings,
        SessionEntry,
    )
    from brokergate.engine.service._service import run_service, service_signals  # noqa: PLC0415

    clock = DemoClock.with_window_in(TOTP_WINDOW_AFTER)
    with service_signals() as signals:
        async with AsyncExitStack() as stack:
            stages = await stage_simulators(stack, chosen, clock, out)
            sessions = {}
            for sc in chosen:
                config = sc.build(stages[sc.broker], sc.name, 0)
                sessions[sc.name] = SessionEntry(
                    name=sc.name, broker=sc.broker, config=config, schedule=None, line=0,
                    fingerprint=hashlib.sha256(sc.name.encode()).hexdigest())
            loaded = ServiceFile(
                path=out_dir / "(demo sessions)",
                settings=ServiceSettings(listen_host=host, listen_port=port,
                                         audit=out_dir / "audit-serve.jsonl"),
                sessions=sessions)
            print(f"{len(sessions)} sessions, held until Ctrl-C; the audit trail goes to "
                  f"{out_dir / 'audit-serve.jsonl'}; the status page is at:", file=out,
                  flush=True)
            return await run_service(loaded, signals, reload=None, out=out,
                                     wall_clock=clock.now)
