"""The fleet on the command line: `brokergate login ... --coordinator URL`, `brokergate fleet
status` and `brokergate fleet keygen`, run as a user would (real processes), against the
simulators and a real redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
from helpers import qst_config
from redis_server import RedisServer, free_port

from brokergate.engine import cli
from brokergate.engine.fleet import (
    CoordinatorUnavailable,
    load_sealer,
    new_fleet_key,
    open_redis_coordinator,
)
from brokergate.machines import Secret, Transitioned
from brokergate.simulators.firstock import DEMO_FIXED_TOTP

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "brokergate.engine.cli"]
KEY = new_fleet_key()
FLEET_ENV = {"BROKERGATE_FLEET_KEY": KEY}


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERGATE_")}
    env.update(extra or {})
    return env


def here(capsys: pytest.CaptureFixture[str], *argv: str) -> SimpleNamespace:
    """The command in this process, for what ends before any session runs (a refused option or
    configuration, an unreachable Redis): its exit code and what it wrote. The caller sets the
    environment (``quiet_env``)."""
    capsys.readouterr()
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def quiet_env(monkeypatch: pytest.MonkeyPatch, extra: dict[str, str]) -> None:
    """This process's environment as ``run`` gives a child: no BROKERGATE_ variable but
    ``extra``."""
    for name in [k for k in os.environ if k.startswith("BROKERGATE_")]:
        monkeypatch.delenv(name)
    for name, value in extra.items():
        monkeypatch.setenv(name, value)


def run(*argv: str, env: dict[str, str] | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *argv], capture_output=True, text=True, cwd=ROOT,
                          env=environment(env), stdin=subprocess.DEVNULL, timeout=timeout,
                          check=False)


def result_of(stdout: str) -> dict[str, Any]:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout  # one result line, with the fleet's part in it
    parsed: dict[str, Any] = json.loads(lines[0])
    return parsed


def warm(server: RedisServer) -> None:
    """Mark the Redis as one the fleet has known for a minute: a brand-new Redis grants no
    claim for one lease TTL (holders re-establish theirs first), which the first test shows and
    the others need not wait for."""
    reply = server.command("SET", "brokergate:boot", str(int(time.time() * 1000) - 60_000))
    assert reply.startswith(b"+OK"), reply


def simulator(broker: str) -> Iterator[list[str]]:
    proc = subprocess.Popen([*CLI, "simulate", broker, "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert "listening on" in lines[0], lines[0] + (proc.stderr.read() if proc.stderr else "")
        yield lines
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def qst_url() -> Iterator[str]:
    for lines in simulator("qst"):
        yield lines[0].rsplit(" ", 1)[-1].strip()


@pytest.fixture(scope="module")
def firstock_base() -> Iterator[str]:
    for lines in simulator("firstock"):
        yield lines[1].split()[3].rstrip(";")


def qst_login(url: str, redis_url: str, *extra: str) -> list[str]:
    return ["login", "qst", "--url", url, "--user", "alice", "--client-id", "cli-fleet",
            "--connect-timeout", "2", "--login-timeout", "2", "--coordinator", redis_url,
            "--lease-ttl", "1", *extra]


QST_ENV = {**FLEET_ENV, "BROKERGATE_PASSWORD": "alice-pw"}


# --- login --coordinator ------------------------------------------------------------------


def test_a_login_on_the_coordinator_holds_the_account(qst_url: str,
                                                      redis_server: RedisServer) -> None:
    done = run(*qst_login(qst_url, redis_server.url), env=QST_ENV)
    assert done.returncode == 0, done.stderr
    result = result_of(done.stdout)
    assert result["outcome"] == "authenticated"
    fleet = result["fleet"]
    assert fleet["coordinator"] == redis_server.url and fleet["claim"] == "lease"
    assert fleet["account"] == "alice@127.0.0.1" and isinstance(fleet["fence"], int)
    # A brand-new Redis: no claim for one lease TTL, and nobody to take over from.
    assert fleet["waited"] and not fleet["standby"] and not fleet["took_over"]
    assert "waiting for the fleet before qst account alice@127.0.0.1 may be claimed" \
        in done.stderr
    assert f"is this session's now (lease, fence {fleet['fence']})" in done.stderr
    assert "alice-pw" not in done.stdout + done.stderr and KEY not in done.stdout + done.stderr


def wait_for(path: Path, text: str, within: float = 8.0) -> None:
    deadline = time.monotonic() + within
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} not in {path} after {within} s"
        time.sleep(0.05)


def test_a_second_login_of_the_user_is_a_standby_until_the_holder_leaves(
        qst_url: str, redis_server: RedisServer, tmp_path: Path) -> None:
    warm(redis_server)
    first_audit, second_audit = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    holder = subprocess.Popen(
        [*CLI, *qst_login(qst_url, redis_server.url, "--hold", "4", "--audit-log",
                          str(first_audit))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=environment(QST_ENV), stdin=subprocess.DEVNULL)
    try:
        wait_for(first_audit, '"dst": "authenticated"')
        # The second process starts while the first holds the account ...
        second = subprocess.Popen(
            [*CLI, *qst_login(qst_url, redis_server.url, "--audit-log", str(second_audit))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env=environment(QST_ENV), stdin=subprocess.DEVNULL)
        # ... and the fleet's status names the holder and its fence, and nothing secret.
        shown = run("fleet", "status", "--coordinator", redis_server.url, "--json")
        table = run("fleet", "status", "--coordinator", redis_server.url)
        second_out, second_err = second.communicate(timeout=20)
        first_out, first_err = holder.communicate(timeout=20)
    finally:
        holder.kill()
    assert holder.returncode == 0, first_err
    assert second.returncode == 0, second_err
    first, then = result_of(first_out), result_of(second_out)

    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    [account] = status["accounts"]
    [claim] = account["claims"]
    assert (account["broker"], account["account"]) == ("qst", "alice@127.0.0.1")
    assert claim["kind"] == "lease" and claim["fence"] == first["fleet"]["fence"]
    assert claim["holder"].split("/")[0].endswith(f":{holder.pid}")
    assert 0 < claim["ttl"] <= 1.0 and claim["held_for"] >= 0
    assert table.returncode == 0 and claim["holder"] in table.stdout
    assert str(claim["fence"]) in table.stdout
    for text in (shown.stdout, table.stdout, shown.stderr, table.stderr):
        assert "alice-pw" not in text and KEY not in text

    # The first held the account throughout; the second waited, then took over.
    assert not first["fleet"]["standby"] and first["outcome"] == "authenticated"
    fleet = then["fleet"]
    assert fleet["standby"] and fleet["took_over"] and then["outcome"] == "authenticated"
    assert fleet["held_by"] == claim["holder"]
    assert fleet["held_by_fence"] == claim["fence"] < fleet["fence"]
    assert (f"standby for qst account alice@127.0.0.1: held by {claim['holder']} "
            f"(fence {claim['fence']}); waiting to take over") in second_err
    assert f"took over qst account alice@127.0.0.1 (lease, fence {fleet['fence']})" in second_err
    moves = [json.loads(line) for line in second_audit.read_text().splitlines()]
    assert [m["dst"] for m in moves if m["event"] == "transition"][:2] == ["standby",
                                                                           "connecting"]
    assert '"displaced"' not in first_audit.read_text()
    for text in (first_out, first_err, second_out, second_err):
        assert "alice-pw" not in text and KEY not in text


# --- fleet status -------------------------------------------------------------------------


async def leave_state_behind(url: str) -> str:
    """A lease with a sealed handover, a flight outcome with a hostile detail, and a key of
    the wrong type under the prefix; returns the secret the handover holds."""
    secret = "hand-over-S3CRET-tok"
    async with open_redis_coordinator(url, env=FLEET_ENV, lease_ttl=30) as fleet:
        lease = fleet.claim("qst", "bob@127.0.0.1", "lease", "s-lease")
        assert (await lease.take()).fence > 0
        await lease.publish({"session_token": Secret(secret), "logons": 3})
        flight = fleet.claim("firstock", "carol@127.0.0.1", "flight", "s-flight")
        await flight.take()
        await flight.release({"state": "failed", "reason": "invalid_credentials",
                              "fault": "account", "detail": "refused\n\x1b[2Jtwice"})
        await fleet.link.do(fleet.link.client.set("brokergate:qst:x@h:claim:lease", "odd"))
    return secret


def test_status_shows_handovers_and_outcomes_never_their_secrets(
        redis_server: RedisServer) -> None:
    warm(redis_server)
    secret = trio.run(leave_state_behind, redis_server.url)
    # No fleet key in its environment: status reads nothing sealed.
    shown = run("fleet", "status", "--coordinator", redis_server.url, "--json")
    table = run("fleet", "status", "--coordinator", redis_server.url)
    assert shown.returncode == 0 and table.returncode == 0, shown.stderr + table.stderr
    status = json.loads(shown.stdout)
    accounts = {a["account"]: a for a in status["accounts"]}
    bob, carol = accounts["bob@127.0.0.1"], accounts["carol@127.0.0.1"]
    assert bob["handover"]["bytes"] > len(secret) and bob["handover"]["ttl"] > 86_000
    assert bob["claims"][0]["kind"] == "lease" and carol["claims"] == []
    assert carol["outcome"]["reason"] == "invalid_credentials"
    assert carol["outcome"]["detail"] == "refused\\n\\x1b[2Jtwice"  # escaped, not obeyed
    assert status["other_keys"] == 1 and status["boot_marker_age"] >= 59
    assert f"{bob['handover']['bytes']} bytes" in table.stdout
    assert "\x1b" not in table.stdout and "refused\\n\\x1b[2Jtwice" in table.stdout
    for text in (shown.stdout, table.stdout):
        assert secret not in text and KEY not in text


def test_a_firstock_login_shares_its_token_and_rate_fleet_wide(
        firstock_base: str, redis_server: RedisServer) -> None:
    warm(redis_server)
    env = {**FLEET_ENV, "BROKERGATE_PASSWORD": "fixed-pw", "BROKERGATE_API_KEY": "key-fixed",
           "CODE": DEMO_FIXED_TOTP}
    done = run("login", "firstock", "--base-url", firstock_base, "--user", "fixed",
               "--vendor-code", "fixed_API", "--totp-env", "CODE", "--coordinator",
               redis_server.url, "--keep-session", "--requests-per-second", "4", env=env)
    assert done.returncode == 0, done.stderr
    result = result_of(done.stdout)
    assert result["rest_logins"] == 1 and result["fleet"]["claim"] == "flight"
    assert "has the login flight of firstock account fixed@127.0.0.1" in done.stderr

    async def token() -> str:
        async with open_redis_coordinator(redis_server.url, env=FLEET_ENV) as fleet:
            stored = await fleet.token_store.load("firstock", "fixed")
            assert stored is not None
            return stored.token.reveal()

    value = trio.run(token)
    shown = run("fleet", "status", "--coordinator", redis_server.url, "--json")
    table = run("fleet", "status", "--coordinator", redis_server.url)
    status = json.loads(shown.stdout)
    assert [(t["broker"], t["user"]) for t in status["tokens"]] == [("firstock", "fixed")]
    assert status["tokens"][0]["ttl"] > 35 * 3600
    assert [(s["host"], s["per_second"]) for s in status["limits"]] == [("127.0.0.1", 4.0)]
    # The login flight was let go as the login settled, its outcome left for those waiting.
    [account] = status["accounts"]
    assert account["claims"] == [] and account["outcome"]["state"] == "authenticated"
    for text in (done.stdout, done.stderr, shown.stdout, table.stdout):
        for secret in (value, "fixed-pw", "key-fixed", KEY):
            assert secret not in text


# --- faults and refusals ------------------------------------------------------------------


def test_redis_out_of_reach_is_one_clear_line_and_exit_8(
        qst_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    quiet_env(monkeypatch, QST_ENV)
    for argv in (qst_login(qst_url, url), ["fleet", "status", "--coordinator", url]):
        done = here(capsys, *argv)
        assert done.returncode == 8, done.stderr
        assert done.stdout == ""
        [line] = done.stderr.splitlines()
        assert line.startswith(f"brokergate: error: fleet coordinator: Redis at {url} is "
                               "unreachable")


def test_a_password_in_the_url_is_refused_without_echoing_it(
        qst_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = "redis://bob:Zq9-redis-S3CRET@127.0.0.1:6379/0"
    quiet_env(monkeypatch, QST_ENV)
    for argv in (qst_login(qst_url, url), ["fleet", "status", "--coordinator", url]):
        done = here(capsys, *argv)
        assert done.returncode == 2 and done.stdout == ""
        assert "coordinator URL holds a password" in done.stderr
        assert "Zq9-redis-S3CRET" not in done.stderr


def test_a_bad_fleet_key_says_so(qst_url: str, redis_server: RedisServer,
                                 capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "Zm9vYmFy-not-a-key"
    quiet_env(monkeypatch, {"BROKERGATE_PASSWORD": "alice-pw", "BROKERGATE_FLEET_KEY": bad})
    done = here(capsys, *qst_login(qst_url, redis_server.url))
    assert done.returncode == 2 and done.stdout == ""
    assert "BROKERGATE_FLEET_KEY is not a fleet key" in done.stderr and bad not in done.stderr


@pytest.mark.parametrize("argv", [["--lease-ttl", "3"], ["--redis-user", "ops"],
                                  ["--prefix", "other"]])
def test_fleet_options_need_a_coordinator(qst_url: str, argv: list[str],
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    quiet_env(monkeypatch, QST_ENV)
    done = here(capsys, "login", "qst", "--url", qst_url, "--user", "alice", "--client-id", "x",
                *argv)
    assert done.returncode == 2 and f"{argv[0]}: only with --coordinator URL" in done.stderr


def test_requests_per_second_must_be_positive(firstock_base: str,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    quiet_env(monkeypatch, {"BROKERGATE_PASSWORD": "fixed-pw", "CODE": DEMO_FIXED_TOTP})
    done = here(capsys, "login", "firstock", "--base-url", firstock_base, "--user", "fixed",
                "--vendor-code", "fixed_API", "--totp-env", "CODE", "--requests-per-second", "0")
    assert done.returncode == 2 and "--requests-per-second" in done.stderr


# --- fleet keygen -------------------------------------------------------------------------


def keygen(capsys: pytest.CaptureFixture[str], *argv: str) -> SimpleNamespace:
    """``brokergate fleet keygen ...`` in this process (it opens nothing: no need to pay for a
    new interpreter): its exit code and what it wrote."""
    return here(capsys, "fleet", "keygen", *argv)


def test_keygen_prints_a_key_and_says_where_to_keep_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    done = keygen(capsys)
    assert done.returncode == 0
    key = done.stdout.strip()
    assert done.stdout == key + "\n" and len(key) == 44
    load_sealer(env={"BROKERGATE_FLEET_KEY": key})  # a key the fleet takes
    assert "BROKERGATE_FLEET_KEY" in done.stderr and "chmod 600" in done.stderr
    assert key not in done.stderr
    assert keygen(capsys).stdout.strip() != key


def test_keygen_writes_a_private_file_and_never_overwrites_one_unasked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fleet.key"
    done = keygen(capsys, "--out", str(out))
    assert done.returncode == 0 and done.stdout == ""
    key = out.read_text()
    assert out.stat().st_mode & 0o777 == 0o600 and key not in done.stderr
    load_sealer(key_file=out)

    again = keygen(capsys, "--out", str(out))
    assert again.returncode == 2 and "exists" in again.stderr and "--force" in again.stderr
    assert out.read_text() == key

    out.chmod(0o644)
    forced = keygen(capsys, "--out", str(out), "--force")
    assert forced.returncode == 0
    assert out.read_text() != key and out.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.key"]

    folder = keygen(capsys, "--out", str(tmp_path))
    assert folder.returncode == 2 and "is a folder" in folder.stderr


# --- what login says, from the session's transitions ----------------------------------------


class _NoRedis:
    """A link whose every command fails: the watch shows no fence then, and goes on."""

    target = SimpleNamespace(where="redis://127.0.0.1:1/0")
    client = SimpleNamespace(hget=lambda name, field: None)

    async def do(self, request: object) -> object:
        raise CoordinatorUnavailable("Redis at redis://127.0.0.1:1/0 is unreachable")


async def test_the_watch_tells_standby_takeover_and_loss_fit_for_a_terminal() -> None:
    from brokergate.engine.cli._fleet_login import FleetWatch
    from brokergate.machines.brokers import broker_named

    said: list[str] = []
    broker = broker_named("qst")
    config = qst_config("ws://127.0.0.1:9/", "alice", "pw")
    watch = FleetWatch(SimpleNamespace(link=_NoRedis(), prefix="brokergate"), broker, config,
                       said.append)

    def moved(trigger: str, dst: str, detail: str) -> Transitioned:
        return Transitioned(trigger=trigger, src="x", dst=dst, epoch=0, attempt=0,
                            detail=detail)

    await watch._on(moved("standby", "standby", "another session of the fleet holds the "
                                                "account: h:1/s\x1b[2J/x (fence 42)"))
    await watch._on(moved("lease_granted", "connecting", ""))
    await watch._on(moved("lease_lost", "standby", "another session holds the lease now"))
    assert said == [
        "standby for qst account alice@127.0.0.1: held by h:1/s\\x1b[2J/x (fence 42); waiting "
        "to take over, neither logging in nor displacing it",
        "took over qst account alice@127.0.0.1 (lease, fence None)",
        "lost the lease on qst account alice@127.0.0.1: another session holds the lease now; "
        "standby again, writing nothing until the lease is granted anew",
    ]
    report = watch.report.as_dict()
    assert report["standby"] and report["took_over"] and report["held_by_fence"] == 42
