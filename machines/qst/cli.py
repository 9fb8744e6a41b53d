"""QST's part of the ``brokergate`` command line: ``brokergate login qst`` (see
``brokergate.machines._broker.BrokerCli``).

Imported only by the command line (``brokergate.engine.cli``), never by the library. The options
every login has (password sources, timeouts, ``--hold``...) are the engine's; an option ending in
``-env`` names an environment variable, and the engine holds it to a variable's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brokergate.machines._broker import SecretSource
from brokergate.machines._config import with_default_scheme
from brokergate.machines._sansio import BrokergateError
from brokergate.machines.qst import qst_pb2 as pb
from brokergate.machines.qst.codec import Coalescing
from brokergate.machines.qst.config import QstConfig

_COALESCING = {
    "uncoalesced": Coalescing.UNCOALESCED,
    "100ms": Coalescing.MS_100,
    "250ms": Coalescing.MS_250,
}


class QstCli:
    help = "the QST market-data API"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", required=True,
                            help="the QST endpoint; wss:// unless given (ws:// only to loopback)")
        parser.add_argument("--user", required=True, help="QST user name")
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--password-version", type=int, default=1)
        parser.add_argument("--coalescing", choices=sorted(_COALESCING),
                            help="requested quote coalescing (absent: the server's default)")
        parser.add_argument("--coalesce-last-trade", choices=["yes", "no"])
        parser.add_argument("--white-label-code")
        parser.add_argument("--local-ip")
        parser.add_argument("--translate", nargs="+", metavar="SYMBOL",
                            help="after login, translate these instrument symbols and print the "
                                 "result")

    def config(self, args: Any, secrets: SecretSource) -> QstConfig:
        password = secrets.password(args)
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
        )

    async def after_login(self, session: Any, args: Any) -> Mapping[str, Any]:
        if not args.translate:
            return {}
        return {"translated": await _translate(session, args.translate)}


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


CLI = QstCli()
