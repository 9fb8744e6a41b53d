"""brokergate's benchmarks: run them all and print one Markdown report.

    python -m bench [--quick] [--only NAME[,NAME...]] [--out FILE] [--docs]
    (also: python3 tasks.py bench ..., make bench; from a checkout: bench/ is not installed)

NAME is one of overhead, scale, restore, storm, transitions, steady, fleet. Every benchmark runs
its simulator in a process of its own (fleet also its member processes and a redis-server).
``--quick`` runs each at a toy size (seconds, for a smoke test; its figures mean little).
``--docs`` also puts the report in docs/benchmarks.md between the benchmark markers. Exit
status 0 whatever the figures say: a benchmark reports, it does not judge; the summary says which
targets were met. """

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench._load import Load, snapshot
from bench._report import Section, machine
from bench._server import raise_fd_limit

#: The benchmarks, in the issue's order: name, module.
BENCHMARKS: dict[str, str] = {
    "overhead": "bench.overhead",
    "scale": "bench.scale",
    "restore": "bench.restore",
    "storm": "bench.storm",
    "transitions": "bench.transitions",
    "steady": "bench.steady",
    "fleet": "bench.fleet",
}
#: Where ``--docs`` puts the report, between these markers.
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
DOCS_START = "<!-- benchmarks:start -->"
DOCS_END = "<!-- benchmarks:end -->"


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 tasks.py bench",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="toy sizes: a smoke test of the benchmarks, not a measurement")
    parser.add_argument("--only", type=lambda text: [n.strip() for n in text.split(",") if n],
                        default=list(BENCHMARKS), metavar="NAME[,NAME...]",
                        help=f"run only these ({', '.join(BENCHMARKS)})")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--docs", action="store_true",
                        help="also put the report in docs/benchmarks.md between the benchmark "
                             "markers")
    # The old name, from when the report was in the README.
    parser.add_argument("--readme", dest="docs", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [name for name in args.only if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from "
                     f"{', '.join(BENCHMARKS)}")
    return args


def summary(sections: Sequence[Section]) -> str:
    lines = ["| target | met |", "|---|---|"]
    for section in sections:
        lines += [f"| {text} | {'yes' if met else '**no**'} |" for text, met in section.targets]
    return "\n".join(lines)


def report(sections: Sequence[Section], *, quick: bool, seconds: float, command: str) -> str:
    parts = [
        f"Produced by `{command}` in {seconds:.0f} s on:",
        "",
        machine(),
        "",
    ]
    if quick:
        parts += ["**Quick run: toy sizes, for a smoke test; these figures mean little.**", ""]
    for section in sections:
        parts += [section.markdown(), ""]
    parts += ["### Targets", "", summary(sections)]
    return "\n".join(parts)


def write_docs(path: Path, text: str) -> bool:
    """Put ``text`` between the benchmark markers in ``path`` (docs/benchmarks.md); False if the
    markers are missing."""
    page = path.read_text(encoding="utf-8")
    start, end = page.find(DOCS_START), page.find(DOCS_END)
    if start < 0 or end < start:
        return False
    path.write_text(page[: start + len(DOCS_START)] + "\n" + text + "\n" + page[end:],
                    encoding="utf-8")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    raise_fd_limit()
    started = time.perf_counter()
    sections: list[Section] = []
    for name in args.only:
        print(f"running {name} ...", end=" ", file=sys.stderr, flush=True)
        began = snapshot()
        run: Callable[..., Section | list[Section]] = importlib.import_module(
            BENCHMARKS[name]).run
        result = run(quick=args.quick)
        tables = result if isinstance(result, list) else [result]
        load = Load.since(began)
        # The simulators and fleets are child processes: the machine's figures are the ones
        # that cover them. (A benchmark of several tables says it once, under its last.)
        tables[-1].notes.append("While this benchmark ran: " + load.describe(process=False))
        sections += tables
        print(f"{load.seconds:.0f} s", file=sys.stderr, flush=True)
    command = "python3 tasks.py bench" + (" --quick" if args.quick else "") + (
        f" --only {','.join(args.only)}" if args.only != list(BENCHMARKS) else "")
    text = report(sections, quick=args.quick, seconds=time.perf_counter() - started,
                  command=command)
    print(text, flush=True)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    if args.docs and not write_docs(DOCS, text):
        print(f"{DOCS} has no benchmark markers; not written", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
