"""CQG's part of the ``brokergate`` command line: ``brokergate login cqg`` (see
``brokergate.machines._broker.BrokerCli``).

Imported only by the command line (``brokergate.engine.cli``), never by the library. The options
every login has (password sources, timeouts, ``--hold``...) are the engine's; an option ending in
``-env`` names an environment variable, and the engine holds it to a variable's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brokergate.machines._broker import CommandLineError, SecretSource
from brokergate.machines._config import with_default_scheme
from brokergate.machines.cqg.config import DEFAULT_CLIENT_VERSION, CqgConfig


class CqgCli:
    help = "CQG WebAPI (protocol 2.230)"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", required=True,
                            help="the WebAPI endpoint, e.g. wss://demoapi.cqg.com:443 (ws:// only "
                                 "to loopback)")
        parser.add_argument("--user", help="CQG user name (not with --access-token-env)")
        parser.add_argument("--client-app-id", help="the id CQG assigned to the application")
        parser.add_argument("--private-label",
                            help="firm or vendor id (default: the client app id)")
        parser.add_argument("--client-version", default=DEFAULT_CLIENT_VERSION)
        parser.add_argument("--access-token-env", metavar="VAR",
                            help="log on with the access token in this environment variable "
                                 "instead of a password")
        parser.add_argument("--otp-seed-env", metavar="VAR",
                            help="environment variable holding a TOTP seed, used when CQG asks "
                                 "for a one-time password")
        parser.add_argument("--drop-concurrent-session", choices=["yes", "no"],
                            help="whether CQG should drop this user's other sessions (absent: "
                                 "CQG's default, which drops them)")
        parser.add_argument("--no-restore", action="store_true",
                            help="do not ask CQG to keep the session for a restore after a "
                                 "disconnect")
        parser.add_argument("--min-logon-interval", type=float, default=60.0, metavar="SECONDS",
                            help="least time between two full logons of the user (default "
                                 "%(default)s)")

    def config(self, args: Any, secrets: SecretSource) -> CqgConfig:
        drop = (None if args.drop_concurrent_session is None
                else args.drop_concurrent_session == "yes")
        credentials: dict[str, Any] = {}
        if args.access_token_env:
            if args.user:
                raise CommandLineError("--user and --access-token-env exclude each other: an "
                                       "access token names its user")
            credentials["access_token"] = secrets.from_env(args.access_token_env, "access token")
        else:
            if not args.user:
                raise CommandLineError("give --user (with a password) or --access-token-env VAR")
            credentials.update(user_name=args.user, password=secrets.password(args))
        if args.otp_seed_env:
            credentials["otp_seed"] = secrets.from_env(args.otp_seed_env, "TOTP seed")
        return CqgConfig(
            url=with_default_scheme(args.url, "wss"),
            client_app_id=args.client_app_id,
            private_label=args.private_label,
            client_version=args.client_version,
            drop_concurrent_session=drop,
            restore=not args.no_restore,
            min_logon_interval=args.min_logon_interval,
            **credentials,
        )

    async def after_login(self, session: Any, args: Any) -> Mapping[str, Any]:
        return {}


CLI = CqgCli()
