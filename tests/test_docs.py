"""The docs' promises: the README is short and points into docs/; each broker's page carries the
runtime's policy table; generated sections match their source; commands and examples work; and
every link in every Markdown file of the repository resolves inside it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from brokergate.engine.diagrams import BROKER_DOCS, refresh_broker_docs, with_policy_table
from brokergate.machines import PolicyRow, policy_markdown
from brokergate.machines.cqg.policy import policy_rows as cqg_rows
from brokergate.machines.firstock.policy import policy_rows as firstock_rows
from brokergate.machines.qst.policy import policy_rows as qst_rows

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
README_LIMIT = 10_240
#: The pages the README must link to.
REQUIRED_DOCS = [
    "docs/architecture.md",
    "docs/brokers/qst.md",
    "docs/brokers/cqg.md",
    "docs/brokers/firstock.md",
    "docs/cli.md",
    "docs/security.md",
    "docs/reliability.md",
    "docs/benchmarks.md",
    "docs/testing.md",
    "docs/fleet.md",
    "docs/operations.md",
]
POLICIES: dict[str, Callable[[], list[PolicyRow]]] = {
    "qst": qst_rows, "cqg": cqg_rows, "firstock": firstock_rows}


def _page(broker: str) -> str:
    return (ROOT / BROKER_DOCS[broker]).read_text(encoding="utf-8")


@pytest.mark.parametrize("broker", list(POLICIES))
def test_each_broker_page_carries_its_policy_table_exactly(broker: str) -> None:
    table = policy_markdown(POLICIES[broker]())
    page = _page(broker)
    assert table in page, (
        f"{BROKER_DOCS[broker]}: the {broker} policy table drifted: "
        "run `python3 tasks.py diagrams`")
    for other in POLICIES:
        if other != broker:
            assert f"<!-- policy table: {other} " not in page, (
                f"{BROKER_DOCS[broker]} carries the {other} policy table; it belongs in "
                f"{BROKER_DOCS[other]}")


@pytest.mark.parametrize("broker", list(POLICIES))
def test_the_broker_pages_policy_tables_are_refreshed_between_their_markers(broker: str) -> None:
    page = _page(broker)
    assert with_policy_table(page, broker) == page
    first_row = policy_markdown(POLICIES[broker]()).splitlines()[2]
    stale = page.replace(first_row, "| a row that is no longer true | x | `y` | z |", 1)
    assert stale != page
    assert with_policy_table(stale, broker) == page


def test_refreshing_the_broker_docs_rewrites_only_a_stale_page(tmp_path: Path) -> None:
    for relative in BROKER_DOCS.values():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / relative, tmp_path / relative)
    stale = tmp_path / BROKER_DOCS["cqg"]
    stale.write_text(stale.read_text(encoding="utf-8").replace(
        "| LogonResult 0 SUCCESS |", "| LogonResult zero |", 1), encoding="utf-8")
    assert refresh_broker_docs(tmp_path) == {
        BROKER_DOCS["qst"]: False, BROKER_DOCS["cqg"]: True, BROKER_DOCS["firstock"]: False}
    for relative in BROKER_DOCS.values():
        assert (tmp_path / relative).read_text(encoding="utf-8") == (
            (ROOT / relative).read_text(encoding="utf-8"))


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


def test_the_docs_carry_a_clean_reliability_table_from_the_long_run() -> None:
    from reliability.__main__ import DOCS
    from reliability.report import DOCS_END, DOCS_START

    assert ROOT / "docs" / "reliability.md" == DOCS
    page = DOCS.read_text(encoding="utf-8")
    assert DOCS_START in page and DOCS_END in page, (
        f"docs/reliability.md has lost its markers {DOCS_START} ... {DOCS_END}")
    table = page.split(DOCS_START, 1)[1].split(DOCS_END, 1)[0]
    assert table.strip().startswith("`python3 tasks.py reliability"), (
        "run `python3 tasks.py reliability --docs`")
    rows = [line for line in table.splitlines() if line.startswith("| **all** | ")]
    runs = rows[0].split("|")[2:-1]
    fault_runs, hostile, expected, *bad_news = (int(cell) for cell in runs)
    assert fault_runs >= 3 * 200 and expected == fault_runs + hostile
    assert bad_news == [0, 0, 0, 0, 0]
    assert "Problems: 0." in table


# ---------------------------------------------------------------------------------------------
# The README is short, and every link in the repository's Markdown resolves


def test_the_readme_is_short_and_links_to_every_docs_page() -> None:
    size = len(README.encode("utf-8"))
    assert size <= README_LIMIT, (
        f"README.md is {size} bytes, over {README_LIMIT}: move detail into docs/")
    linked = {_resolve(ROOT / "README.md", link.target)[0] for link in _links(README)}
    missing = [page for page in REQUIRED_DOCS if (ROOT / page).resolve() not in linked]
    assert not missing, f"README.md does not link to {', '.join(missing)}"


def test_every_relative_link_in_the_markdown_resolves_inside_the_repository() -> None:
    files = _markdown_files(ROOT)
    assert ROOT / "README.md" in files and ROOT / "docs" / "cli.md" in files
    problems = _link_problems(files, ROOT, _ignored)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_no_markdown_links_to_this_repository_on_github() -> None:
    problems = []
    for path in _markdown_files(ROOT):
        for link in _links(path.read_text(encoding="utf-8")):
            url = urlsplit(link.target)
            if (url.scheme in ("http", "https")
                    and url.hostname in ("github.com", "www.github.com",
                                         "raw.githubusercontent.com")
                    and "/brokergate" in url.path.lower()):
                problems.append(f"{path.relative_to(ROOT)}:{link.line}: {link.target} "
                                "points at this repository on GitHub; use a relative link")
    assert not problems, "\n".join(problems)


def test_the_link_check_finds_what_is_broken(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## Some `code`, and more!\n",
                                            encoding="utf-8")
    (tmp_path / "x.py").write_text("", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Top\n\n"
        "[ok](docs/a.md#some-code-and-more) [ok](docs/) [ok](#top) ![ok](x.py) [web](https://x.org)\n"
        "[absolute](/docs/a.md)\n"
        "[missing](docs/b.md)\n"
        "[bad anchor](docs/a.md#nope)\n"
        "[outside](../elsewhere.md)\n"
        "![no image](img.png)\n"
        "[ref]: docs/gone.md\n"
        "`[in code](nowhere.md)`\n\n"
        "```\n[in a block](nowhere.md)\n```\n",
        encoding="utf-8")
    problems = _link_problems([readme], tmp_path, lambda paths: set())
    assert [p.split(": ", 1)[0] for p in problems] == [
        "README.md:4", "README.md:5", "README.md:6", "README.md:7", "README.md:8", "README.md:9"]
    assert "not relative" in problems[0] and "no heading" in problems[2]


class _Link:
    __slots__ = ("line", "target")

    def __init__(self, target: str, line: int) -> None:
        self.target, self.line = target, line


#: Where a link's target is: inline links and images, reference definitions, HTML attributes.
_TARGETS = [
    re.compile(r"\]\(\s*<?([^)\s>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"),
    re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?", re.M),
    re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']"""),
]


def _blank_code(text: str) -> str:
    """``text`` with fenced blocks, code spans and HTML comments blanked (lines kept)."""
    def blank(match: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", match.group(0))

    text = re.sub(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", blank, text, flags=re.M | re.S)
    text = re.sub(r"<!--.*?-->", blank, text, flags=re.S)
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", blank, text, flags=re.S)


def _links(text: str) -> list[_Link]:
    plain = _blank_code(text)
    found = []
    for pattern in _TARGETS:
        for match in pattern.finditer(plain):
            found.append(_Link(match.group(1), plain.count("\n", 0, match.start(1)) + 1))
    return sorted(found, key=lambda link: link.line)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: the text as shown, lower case, punctuation other than
    ``-`` and ``_`` dropped, spaces turned into ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    plain = re.sub(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", "", text, flags=re.M | re.S)
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for match in re.finditer(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", plain, re.M):
        slug = _slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    anchors.update(re.findall(r"""<a\s+(?:name|id)\s*=\s*["']([^"']+)["']""", text))
    return anchors


def _resolve(source: Path, target: str) -> tuple[Path, str]:
    path, _, anchor = target.partition("#")
    return ((source.parent / unquote(path)).resolve() if path else source.resolve()), anchor


def _link_problems(files: Iterable[Path], root: Path,
                   ignored: Callable[[list[Path]], set[Path]]) -> list[str]:
    """Every link in ``files`` that is not http(s) or mailto and does not resolve, relatively, to
    a file or folder inside ``root`` that git does not ignore (with its anchor, into Markdown)."""
    root = root.resolve()
    problems: list[str] = []
    found: list[tuple[str, Path]] = []  # resolved, to ask git whether a clone would have them
    for source in files:
        where = source.resolve().relative_to(root)
        for link in _links(source.read_text(encoding="utf-8")):
            at = f"{where}:{link.line}: link ({link.target})"
            scheme = urlsplit(link.target).scheme
            if scheme in ("http", "https", "mailto"):
                continue
            if not link.target:
                problems.append(f"{at} is empty")
                continue
            if scheme or link.target.startswith(("/", "\\")):
                problems.append(f"{at} is not relative: write it relative to {where}")
                continue
            target, anchor = _resolve(source, link.target)
            if not target.is_relative_to(root):
                problems.append(f"{at} leaves the repository")
            elif not target.exists():
                problems.append(f"{at}: {target.relative_to(root)} does not exist")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
                problems.append(f"{at}: {target.relative_to(root)} has no heading for #{anchor}")
            else:
                found.append((at, target))
    unreachable = ignored([target for _, target in found])
    problems += [f"{at}: {target.relative_to(root)} is ignored by git, so a clone lacks it"
                 for at, target in found if target in unreachable]
    return problems


def _git(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, input=stdin, capture_output=True,
                              text=True, check=False, timeout=60)
    except OSError:
        return None


def _ignored(paths: list[Path]) -> set[Path]:
    """Those of ``paths`` that git ignores (and does not track)."""
    if not paths:
        return set()
    done = _git("check-ignore", "--stdin", stdin="\n".join(
        str(p.relative_to(ROOT.resolve())) for p in paths) + "\n")
    if done is None or done.returncode not in (0, 1):
        return set()
    return {(ROOT / line).resolve() for line in done.stdout.splitlines() if line}


def _markdown_files(root: Path) -> list[Path]:
    """The repository's Markdown files: tracked, or new and not ignored."""
    done = _git("ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.md")
    if done is not None and done.returncode == 0:
        files = {root / name for name in done.stdout.split("\0") if name}
    else:  # not a git checkout (an unpacked sdist, say)
        skip = {".venv", ".git", "demo-output", "build", "dist", "node_modules"}
        files = {path for path in root.rglob("*.md")
                 if not skip.intersection(path.relative_to(root).parts)
                 and not any(part.endswith(".egg-info") for part in path.parts)}
    return sorted({path for path in files if path.is_file() and not path.is_symlink()},
                  key=lambda path: path.resolve())
