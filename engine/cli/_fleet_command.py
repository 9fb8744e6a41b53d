"""``brokergate fleet status`` and ``brokergate fleet keygen``.

``status`` reads the fleet's Redis (``brokergate.engine.fleet._status``) and prints it: a table
for people, one JSON document with ``--json``. It reads nothing sealed, so it needs no fleet key
and loads none; the Redis password comes from the environment or a file, as for ``login``.

``keygen`` is the one command that prints a secret on purpose: the new fleet key, on stdout
(the hint of where to keep it on stderr), or into a new file of mode 0600 with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

import trio

from brokergate.engine.cli._fleet_login import DEFAULT_PREFIX, coordinator_failure
from brokergate.engine.cli._secrets import UsageError

#: Where to keep a fleet key, as keygen says it.
KEY_HINT = (
    "this is the fleet key, a secret: every process of the fleet needs the same one. Put it in "
    "the environment variable BROKERGATE_FLEET_KEY, or in a file only its owner can read "
    "(chmod 600) named by BROKERGATE_FLEET_KEY_FILE or --fleet-key-file (`brokergate fleet "
    "keygen --out FILE` writes one so)")


def fleet(args: argparse.Namespace) -> int:
    try:
        # The fleet needs the redis extra; the rest of the command line does not.
        from brokergate.engine import fleet as _fleet  # noqa: PLC0415, F401
    except ImportError as missing:
        raise UsageError(str(missing)) from None
    if args.fleet_command == "keygen":
        return keygen(args)
    return status(args)


# --- keygen -------------------------------------------------------------------------------


def keygen(args: argparse.Namespace) -> int:
    from brokergate.engine.fleet import new_fleet_key  # noqa: PLC0415

    key = new_fleet_key()
    if args.out is None:
        print(key, flush=True)
        print(f"brokergate: {KEY_HINT}", file=sys.stderr)
        return 0
    _write_private(args.out, key + "\n", replace=args.force)
    print(f"brokergate: wrote a new fleet key to {args.out} (mode 0600); name it in "
          "BROKERGATE_FLEET_KEY_FILE or --fleet-key-file on every host of the fleet",
          file=sys.stderr)
    return 0


def _write_private(path: Path, text: str, *, replace: bool) -> None:
    """Write ``text`` to a new file of mode 0600 at ``path``; an existing one only with
    ``replace``, and then by renaming a new private file over it (never rewriting the old one,
    whose mode may be wider)."""
    if path.is_dir():
        raise UsageError(f"--out {path} is a folder: name the key file to write")
    if path.exists() and not replace:
        raise UsageError(f"--out {path} exists: a key is never overwritten unless --force is "
                         "given (processes using the old key could no longer read what it "
                         "sealed)")
    try:
        if not replace:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            _fill(fd, text)
            return
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".fleet-key-")
        try:
            _fill(fd, text)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except FileExistsError:
        raise UsageError(f"--out {path} exists (made just now by another process?); give "
                         "--force to replace it") from None
    except OSError as exc:
        raise UsageError(f"cannot write --out {path}: {exc.strerror or type(exc).__name__}") \
            from None


def _fill(fd: int, text: str) -> None:
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


# --- status -------------------------------------------------------------------------------


def status(args: argparse.Namespace) -> int:
    try:
        found = trio.run(read_status, args)
    except BaseException as exc:
        said = coordinator_failure(exc)
        if said is None:
            raise
        raise said from None
    print(json.dumps(found, indent=2) if args.json else render(found), flush=True)
    return 0


async def read_status(args: argparse.Namespace) -> dict[str, Any]:
    """The fleet's state as plain data (what ``--json`` prints)."""
    from brokergate.engine.fleet._client import open_link, redis_target  # noqa: PLC0415
    from brokergate.engine.fleet._status import read_fleet_status  # noqa: PLC0415

    target = redis_target(args.coordinator, username=args.redis_user,
                          password_file=args.redis_password_file, ca_file=args.redis_ca_file)
    hidden = [target.password.reveal()] if target.password is not None else []
    async with open_link(target) as link:
        found = await read_fleet_status(link, args.prefix or DEFAULT_PREFIX, hidden)
    return {
        "coordinator": found.where,
        "prefix": found.prefix,
        "redis_time": found.now.astimezone(UTC).isoformat(),
        "boot_marker_age": _round(found.boot_age),
        "accounts": [{
            "broker": a.broker,
            "account": a.account,
            "claims": [{"kind": c.kind, "holder": c.holder, "fence": c.fence,
                        "since": c.since.isoformat() if c.since else None,
                        "held_for": _round(c.held_for), "ttl": _round(c.ttl)}
                       for c in a.claims],
            "last_fence": a.last_fence,
            "handover": None if a.handover_bytes is None else {
                "bytes": a.handover_bytes, "ttl": _round(a.handover_ttl)},
            "outcome": None if a.outcome is None else {**a.outcome,
                                                       "ttl": _round(a.outcome_ttl)},
        } for a in found.accounts],
        "limits": [{"host": s.host, "per_second": s.per_second, "granted_last_window": s.granted,
                    "next_slot": round(s.next_slot, 3), "waiting": s.waiting}
                   for s in found.limits],
        "tokens": [{"broker": t.broker, "user": t.user, "ttl": _round(t.ttl)}
                   for t in found.tokens],
        "other_keys": found.other_keys,
    }


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _span(seconds: float | None) -> str:
    """A time span for people: ``-`` for none, seconds up to two minutes, then m, h, d."""
    if seconds is None:
        return "-"
    for unit, size, above in (("d", 86_400, 172_800), ("h", 3600, 7200), ("min", 60, 120)):
        if seconds >= above:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _table(title: str, header: Sequence[str], rows: list[list[str]]) -> list[str]:
    lines = [title]
    if not rows:
        return [*lines, "  (none)"]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows,
                                                                       strict=True)]
    for row in (list(header), *rows):
        lines.append("  " + "  ".join(str(cell).ljust(w) for cell, w in
                                      zip(row, widths, strict=True)).rstrip())
    return lines


def render(found: dict[str, Any]) -> str:
    """The human table of ``read_status``'s data."""
    boot = found["boot_marker_age"]
    lines = [f"fleet at {found['coordinator']}, key prefix {found['prefix']}, Redis time "
             f"{found['redis_time'][:19].replace('T', ' ')} UTC",
             "boot marker: " + (f"set {_span(boot)} ago (when Redis was found empty)"
                                if boot is not None else "none (no session has used this Redis "
                                                         "yet, or it was emptied)"),
             ""]
    claims, outcomes = [], []
    for a in found["accounts"]:
        handover = ("-" if a["handover"] is None
                    else f"{a['handover']['bytes']} bytes, {_span(a['handover']['ttl'])}")
        last = ", ".join(f"{kind} {fence}" for kind, fence in sorted(a["last_fence"].items()))
        for c in a["claims"] or [None]:
            claims.append([a["broker"], a["account"], c["kind"] if c else "-",
                           c["holder"] if c else "(none)", str(c["fence"]) if c else "-",
                           _span(c["held_for"]) if c else "-", _span(c["ttl"]) if c else "-",
                           last or "-", handover])
        if a["outcome"] is not None:
            o = a["outcome"]
            outcomes.append([a["broker"], a["account"], o["state"] or "-", o["reason"] or "-",
                             o["fault"] or "-", _span(o["ttl"]), o["detail"] or "-"])
    lines += _table("ACCOUNTS (claims: who holds each account, its fencing token)",
                    ["broker", "account", "claim", "holder", "fence", "held for", "ttl left",
                     "last fence", "handover (sealed)"], claims)
    lines += ["", *_table("LOGIN FLIGHT OUTCOMES",
                          ["broker", "account", "state", "reason", "fault", "kept for",
                           "detail"], outcomes)]
    limits = [[s["host"], f"{s['per_second']:g}/s" if s["per_second"] is not None else "idle",
               str(s["granted_last_window"]), f"{s['next_slot']:.3f} s", str(s["waiting"])]
              for s in found["limits"]]
    lines += ["", *_table("REST RATE LIMITS (per host, fleet-wide)",
                          ["host", "rate", "granted in last window", "next slot",
                           "processes waiting"], limits)]
    tokens = [[t["broker"], t["user"], _span(t["ttl"])] for t in found["tokens"]]
    lines += ["", *_table("STORED DAY TOKENS (sealed; values never read)",
                          ["broker", "user", "kept for"], tokens)]
    if found["other_keys"]:
        lines += ["", f"{found['other_keys']} other key(s) under the prefix (not the fleet's "
                      "kinds, or not of the type their names say)"]
    return "\n".join(lines)
