"""`brokergate login cqg` and `simulate cqg`, run as a user would: real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brokergate.simulators.cqg import DEMO_OTP_SEED

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "brokergate.engine.cli"]


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    proc = subprocess.Popen([*CLI, "simulate", "cqg", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "listening on" in first, first + (proc.stderr.read() if proc.stderr else "")
        accounts = proc.stdout.readline()
        assert "redirected" in accounts and DEMO_OTP_SEED in accounts
        yield first.rsplit(" ", 1)[-1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def login(url: str, *args: str, password: str | None = None,
          env: dict[str, str] | None = None) -> tuple[int, dict[str, Any] | None, str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "BROKERGATE_PASSWORD"}
    if password is not None:
        environment["BROKERGATE_PASSWORD"] = password
    environment.update(env or {})
    proc = subprocess.run(
        [*CLI, "login", "cqg", "--url", url, "--client-app-id", "cli-test",
         "--connect-timeout", "2", "--login-timeout", "2", "--min-logon-interval", "0", *args],
        capture_output=True, text=True, env=environment, stdin=subprocess.DEVNULL, timeout=60,
        cwd=ROOT, check=False,
    )
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else None
    return proc.returncode, result, proc.stdout, proc.stderr


def test_logon_prints_one_result_line_with_logons_and_restores(sim_url: str) -> None:
    code, result, stdout, stderr = login(sim_url, "--user", "alice", password="alice-pw")
    assert code == 0, stderr
    assert len(stdout.strip().splitlines()) == 1
    assert result is not None and result["broker"] == "cqg"
    assert result["outcome"] == "authenticated" and result["state"] == "disconnected"
    assert (result["logons"], result["restores"]) == (1, 0)
    assert result["server_protocol_version"] == "2.230" and result["inactivity_timeout"] == 30
    audit = [json.loads(line) for line in stderr.splitlines()]
    assert [e["dst"] for e in audit if e["event"] == "transition"][-2:] == [
        "logging_out", "disconnected"]


def test_a_held_session_shows_how_it_survived_drops(sim_url: str) -> None:
    code, result, _, stderr = login(sim_url, "--user", "flappy", "--hold", "6",
                                    password="flappy-pw")
    assert code == 0, stderr
    assert result is not None and (result["logons"], result["restores"]) == (1, 2)
    audit = [json.loads(line) for line in stderr.splitlines()]
    restored = [e for e in audit if e.get("trigger") == "restore_result"]
    assert [e["dst"] for e in restored] == ["authenticated", "authenticated"]


@pytest.mark.parametrize(
    ("user", "reason"),
    [("expired", "password_expired"), ("concurrent", "concurrent_session"),
     ("routine", "routine_error"), ("mystery", "unknown_result"), ("otp",
                                                                  "one_time_password_required")],
)
def test_refused_logons_exit_3(sim_url: str, user: str, reason: str) -> None:
    code, result, _, _ = login(sim_url, "--user", user, password=f"{user}-pw")
    assert code == 3 and result is not None
    assert result["outcome"] == "failed" and result["reason"] == reason


def test_one_time_password_from_a_totp_seed(sim_url: str) -> None:
    code, result, stdout, stderr = login(sim_url, "--user", "otp", "--otp-seed-env", "SEED",
                                         password="otp-pw", env={"SEED": DEMO_OTP_SEED})
    assert code == 0, stderr
    assert result is not None and result["logons"] == 1
    assert '"dst": "refreshing_credentials"' in stderr
    assert DEMO_OTP_SEED not in stdout + stderr and "otp-pw" not in stdout + stderr


def test_access_token_logon(sim_url: str) -> None:
    code, result, stdout, stderr = login(sim_url, "--access-token-env", "TOKEN",
                                         env={"TOKEN": "demo-access-token"})
    assert code == 0, stderr
    assert result is not None and result["account"].startswith("access-token:")
    assert "demo-access-token" not in stdout + stderr


def test_an_expired_access_token_exits_3(sim_url: str) -> None:
    code, result, stdout, stderr = login(sim_url, "--access-token-env", "TOKEN",
                                         env={"TOKEN": "demo-expired-token"})
    assert code == 3 and result is not None and result["reason"] == "access_token_expired"
    assert "demo-expired-token" not in stdout + stderr


def test_a_redirect_to_the_same_simulator_is_followed(sim_url: str) -> None:
    code, result, _, stderr = login(sim_url, "--user", "redirected", password="redirected-pw")
    assert code == 0, stderr
    assert result is not None and result["logons"] == 1
    assert '"reason": "redirected"' in stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--access-token-env", "TOKEN", "--user", "alice"], {"TOKEN": "t"}, "exclude each other"),
        ([], {}, "give --user"),
        (["--user", "alice"], {}, "BROKERGATE_PASSWORD"),
        (["--access-token-env", "NOPE"], {}, "NOPE is not set"),
    ],
)
def test_usage_mistakes_exit_2(sim_url: str, args: list[str], env: dict[str, str],
                               message: str) -> None:
    code, result, _, stderr = login(sim_url, *args, env=env)
    assert code == 2 and result is None and message in stderr


def test_wrong_password_exits_3_and_never_shows_it(sim_url: str) -> None:
    code, result, stdout, stderr = login(sim_url, "--user", "alice", password="Zq9-cqg-S3CRET")
    assert code == 3 and result is not None and result["reason"] == "logon_failure"
    assert "Zq9-cqg-S3CRET" not in stdout + stderr
