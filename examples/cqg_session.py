"""Hold a CQG WebAPI session with brokergate, through a dropped connection: runnable against the
simulator.

    .venv/bin/python examples/cqg_session.py

It starts the CQG simulator in this process, logs on as "alice", sends an application message
(the simulator echoes it back), then has the simulator drop the TCP connection. brokergate
restores the session on a new connection (no new logon) and tells the application to subscribe
again, which it does. Point CqgConfig at wss://demoapi.cqg.com:443 to use it for real.
"""

from __future__ import annotations

import trio

from brokergate import (
    AuditLog,
    BrokerMessage,
    CqgConfig,
    CqgServerMessage,
    LoginFailed,
    Notice,
    Secret,
    Session,
    open_session,
)
from brokergate.simulators.cqg import demo_accounts, run_cqg_simulator

#: Stands for a real subscription built with CQG's own schema (ClientMsg field 4,
#: market_data_subscriptions): brokergate passes it through without knowing it.
SUBSCRIBE = bytes.fromhex("220408011001")


async def application(session: Session, done: trio.Event) -> None:
    """What a trading process does with the session: subscribe, read, subscribe again after a
    restore (CQG drops subscriptions with the connection)."""
    async with session.events() as events:
        await session.send(SUBSCRIBE)
        async for event in events:
            if isinstance(event, BrokerMessage) and isinstance(event.message, CqgServerMessage):
                print(f"  application message: {event.message.raw.hex()}")
            elif isinstance(event, Notice) and event.kind == "restored":
                print(f"  {event.detail}")
                await session.send(SUBSCRIBE)
                done.set()


async def main() -> None:
    async with run_cqg_simulator(demo_accounts()) as sim:
        config = CqgConfig(url=sim.url, user_name="alice", password=Secret("alice-pw"),
                           client_app_id="WebApiTest")
        async with open_session(config, audit=AuditLog.disabled()) as session:
            try:
                await session.wait_authenticated()
            except LoginFailed as exc:
                print("logon failed:", exc)
                return
            print("authenticated; CQG protocol", session.outcome()["server_protocol_version"])
            restored = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(application, session, restored)
                await trio.sleep(0.2)
                print("the simulator drops the TCP connection")
                await sim.drop("alice")
                await restored.wait()
                await trio.sleep(0.2)
                nursery.cancel_scope.cancel()
            outcome = session.outcome()
            print(f"logons: {outcome['logons']}, restores: {outcome['restores']}")
        print("logged off; state:", session.state)


if __name__ == "__main__":
    trio.run(main)
