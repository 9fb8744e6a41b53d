#!/usr/bin/env python3
"""Project tasks that need nothing but Python 3.11 and pip.

    python3 tasks.py demo      run `brokergate demo` against the built-in simulators
    python3 tasks.py test      lint, type-check and run the whole test suite
    python3 tasks.py proto     regenerate the protobuf modules from proto/
    python3 tasks.py diagrams  regenerate diagrams/ and the policy tables in docs/brokers/
    python3 tasks.py lint      ruff and mypy only
    python3 tasks.py reliability [--seeds N] [--soak-sessions N] [--docs]
                               the long reliability and security suite and the soak (10,000
                               sessions through a virtual day of drops), with its table
    python3 tasks.py bench [--quick] [--only NAME,...] [--docs]
                               the benchmarks, as a Markdown report (see bench/README.md)

Each task creates .venv on first use and installs the project with its dev extra into it;
the install is repeated only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".brokergate-installed"


def run(*cmd: str | Path) -> None:
    print("+ " + " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, check=False)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - tasks.py may be run by an older python3
        sys.exit(f"brokergate needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating {VENV.relative_to(ROOT)} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != wanted:
        run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        run(PY, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
        STAMP.write_text(wanted)


def lint() -> None:
    run(PY, "-m", "ruff", "check", ".")
    run(PY, "-m", "mypy")


def main(argv: list[str]) -> None:
    task = argv[0] if argv else "help"
    rest = argv[1:]
    if task not in ("demo", "test", "proto", "lint", "diagrams", "reliability", "bench"):
        print(__doc__)
        sys.exit(0 if task in ("help", "-h", "--help") else 2)
    ensure_venv()
    if task == "demo":
        run(BIN / "brokergate", "demo", *rest)
    elif task == "test":
        lint()
        if shutil.which("redis-server") is None:
            print("note: redis-server is not installed, so the fleet tests are skipped; "
                  "`apt-get install redis-server` (Debian's package) runs them", flush=True)
        browsers = ("chromium", "chromium-browser", "google-chrome")  # tests/browser.py's
        if not os.environ.get("BROKERGATE_CHROMIUM") and not any(map(shutil.which, browsers)):
            print("note: chromium is not installed, so the browser tests are skipped; "
                  "`apt-get install chromium` (Debian's package) runs them", flush=True)
        # Two workers, a test file to each at a time (a file's module fixtures are made once):
        # the suite's five minutes are on two cores. The tests that measure rates or times
        # against the real clock (marked serial) then run alone, on a machine nothing else
        # loads. Arguments of your own run one pytest with them as given (`-n 0`: one process).
        parallel = ("-m", "pytest", "-n", "2", "--dist", "loadfile")
        if rest:
            run(PY, *parallel, *rest)
        else:
            run(PY, *parallel, "-m", "not bench and not serial")
            run(PY, "-m", "pytest", "-m", "serial")
    elif task == "proto":
        run(PY, "proto/generate.py", *rest)
    elif task == "lint":
        lint()
    elif task == "reliability":
        run(PY, "-m", "reliability", *rest)
    elif task == "bench":
        run(PY, "-m", "bench", *rest)
    elif task == "diagrams":
        run(BIN / "brokergate", "diagrams", "--out", ROOT / "diagrams", *rest)
        # Each broker's page in docs/brokers/ carries its policy table too, between markers.
        run(PY, "-c", "from pathlib import Path; "
            "from brokergate.engine.diagrams import refresh_broker_docs; "
            "[print(path, 'rewritten' if changed else 'unchanged') "
            "for path, changed in refresh_broker_docs(Path('.')).items()]")


if __name__ == "__main__":
    main(sys.argv[1:])
