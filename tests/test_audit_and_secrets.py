"""The audit trail's shape, and the promise that no secret leaks anywhere."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from helpers import qst_config, session_kwargs

from brokergate import (
    AuditLog,
    BrokergateError,
    Secret,
    open_session,
    redact_secrets,
    register_secret,
)
from brokergate.qst import pb
from brokergate.simulators.qst import QstAccount, run_qst_simulator

REQUIRED = {"timestamp", "broker", "session_id", "account", "epoch", "trigger", "src", "dst",
            "attempt", "error_code", "close_code", "delay", "reason", "event"}


async def test_every_transition_is_one_json_line_with_the_required_fields(
    clock: trio.testing.MockClock,
) -> None:
    sink = io.StringIO()
    async with run_qst_simulator([QstAccount("flaky", "flaky-pw", server_errors=1)]) as sim:
        config = qst_config(sim.url, "flaky", session_id="sess-42")
        async with open_session(config, audit=AuditLog.to_stream(sink)) as s:
            await s.wait_authenticated()
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    moves = [e for e in lines if e["event"] == "transition"]
    assert [e["dst"] for e in moves] == [
        "connecting", "awaiting_login_response", "backoff", "connecting",
        "awaiting_login_response", "authenticated", "logging_out", "disconnected"]
    for e in moves:
        assert e.keys() >= REQUIRED
        assert e["broker"] == "qst" and e["session_id"] == "sess-42" and e["account"] == "flaky"
        stamp = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
        assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0
    backoff = moves[2]
    assert backoff["error_code"] == 6 and backoff["reason"] == "server_error"
    assert backoff["attempt"] == 1 and isinstance(backoff["delay"], float)
    assert moves[3]["attempt"] == 2 and moves[3]["epoch"] == 2


def test_audit_file_is_private_and_appended(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    for n in range(2):
        log = AuditLog.to_file(path)
        log.session(broker="qst", session_id="s", account="a", secrets=[]).info("hello", n=n)
        log.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [json.loads(x)["n"] for x in path.read_text().splitlines()] == [0, 1]


def test_an_audit_file_others_could_read_is_made_private_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    path.chmod(0o644)
    log = AuditLog.to_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    log.close()


def test_redaction_processor_scrubs_nested_values_and_secret_objects() -> None:
    register_secret(Secret("process-wide-token-77"))
    event = {
        "_secrets": ["pw-ABC"],
        "msg": "login with pw-ABC failed",
        "nested": {"list": ["x", "pw-ABC", b"raw pw-ABC"], "token": "process-wide-token-77"},
        "obj": Secret("anything"),
    }
    out = redact_secrets(None, "info", event)
    text = json.dumps(out)
    assert "pw-ABC" not in text and "process-wide-token-77" not in text
    assert "anything" not in text and "_secrets" not in out
    assert out["msg"] == "login with [REDACTED] failed"


def test_secret_hides_its_value_everywhere_but_reveal() -> None:
    s = Secret("hunter2-Q")
    for shown in (repr(s), str(s), f"{s}", f"{s!r}", f"{s:>20}", str([s]), str({"k": s})):
        assert "hunter2-Q" not in shown
    assert s.reveal() == "hunter2-Q"
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(s)


# --- one sweep over the scenarios, looking for the secrets everywhere -----------------------


def _accounts(pw: dict[str, str]) -> list[QstAccount]:
    return [
        QstAccount("ok", pw["ok"]),
        QstAccount("wrong", "not-what-we-send"),
        QstAccount("locked", pw["locked"], error_code=5),
        QstAccount("pending", pw["pending"], provisioning=[("1", "Terms", "t", "u")]),
        QstAccount("flaky", pw["flaky"], server_errors=1),
        # A hostile broker that echoes the password back in its error text.
        QstAccount("echo", pw["echo"], error_text=f"Login failed for password {pw['echo']}"),
        QstAccount("garbage", pw["garbage"], misbehave_before_login="garbage"),
        QstAccount("kicked", pw["kicked"], close_after_login=4101),
    ]


async def test_no_secret_appears_in_any_output(
    clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    users = ["ok", "wrong", "locked", "pending", "flaky", "echo", "garbage", "kicked"]
    pw = {u: f"Zq9-{u}-S3CRET-{i}" for i, u in enumerate(users)}
    sink = io.StringIO()
    shown: list[str] = []
    async with run_qst_simulator(_accounts(pw)) as sim:
        for user in users:
            config = qst_config(sim.url, user, password=pw[user])
            shown += [repr(config), str(config)]
            async with open_session(config, audit=AuditLog.to_stream(sink)) as s:
                shown.append(repr(s))
                try:
                    await s.wait_authenticated()
                    await s.request(pb.TranslateInstrumentSymbolRequest(instrument_symbols=["X"]))
                    await trio.sleep(2)
                except BrokergateError as exc:
                    shown += [str(exc), repr(exc), json.dumps(getattr(exc, "outcome", {}))]
                shown.append(json.dumps(s.outcome(), default=str))
    everything = "\n".join([sink.getvalue(), caplog.text, *shown])
    assert "echo" in sink.getvalue()  # the sweep did run and record
    for user, secret in pw.items():
        assert secret not in everything, f"{user}'s password leaked"
    assert "[REDACTED]" in everything  # the echoed password was scrubbed, not just absent


@pytest.mark.parametrize("kind", ["to_structlog", "collect"])
async def test_other_sinks_redact_too(kind: str) -> None:
    received: list[dict[str, Any]] = []

    class Target:
        def info(self, event: str, **kw: Any) -> None:
            received.append({"event": event, **kw})

    audit = AuditLog.to_structlog(Target()) if kind == "to_structlog" else AuditLog.collect(
        received)
    async with run_qst_simulator([QstAccount("echo", "pw-Echo-1",
                                             error_text="bad pw-Echo-1")]) as sim:
        config = qst_config(sim.url, "echo", password="pw-Echo-1")
        async with open_session(config, audit=audit) as s:
            with pytest.raises(BrokergateError):
                await s.wait_authenticated()
    assert received and "pw-Echo-1" not in json.dumps(received, default=str)
    assert any("[REDACTED]" in str(e.get("detail")) for e in received)


async def test_default_kwargs_helper_collects() -> None:
    events: list[dict[str, Any]] = []
    async with run_qst_simulator([QstAccount("ok", "ok-pw")]) as sim:
        async with open_session(qst_config(sim.url, "ok"), **session_kwargs(events)) as s:
            await s.wait_authenticated()
    assert events and all("timestamp" in e for e in events)
