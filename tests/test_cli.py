"""The command line, run as a user would: real processes, a simulator in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "brokergate.engine.cli"]


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    proc = subprocess.Popen([*CLI, "simulate", "qst", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "listening on" in first, first + (proc.stderr.read() if proc.stderr else "")
        yield first.rsplit(" ", 1)[-1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def login(url: str, user: str, *extra: str, password: str | None = None,
          env: dict[str, str] | None = None) -> tuple[int, dict[str, Any] | None, str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "BROKERGATE_PASSWORD"}
    if password is not None:
        environment["BROKERGATE_PASSWORD"] = password
    environment.update(env or {})
    proc = subprocess.run(
        [*CLI, "login", "qst", "--url", url, "--user", user, "--client-id", "cli-test",
         "--connect-timeout", "2", "--login-timeout", "2", *extra],
        capture_output=True, text=True, env=environment, stdin=subprocess.DEVNULL, timeout=60,
        cwd=ROOT, check=False,
    )
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else None
    return proc.returncode, result, proc.stdout, proc.stderr


def test_login_prints_one_result_line_and_audit_on_stderr(sim_url: str) -> None:
    code, result, stdout, stderr = login(sim_url, "alice", "--coalescing", "uncoalesced",
                                         "--translate", "ESZ6", "BADX", password="alice-pw")
    assert code == 0, stderr
    assert len(stdout.strip().splitlines()) == 1
    assert result is not None
    assert result["broker"] == "qst" and result["outcome"] == "authenticated"
    assert result["attempts"] == 1 and result["reason"] is None
    assert result["granted"]["coalescing_interval"] == "_100_MS"  # entitled to 100 ms
    first = result["translated"][0]
    assert first["symbol"] == "ESZ6" and "instrument_id" in first
    assert result["translated"][1]["error"] == "unknown symbol"
    audit = [json.loads(line) for line in stderr.splitlines()]
    assert [e["dst"] for e in audit if e["event"] == "transition"][-2:] == ["logging_out",
                                                                            "disconnected"]


@pytest.mark.parametrize(
    ("user", "exit_code", "outcome", "reason"),
    [
        ("wrong", 3, "failed", "invalid_credentials"),
        ("locked", 4, "locked_out", "account_locked"),
        ("pending", 5, "provisioning", "pending_agreements"),
        ("totp", 3, "failed", "second_factor_missing"),
    ],
)
def test_exit_codes_follow_the_outcome(sim_url: str, user: str, exit_code: int, outcome: str,
                                       reason: str) -> None:
    code, result, _, stderr = login(sim_url, user, password=f"{user}-pw")
    assert code == exit_code, stderr
    assert result is not None and result["outcome"] == outcome and result["reason"] == reason


def test_gave_up_exits_6(tmp_path: Path) -> None:
    code, result, _, _ = login("ws://127.0.0.1:1/", "alice", "--max-attempts", "2",
                               password="alice-pw")
    assert code == 6 and result is not None and result["outcome"] == "gave_up"
    assert "connection refused" in result["detail"]


def test_hold_sees_a_displacement_and_exits_7(sim_url: str, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    code, result, _, stderr = login(sim_url, "kicked", "--hold", "5", "--audit-log", str(audit),
                                    password="kicked-pw")
    assert code == 7 and result is not None and result["outcome"] == "displaced"
    assert stderr == ""  # audit went to the file
    moves = [json.loads(x) for x in audit.read_text().splitlines()]
    assert moves[-1]["close_code"] == 4101


def test_hold_survives_a_slow_reader_close(sim_url: str) -> None:
    code, result, _, stderr = login(sim_url, "slow", "--hold", "3", password="slow-pw")
    assert code == 0, stderr
    assert result is not None and result["state"] == "disconnected"
    assert '"close_code": 4102' in stderr and stderr.count('"dst": "authenticated"') == 2


def test_password_from_a_file(sim_url: str, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("dropper-pw\n")
    code, result, _, _ = login(sim_url, "dropper", "--password-file", str(secret))
    assert code == 0 and result is not None and result["attempts"] == 2


def test_password_from_a_named_variable(sim_url: str) -> None:
    code, _, _, _ = login(sim_url, "alice", "--password-env", "MY_PW",
                          env={"MY_PW": "alice-pw"})
    assert code == 0


@pytest.mark.parametrize("argv", [["--password", "hunter2-Zz"], ["--password=hunter2-Zz"]])
def test_password_on_the_command_line_is_refused_without_echoing_it(
    sim_url: str, argv: list[str]
) -> None:
    code, result, stdout, stderr = login(sim_url, "alice", *argv)
    assert code == 2 and result is None
    assert "never taken from the command line" in stderr
    assert "hunter2-Zz" not in stdout + stderr


def test_missing_password_is_a_usage_error(sim_url: str) -> None:
    code, _, _, stderr = login(sim_url, "alice")
    assert code == 2 and "BROKERGATE_PASSWORD" in stderr


def test_plaintext_to_a_remote_host_is_refused() -> None:
    code, result, _, _ = login("ws://broker.example.com/md", "alice", password="x")
    assert code == 2 and result is not None and result["outcome"] == "invalid_config"
    assert "not a loopback host" in result["detail"]


def test_no_secret_in_any_cli_output(sim_url: str) -> None:
    secret = "Zq9-cli-S3CRET"
    outputs = []
    for user in ("alice", "wrong", "locked", "pending"):
        _, _, stdout, stderr = login(sim_url, user, password=secret)
        outputs += [stdout, stderr]
    assert secret not in "".join(outputs)


def test_url_without_a_scheme_means_tls() -> None:
    from brokergate.engine.cli import with_default_scheme

    assert with_default_scheme("md.example.com/api", "wss") == "wss://md.example.com/api"
    assert with_default_scheme("ws://127.0.0.1:9/", "wss") == "ws://127.0.0.1:9/"


# ---------------------------------------------------------------------------------------------
# the brokers' parts, from the registry


def test_the_engine_cli_names_no_broker() -> None:
    """Every broker's options, configuration and simulator come from its descriptor: adding a
    broker is its folder and a line in the registry, never an edit of the engine's CLI."""
    from brokergate.machines.brokers import BROKERS

    words = {b.name.lower() for b in BROKERS} | {b.title.lower() for b in BROKERS}
    for path in sorted((ROOT / "engine" / "cli").glob("*.py")):
        text = path.read_text(encoding="utf-8").lower()
        assert not [w for w in sorted(words) if w in text], path.name


def test_every_broker_has_a_login_from_its_cli_part() -> None:
    import argparse

    from brokergate.engine import cli
    from brokergate.machines.brokers import BROKERS

    parser = cli.build_parser()
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    login_sub = next(a for a in top.choices["login"]._actions
                     if isinstance(a, argparse._SubParsersAction))
    assert list(login_sub.choices) == [b.name for b in BROKERS]
    helps = {a.dest: a.help for a in login_sub._choices_actions}
    for broker in BROKERS:
        part = broker.cli()
        assert helps[broker.name] == part.help
        options = cli._option_names(login_sub.choices[broker.name])
        assert ("--keep-session" in options) == broker.has("token_store")
        assert ("--token-dir" in options) == broker.has("token_store")


def test_a_simulator_that_cannot_listen_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """However deep in the simulator's nurseries the refusal to listen comes from."""
    import errno
    from contextlib import asynccontextmanager

    import trio

    from brokergate.engine import cli
    from brokergate.machines._broker import Broker

    async def refused(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))

    class Busy:
        help = "a simulator whose port is taken"

        @asynccontextmanager
        async def running(self, host: str, port: int) -> Any:
            async with trio.open_nursery() as nursery:
                await nursery.start(refused)
                yield ["never printed"]

    monkeypatch.setattr(Broker, "simulator", lambda self: Busy())
    with pytest.raises(SystemExit) as exited:
        cli.main(["simulate", "qst", "--port", "9"])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"brokergate: error: cannot listen on 127.0.0.1:9: "
                   f"{os.strerror(errno.EADDRINUSE)}\n")
