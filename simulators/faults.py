"""A fault-injecting TCP proxy for loopback tests: it sits between a session and a simulator.

Each TCP connection the proxy accepts is given a list of ``Fault``s by its ``FaultPlan``, either
scripted connection by connection or drawn from a seeded random generator, so that a failing run
can be replayed from its seed. The proxy knows nothing of WebSocket or HTTP: it moves bytes, and
that is the point. A fault lands wherever the bytes happen to be, inside the opening handshake,
halfway through a protobuf frame, between a login and its answer.

The kinds:

========  ======================================================================================
latency   every chunk waits ``delay`` seconds before it is forwarded
throttle  bytes are forwarded at ``rate`` bytes per second
split     every chunk is forwarded in pieces of 1 to ``piece`` bytes
drop      the connection is closed cleanly (FIN both ways) before the write that crosses the
          trigger: it ends between two writes
reset     the connection is reset (RST both ways) at the trigger byte
truncate  the write that crosses the trigger is cut short inside it (at least one byte is
          lost), then the connection closes
stall     forwarding stops without a close: the peer has vanished (a half-open connection);
          what the client sends is read and thrown away until the client gives up and closes
========  ======================================================================================

The one-shot kinds (drop, reset, truncate, stall) trigger when ``at_byte`` bytes have passed in
their direction or ``at_seconds`` after the connection opened, whichever comes first.
Simulator-side scripted faults (a drop in the middle of a login, a server that goes silent)
exist too; this proxy adds faults the server cannot script, at arbitrary byte positions.

The schedules are in ``_fault_plans`` and the proxy in ``_fault_proxy``; import both from here.
"""

from brokergate.simulators._fault_plans import (
    FAULT_KINDS,
    ONE_SHOT,
    Direction,
    Fault,
    FaultPlan,
    PlanMaker,
    random_fault,
    random_plan,
)
from brokergate.simulators._fault_proxy import FaultProxy, ProxyStats

__all__ = [
    "FAULT_KINDS",
    "ONE_SHOT",
    "Direction",
    "Fault",
    "FaultPlan",
    "FaultProxy",
    "PlanMaker",
    "ProxyStats",
    "random_fault",
    "random_plan",
]
