"""`brokergate login firstock` and `simulate firstock`, run as a user would: real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brokergate.simulators.firstock import DEMO_FIXED_TOTP

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "brokergate.engine.cli"]


@pytest.fixture(scope="module")
def sim() -> Iterator[dict[str, str]]:
    proc = subprocess.Popen([*CLI, "simulate", "firstock", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "listening on" in first, first + (proc.stderr.read() if proc.stderr else "")
        urls = proc.stdout.readline().split()
        yield {"base": urls[3].rstrip(";"), "noren": urls[6].rstrip(","), "v2": urls[8]}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def login(sim: dict[str, str], user: str, *args: str, password: str | None = None,
          env: dict[str, str] | None = None) -> tuple[int, dict[str, Any] | None, str, str]:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("BROKERGATE_PASSWORD", "BROKERGATE_API_KEY")}
    environment.update({"BROKERGATE_PASSWORD": password or f"{user}-pw",
                        "BROKERGATE_API_KEY": f"key-{user}", "CODE": DEMO_FIXED_TOTP})
    environment.update(env or {})
    proc = subprocess.run(
        [*CLI, "login", "firstock", "--base-url", sim["base"], "--user", user, "--vendor-code",
         f"{user}_API", "--totp-env", "CODE", "--connect-timeout", "5", "--login-timeout", "5",
         *args],
        capture_output=True, text=True, env=environment, stdin=subprocess.DEVNULL, timeout=60,
        cwd=ROOT, check=False,
    )
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else None
    return proc.returncode, result, proc.stdout, proc.stderr


@pytest.mark.parametrize("socket", ["noren", "v2"])
def test_login_with_a_socket(sim: dict[str, str], socket: str) -> None:
    code, result, stdout, stderr = login(sim, "alice", "--socket", socket, "--socket-url",
                                         sim[socket])
    assert code == 0, stderr
    assert result is not None and result["broker"] == "firstock"
    assert (result["rest_logins"], result["socket_attaches"]) == (1, 1)
    assert "alice-pw" not in stdout + stderr and "key-alice" not in stdout + stderr


def test_a_wrong_password_exits_3(sim: dict[str, str]) -> None:
    code, result, stdout, stderr = login(sim, "alice", password="Zq9-fs-S3CRET")
    assert code == 3 and result is not None and result["reason"] == "invalid_credentials"
    assert "Zq9-fs-S3CRET" not in stdout + stderr


def test_a_token_directory_holds_nothing_after_a_logout(sim: dict[str, str],
                                                            tmp_path: Path) -> None:
    code, result, _, stderr = login(sim, "fixed", "--token-dir", str(tmp_path))
    assert code == 0, stderr
    assert result is not None and result["rest_logins"] == 1
    assert list(tmp_path.iterdir()) == []  # logged out: the token is gone with it


def test_a_kept_session_is_reused_by_the_next_run(sim: dict[str, str], tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    code, first, _, stderr = login(sim, "fixed", "--token-dir", str(tokens), "--keep-session")
    assert code == 0, stderr
    assert first is not None and first["rest_logins"] == 1
    assert first["state"] == "disconnected"
    [kept] = list(tokens.iterdir())
    assert kept.stat().st_mode & 0o777 == 0o600
    code, second, _, stderr = login(sim, "fixed", "--token-dir", str(tokens))
    assert code == 0, stderr
    assert second is not None and second["rest_logins"] == 0  # today's token, checked and used
    assert list(tokens.iterdir()) == []  # this run logged out


def test_flaky_server_errors_are_retried(sim: dict[str, str]) -> None:
    code, result, _, stderr = login(sim, "flaky")
    assert code == 0, stderr
    assert result is not None and result["attempts"] == 3 and result["rest_logins"] == 1
    assert stderr.count('"reason": "server_error"') >= 2


def test_totp_options_exclude_each_other(sim: dict[str, str]) -> None:
    code, result, _, stderr = login(sim, "alice", "--totp-seed-env", "CODE")
    assert code == 2 and result is None and "exactly one of --totp-seed-env" in stderr
