"""``brokergate run SESSIONS.toml``: hold the file's sessions (``brokergate.engine.service``);
``--check`` only reads the file and says what it declares."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from brokergate.engine.cli._fleet_login import coordinator_failure
from brokergate.engine.cli._secrets import UsageError

#: What ``brokergate run`` needs beyond the library.
_NEEDS_OPS = "`brokergate run` needs the ops extra: pip install 'brokergate[ops]'"


def run(args: argparse.Namespace) -> int:
    try:
        import hypercorn  # noqa: F401, PLC0415 - checked here, used by the service
        import prometheus_client  # noqa: F401, PLC0415

        from brokergate.engine.service import (  # noqa: PLC0415  # noqa: PLC0415
            EXIT_BAD_FILE,
            ServiceFileError,
            load_service_file,
            serve,
        )
    except ImportError as missing:
        raise UsageError(f"{_NEEDS_OPS} ({missing})") from None
    path = Path(args.file)
    try:
        if args.check:
            loaded = load_service_file(path)
            for entry in loaded.sessions.values():
                when = entry.schedule.describe() if entry.schedule else "always"
                print(f"{entry.name}: {entry.broker}, {when}")
            print(f"{path}: {len(loaded.sessions)} sessions, no problems")
            return 0
        return trio.run(serve, path)
    except ServiceFileError as exc:
        print(f"brokergate run: {path} has mistakes; nothing was started:\n{exc}",
              file=sys.stderr)
        return EXIT_BAD_FILE
    except BaseException as exc:
        said = coordinator_failure(exc)
        if said is None:
            raise
        raise said from None
