"""Log in to QST with brokergate: the README's example, runnable against the simulator.

    .venv/bin/python examples/qst_login.py

It starts the QST simulator in this process, logs in as the simulator's "alice", translates two
symbols, and logs out. Point QstConfig at a real wss:// URL to use it for real.
"""

from __future__ import annotations

import trio

from brokergate import AuditLog, Coalescing, LoginFailed, QstConfig, Secret, open_session
from brokergate.qst import pb
from brokergate.simulators.qst import demo_accounts, run_qst_simulator


async def main() -> None:
    async with run_qst_simulator(demo_accounts()) as sim:
        config = QstConfig(
            url=sim.url,
            user_name="alice",
            password=Secret("alice-pw"),
            client_id="example",
            coalescing_interval=Coalescing.MS_250,
        )
        async with open_session(config, audit=AuditLog.disabled()) as session:
            try:
                await session.wait_authenticated()
            except LoginFailed as exc:
                print("login failed:", exc)
                return
            print("authenticated; granted:", session.outcome()["granted"])
            answer = await session.request(pb.TranslateInstrumentSymbolRequest(
                symbol_source=1, instrument_symbols=["ESZ6", "NQZ6"]))
            for record in answer.records:
                print(f"  {record.symbol} -> instrument {record.instrument_id}")
        print("logged out; state:", session.state)


if __name__ == "__main__":
    trio.run(main)
