"""Generated files must match their sources."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_protobuf_modules_match_their_proto_sources() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_drift_check_notices_a_change(tmp_path: Path) -> None:
    # The check really compares: a module with one byte changed is reported.
    sys.path.insert(0, str(ROOT / "proto"))
    try:
        import generate
    finally:
        sys.path.pop(0)
    files = generate.generate_into(tmp_path)
    committed = ROOT / "machines" / files[0].relative_to(tmp_path)
    assert files[0].read_bytes() == committed.read_bytes()
    assert files[0].with_suffix(".pyi").exists()
