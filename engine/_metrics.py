"""Prometheus metrics for a gateway's sessions: opt-in, ``open_gateway(metrics=Metrics())``.

What is counted, and the names it is exported under (Prometheus conventions: base units,
``_total`` on counters; labels ``broker`` and, where it says so, ``state`` / ``reason`` /
``code`` / ``outcome``; ``account`` too when ``Metrics(account_label=True)``):

- ``brokergate_sessions`` (gauge): sessions open now, by ``state``.
- ``brokergate_transitions_total``: transitions, by the ``state`` entered and the ``reason``
  (``none`` when the transition has none).
- ``brokergate_login_duration_seconds`` (histogram): from the start of a login attempt (the
  session leaves ``disconnected``, ``backoff``, ``standby`` or ``authenticated`` for a state that
  logs in) to ``authenticated``; ``brokergate_restore_duration_seconds`` the same for a session
  restored (brokers whose sessions outlive the connection) rather than logged on again.
- ``brokergate_login_attempts_total``, ``brokergate_logons_total`` (new logons: authenticated by
  a full login), ``brokergate_restores_total`` by ``outcome`` (``restored``; ``failed``:
  refused, or its connection failed first).
- ``brokergate_broker_errors_total``: error codes the broker answered with, by ``code`` (the
  first 64 distinct codes of a broker; any more are counted as ``other``, so a broker cannot
  grow the series without bound).
- ``brokergate_rate_limit_wait_seconds`` (histogram): how long REST requests waited for the
  host's rate limit; ``brokergate_rate_limited_total``: answers 429 all the same.
- ``brokergate_slow_consumer_seconds_total``: time the session stopped reading its broker for
  a subscriber that was behind.
- ``brokergate_messages_received_total`` / ``brokergate_messages_sent_total``: WebSocket frames
  and REST answers from the broker; frames and REST requests to it.

How: each session has a ``SessionMeter`` of plain integers and floats that the driver bumps
(no lock, no label lookup: about a tenth of a microsecond per message, and a few tenths per
transition, bench/transitions.py). The numbers become Prometheus families only when scraped
(``collect``), summed over the sessions open now and those that have ended, so counters never
go back. Everything runs on the gateway's trio thread; ``collect`` only reads, taking copies of
the dicts first, so a scrape from prometheus_client's own threaded server is safe too.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import trio

from brokergate.engine._errors import ConfigurationError
from brokergate.machines import Transitioned
from brokergate.machines._states import (
    AUTHENTICATED,
    BACKOFF,
    DISCONNECTED,
    RESTORING,
    STANDBY,
)

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

#: States a login attempt starts from: leaving one of them for a state that logs in starts the
#: clock of ``login_duration`` (or ``restore_duration``).
_RESTING = frozenset({DISCONNECTED, BACKOFF, STANDBY, AUTHENTICATED})
#: Distinct error codes kept per broker; the rest are counted as ``other``.
MAX_ERROR_CODES = 64

LOGIN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Bucket counts, a sum and a count: what a Prometheus histogram exports."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def add(self, other: Histogram) -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.sum += other.sum
        self.count += other.count

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs as Prometheus wants them, ending with ``+Inf``."""
        out, running = [], 0
        for bound, n in zip((*map(_le, self.bounds), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, float(running)))
        return out


def _le(bound: float) -> str:
    return repr(float(bound))


class Counts:
    """What is counted: one session's (``SessionMeter``), or a label set's sum (the sessions
    that ended, then a scrape's total)."""

    __slots__ = ("attempts", "errors", "logins", "logons", "rate_limited", "rate_waits",
                 "received", "restore_failed", "restored", "restores", "sent", "slow_seconds",
                 "transitions")

    def __init__(self) -> None:
        self.received = self.sent = self.attempts = self.logons = 0
        self.restored = self.restore_failed = self.rate_limited = 0
        self.slow_seconds = 0.0
        self.transitions: dict[tuple[str, str], int] = {}
        self.errors: dict[str, int] = {}
        self.logins = Histogram(LOGIN_BUCKETS)
        self.restores = Histogram(LOGIN_BUCKETS)
        self.rate_waits = Histogram(WAIT_BUCKETS)

    def add(self, m: Counts) -> None:
        self.received += m.received
        self.sent += m.sent
        self.attempts += m.attempts
        self.logons += m.logons
        self.restored += m.restored
        self.restore_failed += m.restore_failed
        self.rate_limited += m.rate_limited
        self.slow_seconds += m.slow_seconds
        for key, n in list(m.transitions.items()):
            self.transitions[key] = self.transitions.get(key, 0) + n
        for code, n in list(m.errors.items()):
            self.errors[code] = self.errors.get(code, 0) + n
        self.logins.add(m.logins)
        self.restores.add(m.restores)
        self.rate_waits.add(m.rate_waits)


class SessionMeter(Counts):
    """What one session counts. The driver bumps the counters directly."""

    __slots__ = ("_attempt", "_since", "broker", "labels", "state")

    def __init__(self, broker: str, labels: tuple[str, ...]) -> None:
        super().__init__()
        self.broker = broker
        self.labels = labels  # (broker,) or (broker, account)
        self.state = DISCONNECTED
        self._attempt = 0
        self._since: float | None = None

    def __repr__(self) -> str:
        return f"<SessionMeter {self.broker} {self.state}>"

    def transition(self, record: Transitioned) -> None:
        """Count one transition (called for every transition of the session)."""
        src, dst = record.src, record.dst
        self.state = dst
        key = (dst, record.reason or "none")
        self.transitions[key] = self.transitions.get(key, 0) + 1
        if record.error_code is not None:
            self._error(record.error_code)
        if record.attempt > self._attempt:
            self.attempts += record.attempt - self._attempt
        self._attempt = record.attempt
        if dst == AUTHENTICATED:
            if src != AUTHENTICATED:
                since, self._since = self._since, None
                took = trio.current_time() - since if since is not None else None
                if src == RESTORING:
                    self.restored += 1
                    if took is not None:
                        self.restores.observe(took)
                else:
                    self.logons += 1
                    if took is not None:
                        self.logins.observe(took)
        elif src == RESTORING and dst != RESTORING:
            self.restore_failed += 1  # refused, or its connection failed; a logon may follow
            self._since = None
            if dst not in _RESTING:
                self._since = trio.current_time()
        elif src in _RESTING and dst not in _RESTING:
            self._since = trio.current_time()
        elif dst in _RESTING:
            self._since = None

    def _error(self, code: int) -> None:
        label = str(code)
        if label not in self.errors and len(self.errors) >= MAX_ERROR_CODES:
            label = "other"
        self.errors[label] = self.errors.get(label, 0) + 1

    def rate_wait(self, seconds: float) -> None:
        self.rate_waits.observe(seconds)


class Metrics:
    """The Prometheus metrics of the sessions of every gateway it is given to.

    ``Metrics()`` registers with a registry of its own (``metrics.registry``; serve it with
    ``prometheus_client.make_asgi_app(metrics.registry)`` or ``generate_latest``); pass
    ``registry=prometheus_client.REGISTRY`` to join the process's default one. Labels are
    ``broker`` and the like; ``account_label=True`` adds each session's ``account`` (one series
    per account: mind the cardinality). Needs ``prometheus_client`` (``brokergate[ops]``).
    """

    def __init__(self, *, registry: CollectorRegistry | None = None,
                 account_label: bool = False, namespace: str = "brokergate") -> None:
        try:
            from prometheus_client import CollectorRegistry  # noqa: PLC0415 - an extra's
        except ImportError as exc:  # pragma: no cover - the ops extra is installed in tests
            raise ConfigurationError(
                "metrics need prometheus_client: pip install 'brokergate[ops]'") from exc
        self.account_label = account_label
        self.namespace = namespace
        self._live: set[SessionMeter] = set()
        self._ended: dict[tuple[str, ...], Counts] = {}
        self.registry = registry if registry is not None else CollectorRegistry()
        self.registry.register(self)

    def __repr__(self) -> str:
        return f"<Metrics {len(self._live)} sessions open>"

    def session(self, broker: str, account: str) -> SessionMeter:
        """A meter for a new session (the gateway asks for one per session)."""
        labels = (broker, account) if self.account_label else (broker,)
        meter = SessionMeter(broker, labels)
        self._live.add(meter)
        return meter

    def ended(self, meter: SessionMeter) -> None:
        """The session is over: what it counted stays in the totals."""
        if meter in self._live:
            self._live.discard(meter)
            self._ended.setdefault(meter.labels, Counts()).add(meter)

    def describe(self) -> list[Any]:
        """The families (no samples needed): the registry refuses a second collector of the
        same names."""
        return list(self.collect())

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (  # noqa: PLC0415 - an extra's
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        live = list(self._live)
        totals: dict[tuple[str, ...], Counts] = {}
        for labels, ended in list(self._ended.items()):
            totals.setdefault(labels, Counts()).add(ended)
        states: dict[tuple[str, ...], int] = {}
        for meter in live:
            totals.setdefault(meter.labels, Counts()).add(meter)
            key = (*meter.labels, meter.state)
            states[key] = states.get(key, 0) + 1
        base = ["broker", "account"] if self.account_label else ["broker"]
        ns = self.namespace

        def counter(name: str, doc: str, attr: str) -> Any:
            family = CounterMetricFamily(f"{ns}_{name}", doc, labels=base)
            for labels, t in totals.items():
                family.add_metric(list(labels), getattr(t, attr))
            return family

        sessions = GaugeMetricFamily(f"{ns}_sessions", "Sessions open now, by state.",
                                     labels=[*base, "state"])
        for key, n in sorted(states.items()):
            sessions.add_metric(list(key), n)
        yield sessions
        transitions = CounterMetricFamily(
            f"{ns}_transitions", "Transitions, by the state entered and the reason.",
            labels=[*base, "state", "reason"])
        for labels, t in totals.items():
            for (state, reason), n in sorted(t.transitions.items()):
                transitions.add_metric([*labels, state, reason], n)
        yield transitions
        yield from self._histograms(HistogramMetricFamily, totals, base)
        yield counter("login_attempts", "Login attempts (connections opened to log in).",
                      "attempts")
        yield counter("logons", "New logons: authenticated by a full login.", "logons")
        restores = CounterMetricFamily(f"{ns}_restores", "Session restores, by outcome.",
                                       labels=[*base, "outcome"])
        for labels, t in totals.items():
            restores.add_metric([*labels, "restored"], t.restored)
            restores.add_metric([*labels, "failed"], t.restore_failed)
        yield restores
        errors = CounterMetricFamily(f"{ns}_broker_errors",
                                     "Error codes the broker answered with.",
                                     labels=[*base, "code"])
        for labels, t in totals.items():
            for code, n in sorted(t.errors.items()):
                errors.add_metric([*labels, code], n)
        yield errors
        yield counter("rate_limited", "REST answers 429 (too many requests).", "rate_limited")
        yield counter("slow_consumer_seconds",
                      "Seconds the session stopped reading its broker for a subscriber that "
                      "was behind.", "slow_seconds")
        yield counter("messages_received", "Frames and REST answers from the broker.",
                      "received")
        yield counter("messages_sent", "Frames and REST requests to the broker.", "sent")

    def _histograms(self, family_type: Any, totals: dict[tuple[str, ...], Counts],
                    base: list[str]) -> Iterator[Any]:
        for name, doc, attr in (
            ("login_duration_seconds", "From the start of a login attempt to authenticated.",
             "logins"),
            ("restore_duration_seconds", "From the start of a restore to authenticated.",
             "restores"),
            ("rate_limit_wait_seconds", "How long REST requests waited for the rate limit.",
             "rate_waits"),
        ):
            family = family_type(f"{self.namespace}_{name}", doc, labels=base)
            for labels, t in totals.items():
                hist: Histogram = getattr(t, attr)
                family.add_metric(list(labels), hist.cumulative(), hist.sum)
            yield family
