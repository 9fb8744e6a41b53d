"""Regenerate the committed protobuf modules from the .proto sources, or check them for drift.

    python proto/generate.py           # rewrite machines/<broker>/<name>_pb2.py and .pyi
    python proto/generate.py --check   # exit 1 and name the files that differ

Each broker's sources live in proto/<broker>/ and their modules are committed beside the machine
that uses them, in machines/<broker>/. The generator is grpcio-tools' bundled protoc, pinned in the
project's dev extra so that every machine produces the same bytes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
MACHINES_ROOT = ROOT / "machines"


def _brokers() -> list[Path]:
    return sorted(p for p in PROTO_ROOT.iterdir() if p.is_dir() and any(p.glob("*.proto")))


def generate_into(out_root: Path) -> list[Path]:
    """Run protoc for every broker; write modules under out_root/<broker>/. Return the files."""
    try:
        from grpc_tools import protoc  # type: ignore[import-untyped]
    except ImportError:
        sys.exit("proto/generate.py needs grpcio-tools: pip install -e '.[dev]'")
    import grpc_tools

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    written: list[Path] = []
    for broker_dir in _brokers():
        out = out_root / broker_dir.name
        out.mkdir(parents=True, exist_ok=True)
        sources = sorted(str(p.name) for p in broker_dir.glob("*.proto"))
        args = [
            "protoc",
            f"-I{broker_dir}",
            f"-I{include}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            *sources,
        ]
        if protoc.main(args) != 0:
            sys.exit(f"protoc failed for {broker_dir}")
        for src in sources:
            stem = Path(src).stem
            written += [out / f"{stem}_pb2.py", out / f"{stem}_pb2.pyi"]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift")
    args = parser.parse_args(argv)
    if not args.check:
        files = generate_into(MACHINES_ROOT)
        for f in files:
            print(f"wrote {f.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        files = generate_into(Path(tmp))
        drifted = []
        for fresh in files:
            committed = MACHINES_ROOT / fresh.relative_to(tmp)
            if not committed.exists() or committed.read_bytes() != fresh.read_bytes():
                drifted.append(str(committed.relative_to(ROOT)))
    if drifted:
        print("generated protobuf modules are out of date: " + ", ".join(drifted))
        print("run: python3 tasks.py proto")
        return 1
    print("protobuf modules match their sources")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
