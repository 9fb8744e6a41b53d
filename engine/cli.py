"""The ``brokergate`` command line.

    brokergate demo                         the main job, against the built-in simulators
    brokergate simulate qst|cqg|firstock    run a broker simulator in the foreground
    brokergate login qst|cqg|firstock ...   log in, optionally hold the session, log out
    brokergate diagrams [--trace AUDIT]     state diagrams and policy pages (or one session's path)

``login`` prints one JSON result line on stdout and audit events as JSON lines on stderr (or to
``--audit-log``). Passwords come from an environment variable, a file or a prompt, never from the
command line. Exit codes: 0 authenticated, 2 usage or configuration error, 3 failed,
4 locked_out, 5 provisioning, 6 gave up after retries or timeouts, 7 displaced.
"""

from __future__ import annotations

import argparse
import getpass
import importlib.metadata
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import trio

from brokergate.engine._audit import AuditLog
from brokergate.engine._errors import BrokergateError, ConfigurationError, SessionError
from brokergate.engine._gateway import open_session
from brokergate.engine._tokens import FileTokenStore
from brokergate.machines import DISCONNECTED, TERMINAL_STATES, Backoff, Secret, Transitioned
from brokergate.machines.cqg import DEFAULT_CLIENT_VERSION, CqgConfig
from brokergate.machines.firstock import FirstockConfig
from brokergate.machines.qst import Coalescing, QstConfig
from brokergate.machines.qst import qst_pb2 as pb

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_FAILED = 3
EXIT_LOCKED_OUT = 4
EXIT_PROVISIONING = 5
EXIT_GAVE_UP = 6
EXIT_DISPLACED = 7

#: Reasons that are not plain failures, by exit code.
_EXIT_BY_REASON = {
    "invalid_config": EXIT_USAGE,
    "gave_up": EXIT_GAVE_UP,
    "displaced": EXIT_DISPLACED,
}
_EXIT_BY_STATE = {"locked_out": EXIT_LOCKED_OUT, "provisioning": EXIT_PROVISIONING,
                  "displaced": EXIT_DISPLACED}

_COALESCING = {
    "uncoalesced": Coalescing.UNCOALESCED,
    "100ms": Coalescing.MS_100,
    "250ms": Coalescing.MS_250,
}


#: Commands that live in the repository, not in the wheel, with what they are.
_CHECKOUT_ONLY = {
    "bench": "benchmarks",
    "reliability": "reliability and security suite",
}


class UsageError(Exception):
    """A mistake on the command line or in the environment; exit 2."""


def exit_code(outcome: dict[str, Any]) -> int:
    """The process exit code for a session outcome (``outcome`` as in the result line)."""
    if outcome["outcome"] == "authenticated":
        return EXIT_OK
    reason = outcome.get("reason")
    if reason in _EXIT_BY_REASON:
        return _EXIT_BY_REASON[reason]
    return _EXIT_BY_STATE.get(outcome.get("state", ""), EXIT_FAILED)


# ---------------------------------------------------------------------------------------------
# argument parsing


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


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _add_simulate_parser(sub: Any) -> None:
    sim = sub.add_parser("simulate", help="run a broker simulator in the foreground",
                         allow_abbrev=False)
    sim_sub = sim.add_subparsers(dest="broker", required=True, metavar="BROKER")
    sim_qst = sim_sub.add_parser("qst", help="the QST market-data API", allow_abbrev=False)
    sim_cqg = sim_sub.add_parser("cqg", help="CQG WebAPI", allow_abbrev=False)
    sim_fs = sim_sub.add_parser("firstock", help="Firstock (REST and sockets)",
                                allow_abbrev=False)
    for p in (sim_qst, sim_cqg, sim_fs):
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=0, help="0 picks a free port")


def _add_checkout_only_parsers(sub: Any) -> None:
    """Listed for --help only: these run from a checkout of the repository, not an install."""
    for name, what in _CHECKOUT_ONLY.items():
        sub.add_parser(name, add_help=False,
                       help=f"{what} (from a checkout: python3 tasks.py {name})")


def build_parser() -> argparse.ArgumentParser:
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
    _add_simulate_parser(sub)

    login = sub.add_parser("login", help="log in to a broker", allow_abbrev=False)
    login_sub = login.add_subparsers(dest="broker", required=True, metavar="BROKER")
    q = login_sub.add_parser("qst", help="the QST market-data API", allow_abbrev=False)
    q.add_argument("--url", required=True,
                   help="the QST endpoint; wss:// unless given (ws:// only to loopback)")
    q.add_argument("--user", required=True, help="QST user name")
    q.add_argument("--client-id", required=True)
    q.add_argument("--password-version", type=int, default=1)
    q.add_argument("--coalescing", choices=sorted(_COALESCING),
                   help="requested quote coalescing (absent: the server's default)")
    q.add_argument("--coalesce-last-trade", choices=["yes", "no"])
    q.add_argument("--white-label-code")
    q.add_argument("--local-ip")
    q.add_argument("--translate", nargs="+", metavar="SYMBOL",
                   help="after login, translate these instrument symbols and print the result")
    _common_login_options(q)

    c = login_sub.add_parser("cqg", help="CQG WebAPI (protocol 2.230)", allow_abbrev=False)
    c.add_argument("--url", required=True,
                   help="the WebAPI endpoint, e.g. wss://demoapi.cqg.com:443 (ws:// only to "
                        "loopback)")
    c.add_argument("--user", help="CQG user name (not with --access-token-env)")
    c.add_argument("--client-app-id", help="the id CQG assigned to the application")
    c.add_argument("--private-label", help="firm or vendor id (default: the client app id)")
    c.add_argument("--client-version", default=DEFAULT_CLIENT_VERSION)
    c.add_argument("--access-token-env", type=_env_name, metavar="VAR",
                   help="log on with the access token in this environment variable instead "
                        "of a password")
    c.add_argument("--otp-seed-env", type=_env_name, metavar="VAR",
                   help="environment variable holding a TOTP seed, used when CQG asks for a "
                        "one-time password")
    c.add_argument("--drop-concurrent-session", choices=["yes", "no"],
                   help="whether CQG should drop this user's other sessions (absent: CQG's "
                        "default, which drops them)")
    c.add_argument("--no-restore", action="store_true",
                   help="do not ask CQG to keep the session for a restore after a disconnect")
    c.add_argument("--min-logon-interval", type=float, default=60.0, metavar="SECONDS",
                   help="least time between two full logons of the user (default %(default)s)")
    _common_login_options(c)

    f = login_sub.add_parser("firstock", help="Firstock (REST login, then a socket)",
                             allow_abbrev=False)
    f.add_argument("--base-url", required=True,
                   help="e.g. https://connect.thefirstock.com/api/V3 (http:// only to loopback)")
    f.add_argument("--user", required=True, help="Firstock user id")
    f.add_argument("--vendor-code", required=True)
    f.add_argument("--api-version", choices=["v3", "v4"],
                   help="how the password travels (default: read from the base URL)")
    f.add_argument("--api-key-env", type=_env_name, default="BROKERGATE_API_KEY", metavar="VAR",
                   help="environment variable holding the API key (default %(default)s)")
    f.add_argument("--totp-seed-env", type=_env_name, metavar="VAR",
                   help="environment variable holding the TOTP seed (base32)")
    f.add_argument("--totp-env", type=_env_name, metavar="VAR",
                   help="environment variable holding one TOTP code, for a one-off login")
    f.add_argument("--socket", choices=["noren", "v2", "none"], default="none")
    f.add_argument("--socket-url", help="the market-data socket (required unless --socket none)")
    f.add_argument("--token-dir", type=Path, metavar="DIR",
                   help="keep the session token here (one 0600 file per user) so the next "
                        "run reuses today's token")
    f.add_argument("--keep-session", action="store_true",
                   help="leave without logging out, so that the token stays valid (and, with "
                        "--token-dir, is reused by the next run)")
    _common_login_options(f)
    return parser


def _add_demo_parser(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run sessions against the built-in simulators",
                          allow_abbrev=False)
    demo.add_argument("--out", default="demo-output",
                      help="folder for the audit log, summary and traced diagrams "
                           "(default %(default)s)")
    demo.add_argument("--scenario", action="append", metavar="NAME",
                      help="run only this scenario, or all of one broker's (qst, cqg, "
                           "firstock); repeatable")
    demo.add_argument("--list", action="store_true", help="list the scenarios and exit")
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


def read_env_secret(var: str, what: str) -> Secret:
    value = os.environ.get(var)
    if not value:
        raise UsageError(f"no {what}: the environment variable {var} is not set or empty")
    return Secret(value)


def read_password(args: argparse.Namespace) -> Secret:
    """The password from --password-file, the environment, or a prompt on a terminal."""
    if args.password_file is not None:
        try:
            lines = args.password_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            # The path is not repeated: it may be the password itself, typed in the wrong place.
            raise UsageError("--password-file: no such file (the path given is not repeated "
                             "here in case it is a secret)") from None
        except OSError as exc:
            raise UsageError(f"cannot read --password-file {args.password_file}: "
                             f"{exc.strerror}") from None
        if not lines or not lines[0]:
            raise UsageError(f"--password-file {args.password_file} is empty")
        return Secret(lines[0])
    value = os.environ.get(args.password_env)
    if value:
        return Secret(value)
    if sys.stdin.isatty():
        return Secret(getpass.getpass(f"password for {args.user}: "))
    raise UsageError(f"no password: set the environment variable {args.password_env} "
                     "(or use --password-env VAR / --password-file FILE)")


def with_default_scheme(url: str, secure: str) -> str:
    """TLS by default: a URL given without a scheme gets ``secure://``."""
    return url if "://" in url else f"{secure}://{url}"


def qst_config(args: argparse.Namespace, password: Secret) -> QstConfig:
    last_trade = None if args.coalesce_last_trade is None else args.coalesce_last_trade == "yes"
    return QstConfig(
        url=with_default_scheme(args.url, "wss"),
        user_name=args.user,
        password=password,
        client_id=args.client_id,
        password_version=args.password_version,
        coalescing_interval=_COALESCING[args.coalescing] if args.coalescing else None,
        coalesce_last_trade=last_trade,
        white_label_code=args.white_label_code,
        local_ip=args.local_ip,
        connect_timeout=args.connect_timeout,
        login_timeout=args.login_timeout,
        ca_file=args.ca_file,
        backoff=Backoff(max_attempts=args.max_attempts if args.max_attempts > 0 else None),
    )


def cqg_config(args: argparse.Namespace) -> CqgConfig:
    drop = None if args.drop_concurrent_session is None else args.drop_concurrent_session == "yes"
    credentials: dict[str, Any] = {}
    if args.access_token_env:
        if args.user:
            raise UsageError("--user and --access-token-env exclude each other: an access token "
                             "names its user")
        credentials["access_token"] = read_env_secret(args.access_token_env, "access token")
    else:
        if not args.user:
            raise UsageError("give --user (with a password) or --access-token-env VAR")
        credentials.update(user_name=args.user, password=read_password(args))
    if args.otp_seed_env:
        credentials["otp_seed"] = read_env_secret(args.otp_seed_env, "TOTP seed")
    return CqgConfig(
        url=with_default_scheme(args.url, "wss"),
        client_app_id=args.client_app_id,
        private_label=args.private_label,
        client_version=args.client_version,
        drop_concurrent_session=drop,
        restore=not args.no_restore,
        min_logon_interval=args.min_logon_interval,
        connect_timeout=args.connect_timeout,
        login_timeout=args.login_timeout,
        ca_file=args.ca_file,
        backoff=Backoff(max_attempts=args.max_attempts if args.max_attempts > 0 else None),
        **credentials,
    )


def firstock_config(args: argparse.Namespace) -> FirstockConfig:
    if bool(args.totp_seed_env) == bool(args.totp_env):
        raise UsageError("give exactly one of --totp-seed-env VAR or --totp-env VAR")
    seed = read_env_secret(args.totp_seed_env, "TOTP seed") if args.totp_seed_env else None
    code = read_env_secret(args.totp_env, "TOTP code") if args.totp_env else None
    return FirstockConfig(
        base_url=with_default_scheme(args.base_url, "https"),
        user_id=args.user,
        password=read_password(args),
        api_key=read_env_secret(args.api_key_env, "API key"),
        vendor_code=args.vendor_code,
        api_version=args.api_version,
        socket=args.socket,
        socket_url=with_default_scheme(args.socket_url, "wss") if args.socket_url else None,
        request_timeout=args.login_timeout,
        connect_timeout=args.connect_timeout,
        login_timeout=args.login_timeout,
        ca_file=args.ca_file,
        backoff=Backoff(max_attempts=args.max_attempts if args.max_attempts > 0 else None),
        totp_seed=seed,
        totp=code,
    )


# ---------------------------------------------------------------------------------------------
# login


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


async def run_login(config: Any, args: argparse.Namespace, audit: AuditLog) -> dict[str, Any]:
    """Log in, translate and hold as asked, log out; the result line as a dict."""
    token_dir = getattr(args, "token_dir", None)
    store = FileTokenStore(token_dir) if token_dir is not None else None
    keep = bool(getattr(args, "keep_session", False))
    async with open_session(config, audit=audit, token_store=store,
                            keep_session=keep) as session:
        try:
            await session.wait_authenticated()
        except SessionError:
            return _result(session, authenticated=False)
        result = _result(session, authenticated=True)
        if getattr(args, "translate", None):
            result["translated"] = await _translate(session, args.translate)
        if args.hold > 0:
            with trio.move_on_after(args.hold):
                await _watch_until_ended(session)
            if _ended(session.state):
                return _result(session, authenticated=False)
            # The counts (attempts; CQG logons and restores) as they stand after the hold.
            result.update(session.outcome(), epoch=session.epoch)
    result["state"] = session.state  # after the logout
    return result


def _ended(state: str) -> bool:
    return state in TERMINAL_STATES or state == DISCONNECTED


async def _watch_until_ended(session: Any) -> None:
    """Return when the session ends by itself (failed, displaced, logged off by the broker)."""
    async with session.events() as events:
        async for event in events:
            if isinstance(event, Transitioned) and _ended(event.dst):
                return


async def _translate(session: Any, symbols: list[str]) -> list[dict[str, Any]] | dict[str, str]:
    request = pb.TranslateInstrumentSymbolRequest(symbol_source=1, instrument_symbols=symbols)
    try:
        answer = await session.request(request)
    except BrokergateError as exc:
        return {"error": str(exc)}
    rows = []
    for rec in answer.records:
        row: dict[str, Any] = {"symbol": rec.symbol}
        if rec.HasField("instrument_id"):
            row["instrument_id"] = rec.instrument_id
        if rec.HasField("error"):
            row["error"] = rec.error
        rows.append(row)
    return rows


def _login(args: argparse.Namespace) -> int:
    config: Any
    if args.broker == "cqg":
        config = cqg_config(args)
    elif args.broker == "firstock":
        config = firstock_config(args)
    else:
        config = qst_config(args, read_password(args))
    audit = AuditLog.to_file(args.audit_log) if args.audit_log else AuditLog.stderr()
    try:
        result = trio.run(run_login, config, args, audit)
    finally:
        audit.close()
    print(json.dumps(result, default=str), flush=True)
    return exit_code(result)


# ---------------------------------------------------------------------------------------------
# simulate


async def _simulate_broker(broker: str, host: str, port: int) -> None:
    # Imported here: only this command needs the simulators.
    sim: Any
    extra = ""
    if broker == "cqg":
        from brokergate.simulators.cqg import DEMO_OTP_SEED, CqgSimulator  # noqa: PLC0415
        from brokergate.simulators.cqg import demo_accounts as cqg_accounts  # noqa: PLC0415

        sim, name = CqgSimulator(cqg_accounts()), "CQG WebAPI"
        extra = f"; TOTP seed of otp: {DEMO_OTP_SEED}"
    elif broker == "firstock":
        from brokergate.simulators.firstock import (  # noqa: PLC0415
            DEMO_FIXED_TOTP,
            DEMO_TOTP_SEED,
            FirstockSimulator,
        )
        from brokergate.simulators.firstock import demo_accounts as fs_accounts  # noqa: PLC0415

        sim, name = FirstockSimulator(fs_accounts()), "Firstock"
        extra = (f"; API keys key-<user>, vendor codes <user>_API; TOTP seed of totp: "
                 f"{DEMO_TOTP_SEED}; code of fixed: {DEMO_FIXED_TOTP}")
    else:
        from brokergate.simulators.qst import QstSimulator  # noqa: PLC0415
        from brokergate.simulators.qst import demo_accounts as qst_accounts  # noqa: PLC0415

        sim, name = QstSimulator(qst_accounts()), "QST"
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.serve, host, port)
        if broker == "cqg":
            # Redirected to this very simulator: its address is known only now.
            sim.add_account(cqg_accounts(redirect_url=sim.url)[-1])
        print(f"{name} simulator listening on {sim.url}", flush=True)
        if broker == "firstock":
            print(f"REST base URL {sim.base_url}; sockets: noren {sim.noren_url}, "
                  f"v2 {sim.socket_url}", flush=True)
        users = ", ".join(sim.account_names())
        print(f"accounts: {users} (password <user>-pw{extra}; see "
              f"`pydoc brokergate.simulators.{broker}.demo_accounts`)", flush=True)
        print("stop with Ctrl-C", flush=True)


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C: a KeyboardInterrupt, or one that trio delivered inside the
    exception groups of the nurseries it passed through, with nothing else in them."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(KeyboardInterrupt)[1] is None
    return isinstance(exc, KeyboardInterrupt)


def _simulate(args: argparse.Namespace) -> int:
    try:
        trio.run(_simulate_broker, args.broker, args.host, args.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    except BaseException as exc:
        if not _interrupted(exc):
            raise
        print("simulator stopped", file=sys.stderr)
    return EXIT_OK


def _fail_usage(message: str) -> NoReturn:
    print(f"brokergate: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = build_parser()
    _refuse_secret_arguments(argv, _option_names(parser))
    args, extras = parser.parse_known_args(argv)
    if extras:
        raise UsageError(_unrecognized(extras))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in _CHECKOUT_ONLY:
        _fail_usage(f"`brokergate {argv[0]}` is not part of the installed package: the "
                    f"{_CHECKOUT_ONLY[argv[0]]} run from a checkout of the brokergate repository, "
                    f"as `python3 tasks.py {argv[0]}`")
    try:
        args = _parse(argv)
        if args.command == "login":
            return _login(args)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "diagrams":
            from brokergate.engine import diagrams  # noqa: PLC0415

            try:
                diagrams.main(args.out, args.trace, args.session)
            except ConfigurationError as exc:
                raise UsageError(str(exc)) from None
            return EXIT_OK
        from brokergate.engine.demo import list_scenarios, run_demo  # noqa: PLC0415 - the simulators

        if args.list:
            list_scenarios()
            return EXIT_OK
        return run_demo(Path(args.out), args.scenario, live=False if args.plain else None)
    except UsageError as exc:
        _fail_usage(str(exc))
    except BaseException as exc:
        if not _interrupted(exc):
            raise
        return 130


if __name__ == "__main__":
    sys.exit(main())
