"""The command line's arguments: the parser, built from the broker registry, and the refusal of
secrets given on the command line (before argparse could echo them in an error message).

A broker's ``login`` options come from its CLI part (``Broker.cli()``); the options every login
has are added here, and so is what every option that names an environment variable is held to.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brokergate.engine.cli._secrets import UsageError
from brokergate.machines.brokers import BROKERS, names

#: Commands that live in the repository, not in the wheel, with what they are.
CHECKOUT_ONLY = {
    "bench": "benchmarks",
    "reliability": "reliability and security suite",
}

#: An option whose name says it carries a secret (``--password``, ``--api-key``, ``--token``,
#: ``--totp-seed``...). The parser's own options that merely say where a secret is
#: (``--password-env``, ``--password-file``, ``--token-dir``...) are known and let through.
_SECRET_OPTION = re.compile(r"pass|pw|secret|token|key|otp|seed|cred", re.IGNORECASE)

_SECRETS_HELP = (
    "secrets are never taken from the command line (it shows up in process listings and shell "
    "history): give the password in the environment variable BROKERGATE_PASSWORD (or "
    "--password-env VAR), in a file (--password-file FILE), or let brokergate prompt for it; "
    "API keys, tokens and TOTP seeds in environment variables (--api-key-env, "
    "--access-token-env, --totp-seed-env, --totp-env, --otp-seed-env VAR)"
)


def _option_names(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of the parser and its subcommands."""
    names: set[str] = set()
    for action in parser._actions:
        names.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                names |= _option_names(sub)
    return names


def _refuse_secret_arguments(argv: Sequence[str], known: set[str]) -> None:
    """Refuse ``--password VALUE`` (or ``--api-key``, ``-pVALUE``...) before argparse could echo
    the value in an error message; the refusal names the option, never its value."""
    for arg in argv:
        if not arg.startswith("-") or arg == "--":
            continue
        name = arg.split("=", 1)[0]
        if name in known:
            continue
        if not name.startswith("--"):
            name = name[:2]  # -pVALUE: the value follows the letter
        if name in ("-p", "-P") or _SECRET_OPTION.search(name):
            raise UsageError(f"{name}: {_SECRETS_HELP}")


def _unrecognized(extras: Sequence[str]) -> str:
    """argparse would repeat unrecognized arguments whole; a stray value may be a secret."""
    names = [a.split("=", 1)[0] for a in extras if a.startswith("-")]
    shown = f" {' '.join(names)}" if names else ""
    return f"unrecognized arguments{shown} (values are not repeated: they may be secrets)"


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(text: str) -> str:
    """The name of an environment variable. Anything else is refused without being repeated:
    a password typed where its variable's name belongs must not be printed back."""
    if not _ENV_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            "expected the NAME of an environment variable (letters, digits and _); what was "
            "given is not one, and is not repeated here in case it is a secret")
    return text


def _names_only(parser: argparse.ArgumentParser) -> None:
    """Hold every ``--...-env`` option of a broker's parser to a variable's name (``_env_name``):
    the brokers' CLI parts declare them, the refusal to repeat what is not a name is the CLI's."""
    for action in parser._actions:
        if any(option.endswith("-env") for option in action.option_strings):
            action.type = _env_name


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def build_parser(*, simulator_help: bool = False) -> argparse.ArgumentParser:
    """The ``brokergate`` parser. ``simulator_help``: say what each ``simulate BROKER`` is,
    which imports the simulators (only ``brokergate simulate`` asks for it)."""
    parser = argparse.ArgumentParser(
        prog="brokergate",
        description="Log trading processes in to their brokers and keep them logged in.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version",
                        version=f"brokergate {importlib.metadata.version('brokergate')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_demo_parser(sub)
    _add_diagrams_parser(sub)
    _add_checkout_only_parsers(sub)
    _add_simulate_parser(sub, simulator_help)
    _add_login_parser(sub)
    _add_fleet_parser(sub)
    _add_run_parser(sub)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = build_parser(simulator_help=argv[:1] == ["simulate"])
    _refuse_secret_arguments(argv, _option_names(parser))
    args, extras = parser.parse_known_args(argv)
    if extras:
        raise UsageError(_unrecognized(extras))
    return args


def _add_simulate_parser(sub: Any, simulator_help: bool) -> None:
    sim = sub.add_parser("simulate", help="run a broker simulator in the foreground",
                         allow_abbrev=False)
    sim_sub = sim.add_subparsers(dest="broker", required=True, metavar="BROKER")
    for broker in BROKERS:
        what = {"help": broker.simulator().help} if simulator_help else {}
        p = sim_sub.add_parser(broker.name, allow_abbrev=False, **what)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=0, help="0 picks a free port")


def _add_login_parser(sub: Any) -> None:
    login = sub.add_parser("login", help="log in to a broker", allow_abbrev=False)
    login_sub = login.add_subparsers(dest="broker", required=True, metavar="BROKER")
    for broker in BROKERS:
        part = broker.cli()
        p = login_sub.add_parser(broker.name, help=part.help, allow_abbrev=False)
        part.add_arguments(p)
        _names_only(p)
        if broker.has("token_store"):
            _token_options(p)
        _common_login_options(p)
        _fleet_login_options(p)


def _add_checkout_only_parsers(sub: Any) -> None:
    """Listed for --help only: these run from a checkout of the repository, not an install."""
    for name, what in CHECKOUT_ONLY.items():
        sub.add_parser(name, add_help=False,
                       help=f"{what} (from a checkout: python3 tasks.py {name})")


def _add_demo_parser(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run sessions against the built-in simulators",
                          allow_abbrev=False)
    demo.add_argument("--out", default="demo-output",
                      help="folder for the audit log, summary and traced diagrams "
                           "(default %(default)s)")
    brokers = ", ".join(names())
    demo.add_argument("--scenario", action="append", metavar="NAME",
                      help=f"run only this scenario, or all of one broker's ({brokers}); "
                           "repeatable")
    demo.add_argument("--list", action="store_true", help="list the scenarios and exit")
    demo.add_argument("--serve", action="store_true",
                      help="keep the demo's sessions up under `brokergate run`'s service, with "
                           "its status page, /metrics and /healthz on a loopback port, until "
                           "Ctrl-C (needs brokergate[ops])")
    demo.add_argument("--port", type=int, default=0, metavar="N",
                      help="with --serve: the loopback port (default: a free one, printed)")
    demo.add_argument("--plain", action="store_true",
                      help="progress lines instead of a live table (the default when stdout "
                           "is not a terminal)")


def _add_diagrams_parser(sub: Any) -> None:
    diagrams = sub.add_parser(
        "diagrams", allow_abbrev=False,
        help="write the state diagrams and policy pages, or draw a session's trace")
    diagrams.add_argument("--out", type=Path, default=Path("diagrams"),
                          help="folder to write into (default %(default)s)")
    diagrams.add_argument("--trace", type=Path, metavar="AUDIT.jsonl",
                          help="draw the path one session took, from its audit log, over its "
                               "broker's diagram")
    diagrams.add_argument("--session", metavar="ID",
                          help="the session of --trace to draw (needed when it holds several)")


def _token_options(p: argparse.ArgumentParser) -> None:
    """For brokers whose session outlives the connection (the ``token_store`` capability)."""
    p.add_argument("--token-dir", type=Path, metavar="DIR",
                   help="keep the session token here (one 0600 file per user) so the next "
                        "run reuses today's token")
    p.add_argument("--keep-session", action="store_true",
                   help="leave without logging out, so that the token stays valid (and, with "
                        "--token-dir, is reused by the next run)")


def _common_login_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--password-env", type=_env_name, default="BROKERGATE_PASSWORD", metavar="VAR",
                   help="environment variable holding the password (default %(default)s)")
    p.add_argument("--password-file", type=Path, metavar="FILE",
                   help="read the password from the first line of this file instead")
    p.add_argument("--hold", type=float, default=0.0, metavar="SECONDS",
                   help="keep the session this long (reconnecting as the policy says)")
    p.add_argument("--audit-log", type=Path, metavar="FILE",
                   help="append audit events here instead of stderr")
    p.add_argument("--ca-file", help="trust this CA bundle for TLS")
    p.add_argument("--connect-timeout", type=_positive, default=10.0, metavar="SECONDS")
    p.add_argument("--login-timeout", type=_positive, default=10.0, metavar="SECONDS")
    p.add_argument("--max-attempts", type=int, default=8,
                   help="consecutive connection attempts before giving up")


def _redis_options(p: argparse.ArgumentParser | Any, *, required: bool) -> None:
    """Where the fleet's Redis is and how to log in to it; its password and the fleet key only
    from the environment or files."""
    p.add_argument("--coordinator", metavar="URL", required=required,
                   help="the fleet's Redis: rediss://HOST[:PORT][/DB] (redis:// to a loopback "
                        "host only); never with a password in it")
    p.add_argument("--redis-user", metavar="NAME",
                   help="Redis ACL user (else the URL's, or BROKERGATE_REDIS_USERNAME)")
    p.add_argument("--redis-password-file", type=Path, metavar="FILE",
                   help="read the Redis password from the first line of this file (else "
                        "BROKERGATE_REDIS_PASSWORD, or the file BROKERGATE_REDIS_PASSWORD_FILE "
                        "names)")
    p.add_argument("--redis-ca-file", metavar="PEM",
                   help="trust this CA bundle for rediss:// (default: the system's CAs)")
    p.add_argument("--prefix", metavar="PREFIX",
                   help="what the fleet's Redis keys start with (default brokergate)")


def _fleet_login_options(p: argparse.ArgumentParser) -> None:
    fleet = p.add_argument_group(
        "fleet", "share the account with other processes through a Redis coordinator: one "
                 "holder per account, the others standbys; shared rate limits and day tokens")
    _redis_options(fleet, required=False)
    fleet.add_argument("--fleet-key-file", type=Path, metavar="FILE",
                       help="the fleet key, in a file only its owner can read (else "
                            "BROKERGATE_FLEET_KEY or BROKERGATE_FLEET_KEY_FILE); make one with "
                            "`brokergate fleet keygen`")
    fleet.add_argument("--lease-ttl", type=_positive, metavar="SECONDS",
                       help="how long an account's lease outlives a holder that died (default "
                            "10): a standby takes over within it")


def _add_run_parser(sub: Any) -> None:
    run = sub.add_parser(
        "run", allow_abbrev=False,
        help="hold the sessions a file declares, on their schedules, and serve /metrics, "
             "/healthz, /status and a status page (needs brokergate[ops])")
    run.add_argument("file", metavar="SESSIONS.toml",
                     help="the sessions, their schedules, the coordinator and the audit file "
                          "(docs/operations.md); SIGHUP reloads it, SIGTERM logs out and stops")
    run.add_argument("--check", action="store_true",
                     help="read the file, say what it declares or what is wrong with it, and "
                          "exit (0: no problems, 2: mistakes)")


def _add_fleet_parser(sub: Any) -> None:
    fleet = sub.add_parser("fleet", allow_abbrev=False,
                           help="the fleet's Redis coordinator: its state, a new fleet key")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", required=True, metavar="COMMAND")
    status = fleet_sub.add_parser(
        "status", allow_abbrev=False,
        help="holders, leases, fences, handovers, flight outcomes, rate limits and stored "
             "tokens (no secret is read or shown; needs no fleet key)")
    _redis_options(status, required=True)
    status.add_argument("--json", action="store_true", help="one JSON document, for machines")
    keygen = fleet_sub.add_parser(
        "keygen", allow_abbrev=False,
        help="make a new fleet key: printed on stdout, or written to --out with mode 0600")
    keygen.add_argument("--out", type=Path, metavar="FILE",
                        help="write the key to this new file (mode 0600) instead of stdout")
    keygen.add_argument("--force", action="store_true",
                        help="replace --out if it exists")
