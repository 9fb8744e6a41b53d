"""The morning login of many Firstock accounts from one process, over real loopback sockets.

    .venv/bin/python bench/firstock_logins.py [--accounts 200] [--rate 50] [--socket none]

Starts the Firstock simulator with a request limit of ``--rate`` per second (it answers 429 past
it), then opens one session per account at once from this process, with the client's shared
limit set to the same rate, and holds them until all are authenticated. Real time, real HTTP
and WebSockets on 127.0.0.1. Prints the wall time, the request rate the broker saw, how many
429s it sent, the time each session took to authenticate (median and worst) and the CPU time
the process spent per login. ``--rate 0`` lifts both limits, to show what the engine itself
costs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import trio

from engine import AuditLog, FirstockConfig, Secret, open_session
from simulators.firstock import FirstockAccount, run_firstock_simulator

TOTP = "123456"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0,
                        help="requests/s allowed by the simulator and used by the client "
                             "(0: no limit on either side)")
    parser.add_argument("--socket", choices=["none", "noren", "v2"], default="none")
    return parser.parse_args()


async def morning(accounts: int, rate: float, socket: str) -> None:
    users = [f"U{n:04d}" for n in range(accounts)]
    limit = rate if rate > 0 else None
    async with run_firstock_simulator(
        [FirstockAccount(u, f"{u}-pw", fixed_totp=TOTP) for u in users], rate_limit=limit,
    ) as sim:
        socket_url = {"none": None, "noren": sim.noren_url, "v2": sim.socket_url}[socket]
        took: list[float] = []
        everyone_in = trio.Event()
        start = trio.current_time()
        cpu = time.process_time()

        async def one(user: str) -> None:
            acct = sim.account(user)
            assert acct is not None
            config = FirstockConfig(
                base_url=sim.base_url, user_id=user, password=Secret(f"{user}-pw"),
                api_key=Secret(acct.api_key), vendor_code=acct.vendor_code, totp=Secret(TOTP),
                socket=socket, socket_url=socket_url,
                requests_per_second=limit,
            )
            async with open_session(config, audit=AuditLog.disabled()) as s:
                await s.wait_authenticated()
                took.append(trio.current_time() - start)
                if len(took) == accounts:
                    everyone_in.set()
                await everyone_in.wait()  # hold the session until everyone is in

        async with trio.open_nursery() as nursery:
            for user in users:
                nursery.start_soon(one, user)
            await everyone_in.wait()
            wall = trio.current_time() - start
            cpu = time.process_time() - cpu
        logins = sorted(sim.stats.request_times)[:accounts]
        seen = (len(logins) - 1) / (logins[-1] - logins[0]) if len(logins) > 1 else 0.0
        print("| accounts | socket | limit req/s | wall s | broker saw req/s | 429s "
              "| authenticated after: median s | worst s | CPU ms per login |")
        print("|---|---|---|---|---|---|---|---|---|")
        print(f"| {accounts} | {socket} | {rate if limit else 'none'} | {wall:.2f} | {seen:.1f} "
              f"| {sim.stats.status_429} | {statistics.median(took):.2f} | {max(took):.2f} "
              f"| {cpu / accounts * 1e3:.2f} |")


def main() -> None:
    args = arguments()
    trio.run(morning, args.accounts, args.rate, args.socket)


if __name__ == "__main__":
    main()
