"""The ``brokergate`` command line.

    brokergate demo                         the main job, against the built-in simulators
    brokergate simulate BROKER              run a broker simulator in the foreground
    brokergate login BROKER ...             log in, optionally hold the session, log out
                       [--coordinator URL]  ... as one of a fleet of processes sharing Redis
    brokergate fleet status|keygen          the fleet's state in Redis; a new fleet key
    brokergate diagrams [--trace AUDIT]     state diagrams and policy pages (or one session's path)
    brokergate run SESSIONS.toml            hold a file's sessions on their schedules; serve
                                            /metrics, /healthz, /status and a status page

``login`` prints one JSON result line on stdout and audit events as JSON lines on stderr (or to
``--audit-log``). Passwords come from an environment variable, a file or a prompt, never from the
command line. Exit codes: 0 authenticated, 2 usage or configuration error, 3 failed,
4 locked_out, 5 provisioning, 6 gave up after retries or timeouts, 7 displaced, 8 the fleet's
coordinator (Redis) out of reach (``login --coordinator`` and ``fleet status``).

The brokers come from the registry (``brokergate.machines.brokers``): each one's ``login``
options, configuration and after-login work from its CLI part, its ``simulate`` from its
simulator kit. The modules here:

    _parser            the parser, and the refusal of secrets given on the command line
    _secrets           where secrets are read from (the brokers' ``SecretSource``)
    _login_command     ``login``: the session, the result line, the exit code
    _fleet_login       ``login --coordinator``: the session on the fleet's Redis, standby or not
    _fleet_command     ``fleet status`` and ``fleet keygen``
    _simulate_command  ``simulate``
    _run_command       ``run`` (the service itself is ``brokergate.engine.service``)
    (this module)      ``main``: dispatch, and ``diagrams`` and ``demo``
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from brokergate.engine._errors import ConfigurationError
from brokergate.engine.cli._fleet_command import fleet as _fleet
from brokergate.engine.cli._fleet_login import CoordinatorDown
from brokergate.engine.cli._login_command import (
    EXIT_COORDINATOR,
    EXIT_DISPLACED,
    EXIT_FAILED,
    EXIT_GAVE_UP,
    EXIT_LOCKED_OUT,
    EXIT_OK,
    EXIT_PROVISIONING,
    EXIT_USAGE,
    exit_code,
    run_login,
)
from brokergate.engine.cli._login_command import login as _login
from brokergate.engine.cli._parser import CHECKOUT_ONLY, build_parser, parse
from brokergate.engine.cli._parser import _option_names as _option_names
from brokergate.engine.cli._run_command import run as _run
from brokergate.engine.cli._secrets import (
    CommandLineSecrets,
    UsageError,
    read_env_secret,
    read_password,
)
from brokergate.engine.cli._simulate_command import interrupted
from brokergate.engine.cli._simulate_command import simulate as _simulate
from brokergate.machines._config import with_default_scheme

__all__ = [
    "EXIT_COORDINATOR",
    "EXIT_DISPLACED",
    "EXIT_FAILED",
    "EXIT_GAVE_UP",
    "EXIT_LOCKED_OUT",
    "EXIT_OK",
    "EXIT_PROVISIONING",
    "EXIT_USAGE",
    "CommandLineSecrets",
    "UsageError",
    "build_parser",
    "exit_code",
    "getpass",  # read_password's prompt (tests replace getpass.getpass)
    "main",
    "read_env_secret",
    "read_password",
    "run_login",
    "with_default_scheme",
]

def _diagrams(args: argparse.Namespace) -> int:
    from brokergate.engine import diagrams  # noqa: PLC0415

    try:
        diagrams.main(args.out, args.trace, args.session)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from brokergate.engine.demo import list_scenarios, run_demo  # noqa: PLC0415 - the simulators

    if args.list:
        list_scenarios()
        return EXIT_OK
    if args.serve:
        try:
            import hypercorn  # noqa: F401, PLC0415 - what --serve needs
            import prometheus_client  # noqa: F401, PLC0415

            from brokergate.engine.demo.serve import serve_demo  # noqa: PLC0415
        except ImportError as missing:
            raise UsageError("demo --serve needs the ops extra: pip install "
                             f"'brokergate[ops]' ({missing})") from None
        return serve_demo(Path(args.out), args.scenario, port=args.port)
    return run_demo(Path(args.out), args.scenario, live=False if args.plain else None)


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    print(f"brokergate: error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in CHECKOUT_ONLY:
        _fail(f"`brokergate {argv[0]}` is not part of the installed package: the "
                    f"{CHECKOUT_ONLY[argv[0]]} run from a checkout of the brokergate repository, "
                    f"as `python3 tasks.py {argv[0]}`")
    try:
        args = parse(argv)
        if args.command == "login":
            return _login(args)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "fleet":
            return _fleet(args)
        if args.command == "diagrams":
            return _diagrams(args)
        if args.command == "run":
            return _run(args)
        return _demo(args)
    except UsageError as exc:
        _fail(str(exc))
    except CoordinatorDown as exc:
        _fail(str(exc), EXIT_COORDINATOR)
    except BaseException as exc:
        if not interrupted(exc):
            raise
        return 130
