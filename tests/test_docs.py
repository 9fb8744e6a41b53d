"""The README's promises: its policy table is the runtime's, its commands and example work."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from brokergate.machines import PolicyRow, policy_markdown
from brokergate.machines.cqg.policy import policy_rows as cqg_rows
from brokergate.machines.firstock.policy import policy_rows as firstock_rows
from brokergate.machines.qst.policy import policy_rows as qst_rows

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("broker", "rows"),
                         [("QST", qst_rows), ("CQG", cqg_rows), ("Firstock", firstock_rows)])
def test_readme_carries_each_policy_table_exactly(
    broker: str, rows: Callable[[], list[PolicyRow]]
) -> None:
    table = policy_markdown(rows())
    assert table in README, (
        f"README's {broker} policy table drifted: run `python3 tasks.py diagrams`")


def test_the_readme_policy_tables_are_refreshed_between_their_markers() -> None:
    from brokergate.engine.diagrams import readme_with_policy_tables

    assert readme_with_policy_tables(README) == README
    stale = README.replace("| ErrorMessage code 1 |", "| ErrorMessage code one |", 1)
    assert readme_with_policy_tables(stale) == README


def test_quick_start_has_exactly_the_demo_and_test_commands() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()
                if line.strip()]
    assert commands == ["python3 tasks.py demo", "python3 tasks.py test"]
    assert "python3 tasks.py test" in (ROOT / ".ci" / "run").read_text()


def test_library_example_runs() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "qst_login.py")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "authenticated; granted" in proc.stdout and "ESZ6 -> instrument" in proc.stdout


def test_cqg_example_restores_without_a_new_logon() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "cqg_session.py")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "session restored on a new connection" in proc.stdout
    assert "logons: 1, restores: 1" in proc.stdout


def test_the_readme_carries_a_clean_reliability_table_from_the_long_run() -> None:
    from reliability.report import README_END, README_START

    table = README.split(README_START, 1)[1].split(README_END, 1)[0]
    assert table.strip().startswith("`python3 tasks.py reliability"), (
        "run `python3 tasks.py reliability --readme`")
    rows = [line for line in table.splitlines() if line.startswith("| **all** | ")]
    runs = rows[0].split("|")[2:-1]
    fault_runs, hostile, expected, *bad_news = (int(cell) for cell in runs)
    assert fault_runs >= 3 * 200 and expected == fault_runs + hostile
    assert bad_news == [0, 0, 0, 0, 0]
    assert "Problems: 0." in table
