"""``brokergate run SESSIONS.toml``: hold the declared sessions all day, serve what operators
watch, stop cleanly.

The service is one trio program: a gateway (on the fleet's coordinator when the file names one),
the supervisor that holds each declared session on its schedule, hypercorn's trio worker serving
``/metrics``, ``/healthz``, ``/status`` and the status page, and the signals:

- SIGTERM / SIGINT: every session is logged out (all at once, within ``stop_timeout``), the HTTP
  server stops, the audit file is flushed and closed; exit 0 (1 if the bound ran out first,
  naming the sessions still logging out).
- SIGHUP: the file is read again. Sessions added are started, sessions removed are logged out,
  sessions whose declaration changed (a secret file's content included) are logged out and
  started again; the others are not touched. A file with a mistake changes nothing: the problems
  are printed and the running sessions go on. Changes to ``[service]`` need a restart (said so).

What the service itself does goes to stderr as lines for people, and into the audit trail as
``service_*`` events.
"""

from __future__ import annotations

import importlib.metadata
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import trio

from brokergate.engine._audit import AuditLog, SessionLog
from brokergate.engine._errors import ConfigurationError, cannot_listen
from brokergate.engine._gateway import Gateway, open_gateway
from brokergate.engine._metrics import Metrics
from brokergate.engine._tokens import FileTokenStore
from brokergate.engine.service._file import (
    ServiceFile,
    ServiceFileError,
    ServiceSettings,
    load_service_file,
)
from brokergate.engine.service._page import render_page
from brokergate.engine.service._supervisor import Supervisor, WallClock, iso
from brokergate.engine.service._web import ServiceApp

#: The exit codes of ``brokergate run``.
EXIT_STOPPED = 0
EXIT_STOP_OVERRAN = 1
EXIT_BAD_FILE = 2


def _now() -> datetime:
    return datetime.now(UTC)


class Service:
    """What the HTTP side reads of a running service."""

    def __init__(self, loaded: ServiceFile, supervisor: Supervisor, wall: WallClock) -> None:
        self.loaded = loaded
        self.supervisor = supervisor
        self._wall = wall
        self.started = wall()
        self.reloads = {"applied": 0, "refused": 0}
        self.stopping = False

    def health(self) -> tuple[bool, list[str]]:
        healthy, lines = self.supervisor.health()
        if self.stopping:
            return False, ["the service is stopping", *lines]
        return healthy, lines

    def status(self) -> dict[str, Any]:
        healthy, _ = self.health()
        return {
            "healthy": healthy,
            "generated": iso(self._wall()),
            "service": {"file": str(self.loaded.path),
                        "version": importlib.metadata.version("brokergate"),
                        "started": iso(self.started), "stopping": self.stopping,
                        "reloads": dict(self.reloads)},
            "sessions": self.supervisor.status(),
        }

    def page(self) -> str:
        return render_page(self.status())

    # The service's own metrics, next to the sessions' (a prometheus_client collector).

    def describe(self) -> list[Any]:
        return list(self.collect())

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (  # noqa: PLC0415 - the ops extra
            CounterMetricFamily,
            GaugeMetricFamily,
        )

        held = GaugeMetricFamily(
            "brokergate_service_sessions",
            "Declared sessions by health: healthy, unhealthy, or off_schedule (outside their "
            "schedule, and so not counted as unhealthy).", labels=["health"])
        counts = {"healthy": 0, "unhealthy": 0, "off_schedule": 0}
        for one in self.supervisor:
            ok, _ = one.health()
            key = "off_schedule" if not one.in_window() else "healthy" if ok else "unhealthy"
            counts[key] += 1
        for key, n in counts.items():
            held.add_metric([key], n)
        yield held
        reloads = CounterMetricFamily("brokergate_service_reloads",
                                      "Reloads of the sessions file (SIGHUP), by outcome.",
                                      labels=["outcome"])
        for outcome, n in self.reloads.items():
            reloads.add_metric([outcome], n)
        yield reloads


def say(text: str, err: TextIO | None = None) -> None:
    print(f"brokergate run: {text}", file=err or sys.stderr, flush=True)


@asynccontextmanager
async def _gateway(settings: ServiceSettings, audit: AuditLog, metrics: Metrics,
                   wall_clock: WallClock | None) -> AsyncIterator[Gateway]:
    """The service's gateway: on the fleet's coordinator when the file names one, else in this
    process (day tokens in files when ``token_dir`` is set)."""
    if settings.coordinator is None:
        store = FileTokenStore(settings.token_dir) if settings.token_dir else None
        async with open_gateway(audit=audit, token_store=store, metrics=metrics,
                                wall_clock=wall_clock) as gateway:
            yield gateway
        return
    # Imported here: the redis extra's. What the file leaves out is the coordinator's default.
    from brokergate.engine.fleet._coordinator import (  # noqa: PLC0415
        DEFAULT_LEASE_TTL,
        DEFAULT_PREFIX,
        open_redis_coordinator,
    )

    async with open_redis_coordinator(
        settings.coordinator, username=settings.redis_user,
        password_file=settings.redis_password_file,
        ca_file=str(settings.redis_ca_file) if settings.redis_ca_file else None,
        key_file=settings.fleet_key_file, prefix=settings.prefix or DEFAULT_PREFIX,
        lease_ttl=settings.lease_ttl if settings.lease_ttl is not None else DEFAULT_LEASE_TTL,
    ) as coordinator, open_gateway(audit=audit, coordinator=coordinator, metrics=metrics,
                                   wall_clock=wall_clock) as gateway:
        yield gateway


def _listen_url(binds: list[str]) -> str:
    return binds[0] if binds else "(nothing bound)"


async def serve(path: Path, *, err: TextIO | None = None, out: TextIO | None = None,
                wall_clock: WallClock | None = None) -> int:
    """Run the service of the file at ``path`` until SIGTERM or SIGINT; the exit code. SIGHUP
    reads the file again.

    Raises ``ServiceFileError`` (nothing started) for a file with mistakes."""
    with service_signals() as signals:  # first: a SIGTERM while starting is not lost
        loaded = load_service_file(path)
        return await run_service(loaded, signals, reload=lambda: load_service_file(path),
                                 err=err, out=out, wall_clock=wall_clock)


def service_signals() -> Any:
    return trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


async def run_service(loaded: ServiceFile, signals: AsyncIterator[int], *,
                      reload: Callable[[], ServiceFile] | None,
                      err: TextIO | None = None, out: TextIO | None = None,
                      wall_clock: WallClock | None = None) -> int:
    """Hold ``loaded``'s sessions and serve, until ``signals`` brings SIGTERM or SIGINT; SIGHUP
    calls ``reload`` for the sessions to hold (None: nothing to reload). The exit code."""
    from hypercorn.config import Config  # noqa: PLC0415 - the ops extra
    from hypercorn.trio import serve as hypercorn_serve  # noqa: PLC0415

    wall = wall_clock or _now
    settings = loaded.settings
    try:
        audit = AuditLog.to_file(settings.audit) if settings.audit else AuditLog.stderr()
    except OSError as exc:
        raise ConfigurationError(f"[service] audit: cannot open {settings.audit}: "
                                 f"{exc.strerror or exc}") from None
    log = audit.session(broker="service", session_id="service", account="", secrets=[])
    try:
        metrics = Metrics(account_label=settings.account_label)
        async with _gateway(settings, audit, metrics, wall_clock) as gateway, \
                trio.open_nursery() as nursery:
            supervisor = Supervisor(gateway, audit, wall_clock=wall, nursery=nursery)
            service = Service(loaded, supervisor, wall)
            metrics.registry.register(service)
            config = Config()
            host = settings.listen_host
            config.bind = [f"[{host}]:{settings.listen_port}" if ":" in host
                           else f"{host}:{settings.listen_port}"]
            config.loglevel = "WARNING"
            config.accesslog = None
            config.graceful_timeout = 1.0
            http_done = trio.Event()
            try:
                binds: list[str] = await nursery.start(
                    _serve_http, hypercorn_serve, ServiceApp(service, metrics.registry),
                    config, http_done)
            except BaseException as exc:
                refused = cannot_listen(exc)
                if refused is None:
                    raise
                raise ConfigurationError(
                    f"[service] listen: cannot listen on {config.bind[0]}: "
                    f"{refused.strerror or refused}") from None
            url = _listen_url(binds)
            started, _ = await supervisor.apply(loaded.sessions)
            log.info("service_started", file=str(loaded.path), listen=url,
                     sessions=len(started))
            say(f"serving {url}/ (status page), {url}/status, {url}/healthz, {url}/metrics; "
                f"holding {len(started)} sessions", err)
            print(f"{url}/", file=out or sys.stdout, flush=True)
            async for signum in signals:
                if signum != signal.SIGHUP:
                    break
                if reload is None:
                    say("SIGHUP: there is no file to reload", err)
                else:
                    await _reload(reload, service, log, err)
            code = await _stop(service, settings, log, err)
            http_done.set()
        log.info("service_stopped", exit_code=code)
        return code
    finally:
        audit.close()


async def _serve_http(serve_fn: Any, app: ServiceApp, config: Any, done: trio.Event,
                      task_status: trio.TaskStatus[list[str]]) -> None:
    await serve_fn(app, config, shutdown_trigger=done.wait, task_status=task_status)


async def _reload(reload: Callable[[], ServiceFile], service: Service, log: SessionLog,
                  err: TextIO | None) -> None:
    path = service.loaded.path
    try:
        fresh = reload()
    except ServiceFileError as exc:
        service.reloads["refused"] += 1
        log.info("service_reload_refused", problems=len(exc.problems))
        say(f"SIGHUP: {path} not reloaded, nothing changed:\n{exc}", err)
        return
    if fresh.settings != service.loaded.settings:
        say("SIGHUP: [service] changed; it applies at the next start (the sessions reload "
            "now)", err)
    before = set(service.supervisor.held)
    started, stopped = await service.supervisor.apply(fresh.sessions)
    service.loaded = fresh
    service.reloads["applied"] += 1
    kept = len(before - set(stopped))
    log.info("service_reloaded", started=started, stopped=stopped, unchanged=kept)
    say(f"SIGHUP: reloaded {path}: started {started or 'none'}, stopped {stopped or 'none'}, "
        f"{kept} unchanged", err)


async def _stop(service: Service, settings: ServiceSettings, log: SessionLog,
                err: TextIO | None) -> int:
    """Log every session out, within ``stop_timeout``."""
    service.stopping = True
    log.info("service_stopping", sessions=len(service.supervisor.held))
    say(f"stopping: logging out {len(service.supervisor.held)} sessions "
        f"(within {settings.stop_timeout:g} s)", err)
    with trio.move_on_after(settings.stop_timeout) as bounded:
        await service.supervisor.stop_all()
    if bounded.cancelled_caught:
        service.supervisor.hard_stop()
        late = [h.name for h in service.supervisor if h.phase != "stopped"]
        say(f"stop_timeout ({settings.stop_timeout:g} s) ran out: {late} still logging out",
            err)
        return EXIT_STOP_OVERRAN
    say("stopped: every session logged out", err)
    return EXIT_STOPPED
