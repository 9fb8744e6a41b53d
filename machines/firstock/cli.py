"""Firstock's part of the ``brokergate`` command line: ``brokergate login firstock`` (see
``brokergate.machines._broker.BrokerCli``).

Imported only by the command line (``brokergate.engine.cli``), never by the library. The options
every login has (password sources, timeouts, ``--hold``...) are the engine's, and so are
``--token-dir`` and ``--keep-session``, which it gives every broker with day-long tokens; an
option ending in ``-env`` names an environment variable, and the engine holds it to a variable's
name.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import Any

from brokergate.machines._broker import CommandLineError, SecretSource
from brokergate.machines._config import with_default_scheme
from brokergate.machines.firstock.config import FirstockConfig


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError("must be a positive number of requests per second")
    return value


class FirstockCli:
    help = "Firstock (REST login, then a socket)"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--base-url", required=True,
                            help="e.g. https://connect.thefirstock.com/api/V3 (http:// only to "
                                 "loopback)")
        parser.add_argument("--user", required=True, help="Firstock user id")
        parser.add_argument("--vendor-code", required=True)
        parser.add_argument("--api-version", choices=["v3", "v4"],
                            help="how the password travels (default: read from the base URL)")
        parser.add_argument("--api-key-env", default="BROKERGATE_API_KEY", metavar="VAR",
                            help="environment variable holding the API key (default "
                                 "%(default)s)")
        parser.add_argument("--totp-seed-env", metavar="VAR",
                            help="environment variable holding the TOTP seed (base32)")
        parser.add_argument("--totp-env", metavar="VAR",
                            help="environment variable holding one TOTP code, for a one-off "
                                 "login")
        parser.add_argument("--requests-per-second", type=_rate, metavar="N",
                            help="the broker's REST limit per host (default 10): every call, "
                                 "logins included, is paced to it; with --coordinator the limit "
                                 "is shared by every process of the fleet calling that host")
        parser.add_argument("--socket", choices=["noren", "v2", "none"], default="none")
        parser.add_argument("--socket-url",
                            help="the market-data socket (required unless --socket none)")

    def config(self, args: Any, secrets: SecretSource) -> FirstockConfig:
        if bool(args.totp_seed_env) == bool(args.totp_env):
            raise CommandLineError("give exactly one of --totp-seed-env VAR or --totp-env VAR")
        seed = secrets.from_env(args.totp_seed_env, "TOTP seed") if args.totp_seed_env else None
        code = secrets.from_env(args.totp_env, "TOTP code") if args.totp_env else None
        return FirstockConfig(
            base_url=with_default_scheme(args.base_url, "https"),
            user_id=args.user,
            password=secrets.password(args),
            api_key=secrets.from_env(args.api_key_env, "API key"),
            vendor_code=args.vendor_code,
            api_version=args.api_version,
            socket=args.socket,
            socket_url=with_default_scheme(args.socket_url, "wss") if args.socket_url else None,
            # A REST call is bounded like the login it serves (--login-timeout, the engine's).
            request_timeout=args.login_timeout,
            totp_seed=seed,
            totp=code,
            **({"requests_per_second": args.requests_per_second}
               if args.requests_per_second is not None else {}),
        )

    async def after_login(self, session: Any, args: Any) -> Mapping[str, Any]:
        return {}


CLI = FirstockCli()
