"""`brokergate demo`: run once as a real process (non-interactive), every scenario reaching its
expected outcome, nothing sent early, no secret written; and its options and live table."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from brokergate.engine.demo import SCENARIOS
from brokergate.engine.demo.view import Row, View

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "brokergate.engine.cli"]
#: Every credential the demo's sessions hold: none may appear in anything the demo writes.
SECRETS = ["alice-pw", "a-wrong-guess", "the-real-pw", "fran-pw", "kim-pw", "carl-pw", "dana-pw",
           "lee-pw", "rita-pw", "tina-token-old", "tina-token-new", "TOTY-pw", "TOKY-pw",
           "key-TOKY", "BLOCKY-pw", "FS001-pw", "key-FS040", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("demo-output")
    proc = subprocess.run([*CLI, "demo", "--out", str(out)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, check=False)
    return proc, out


def test_every_scenario_reaches_its_expected_outcome(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, out = demo
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every session reached its expected outcome" in proc.stdout
    result = json.loads((out / "summary.json").read_text())
    rows = {r["scenario"]: r for r in result["sessions"]}
    assert set(rows) == {sc.name for sc in SCENARIOS}
    assert all(r["ok"] and not r["problems"] for r in rows.values())
    assert rows["cqg-dropped-twice"]["counts"] == {"logons": 1, "restores": 2}
    assert rows["qst-second-device"]["outcome"] == "displaced:displaced"
    assert rows["firstock-blocked-user"]["outcome"] == "locked_out:user_blocked"
    assert rows["firstock-morning-login"]["outcome"] == "authenticated x40"
    assert result["simulators"]["firstock_429"] == 0


def test_early_requests_are_refused_and_nothing_reaches_a_broker_early(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, out = demo
    result = json.loads((out / "summary.json").read_text())
    refused = {r["scenario"]: r["refused_early_requests"] for r in result["sessions"]}
    early = {sc.name for sc in SCENARIOS if sc.early_requests}
    assert {b.split("-")[0] for b in early} == {"qst", "cqg", "firstock"}
    assert all(refused[name] >= 1 for name in early)
    assert result["violations"] == []
    assert "protocol violations seen by the simulators: 0" in proc.stdout
    assert "request refused by the gate while" in proc.stdout  # plain progress lines


def test_it_writes_the_audit_log_and_traced_diagrams(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, out = demo
    events = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    sessions = {e["session_id"] for e in events if e["event"] == "transition"}
    assert {"qst-clean-login", "cqg-dropped-twice", "firstock-morning-login-40"} <= sessions
    traces = out / "traces"
    page = (traces / "trace-cqg-dropped-twice.md").read_text()
    assert page.count("| authenticated | restoring |") == 2 and "```mermaid" in page
    assert (traces / "trace-firstock-invalid-totp.mmd").exists()
    index = (out / "README.md").read_text()
    assert "[trace-qst-server-error.md](traces/trace-qst-server-error.md)" in index
    assert f"Wrote {out}/" in proc.stdout and "README.md" in proc.stdout


def test_no_secret_in_anything_the_demo_writes(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, out = demo
    texts = [proc.stdout, proc.stderr] + [p.read_text(errors="replace")
                                          for p in out.rglob("*") if p.is_file()]
    for secret in SECRETS:
        assert not any(secret in text for text in texts), secret
    assert '"123456"' not in (out / "audit.jsonl").read_text()  # the fleet's fixed TOTP


def test_list_and_one_scenario_and_an_unknown_name(tmp_path: Path) -> None:
    listed = subprocess.run([*CLI, "demo", "--list"], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, check=True).stdout
    for sc in SCENARIOS:
        assert sc.name in listed
    one = subprocess.run([*CLI, "demo", "--scenario", "qst-wrong-password", "--out",
                          str(tmp_path)], capture_output=True, text=True, timeout=60, cwd=ROOT,
                         check=False)
    assert one.returncode == 0, one.stdout + one.stderr
    result = json.loads((tmp_path / "summary.json").read_text())
    assert [r["scenario"] for r in result["sessions"]] == ["qst-wrong-password"]
    bad = subprocess.run([*CLI, "demo", "--scenario", "nope", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert bad.returncode == 2 and "no scenario 'nope'" in bad.stderr


def test_a_scenario_that_misses_its_expectation_fails_the_demo(tmp_path: Path) -> None:
    from brokergate.engine.demo import run_demo, scenarios

    sc = next(s for s in scenarios.SCENARIOS if s.name == "qst-wrong-password")
    wrong = scenarios.Expect("authenticated")
    patched = [type(sc)(**{**sc.__dict__, "expect": wrong})]
    out = io.StringIO()
    original = scenarios.SCENARIOS[:]
    scenarios.SCENARIOS[:] = patched
    try:
        code = run_demo(tmp_path, live=False, out=out)
    finally:
        scenarios.SCENARIOS[:] = original
    assert code == 1
    assert "MISMATCH: qst-wrong-password: ended failed:invalid_credentials, expected " \
           "authenticated" in out.getvalue()


def test_the_live_table_is_redrawn_in_place() -> None:
    async def main() -> str:
        out = io.StringIO()
        rows = [Row("a", "qst", "authenticated"), Row("b", "cqg", "failed", sessions=3)]
        view = View(out, rows, live=True)
        rows[1].states.update({"b-1": "authenticated", "b-2": "authenticated", "b-3": "backoff"})
        view.draw()
        first = out.getvalue()
        assert first.startswith("\x1b[2Kscenario")  # the first frame starts where it is
        view.draw()
        return out.getvalue()[len(first):]

    second = trio.run(main)
    assert second.startswith("\x1b[4F")  # up over the header, two rows and the clock line
    assert "2 authenticated, 1 backoff" in second
