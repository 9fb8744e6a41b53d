"""A release that installs: the sdist and the wheel built from it, checked as PyPI would check
them, and the wheel installed into a fresh virtual environment outside the checkout, where its
command line, the examples and ``mypy --strict`` on a user's script work from that install alone.

Offline: the build runs without isolation (the dev extra provides build, setuptools and twine),
and the fresh environment gets brokergate's declared runtime dependencies, and nothing else, by
links to the files the dev environment already has; pip then installs the wheel with
``--no-index``, checking that those dependencies satisfy what the wheel declares.
"""

from __future__ import annotations

import configparser
import contextlib
import email.parser
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
NAME = PYPROJECT["project"]["name"]
VERSION = PYPROJECT["project"]["version"]
DIST_INFO = f"{NAME}-{VERSION}.dist-info"
SDIST_TOP = f"{NAME}-{VERSION}"
#: Top-level entries of the sdist, exactly (see MANIFEST.in).
SDIST_ENTRIES = {"PKG-INFO", "setup.cfg", "pyproject.toml", "README.md", "MANIFEST.in",
                 f"{NAME}.egg-info", "brokergate", "engine", "machines", "simulators", "proto",
                 "examples", "diagrams"}
CACHES = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis"}


def _show(proc: subprocess.CompletedProcess[str]) -> str:
    args = " ".join(str(a) for a in proc.args)
    return (f"\n$ {args}\nexit {proc.returncode}\n--- stdout\n{proc.stdout}"
            f"\n--- stderr\n{proc.stderr}")


def _run(cmd: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def _ok(cmd: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = _run(cmd, cwd=cwd, env=env, timeout=timeout)
    assert proc.returncode == 0, _show(proc)
    return proc


def _clean_env() -> dict[str, str]:
    """The environment without anything that would point Python, pip or mypy elsewhere."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV", "CONDA", "MYPY"))
            and k != "BROKERGATE_PASSWORD"}


def _package_sources(src: Path) -> dict[str, str]:
    """Every file the package-dir map builds the wheel from, by its path in the source tree,
    with its path in the wheel (``engine/_session.py``: ``brokergate/engine/_session.py``)."""
    pyproject = tomllib.loads((src / "pyproject.toml").read_text(encoding="utf-8"))
    mapping: dict[str, str] = pyproject["tool"]["setuptools"]["package-dir"]
    # A folder of data only (the diagrams the status page draws on) ships just its data files.
    data_only = {name: patterns for name, patterns in
                 pyproject["tool"]["setuptools"]["package-data"].items() if name != "*"}
    files: dict[str, str] = {}
    for package, folder in mapping.items():
        base = src / folder
        if package in data_only:
            for pattern in data_only[package]:
                for path in base.glob(pattern):
                    files[path.relative_to(src).as_posix()] = "/".join(
                        [*package.split("."), path.name])
            continue
        # os.walk does not descend into symlinks: brokergate/engine is engine/, mapped itself.
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d not in CACHES]
            for filename in filenames:
                path = Path(dirpath, filename)
                if filename.endswith((".pyc", ".pyo")):
                    continue
                inside = path.relative_to(base).as_posix()
                files[path.relative_to(src).as_posix()] = "/".join(
                    [*package.split("."), inside])
    return files


# ---------------------------------------------------------------------------------------------
# the build


@dataclass(frozen=True)
class Release:
    src: Path  #: the tree the build ran in: the checkout's files, as a clone would have them
    sdist: Path
    wheel: Path
    build_seconds: float


def _copy_release_tree(dst: Path) -> None:
    """The files a clone of the checkout would hold, plus new files not ignored (work in
    progress): no egg-info, caches or build leftovers of the checkout."""
    listed = _ok(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                 cwd=ROOT, timeout=30).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if not source.is_symlink() and not source.is_file():
            continue  # deleted in the working tree, not yet committed
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)


def _build(src: Path, outdir: Path, *only: str) -> subprocess.CompletedProcess[str]:
    # Without --sdist/--wheel, build makes the sdist, then the wheel from the unpacked sdist:
    # the wheel proves the sdist complete. --no-isolation: setuptools from the dev environment.
    return _ok([sys.executable, "-m", "build", "--no-isolation", *only, "--outdir", outdir, src],
               cwd=src, env=_clean_env())


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    base = tmp_path_factory.mktemp("release")
    src = base / "src"
    _copy_release_tree(src)
    started = time.monotonic()
    _build(src, base / "dist")
    seconds = time.monotonic() - started
    sdists = sorted((base / "dist").glob("*.tar.gz"))
    wheels = sorted((base / "dist").glob("*.whl"))
    assert [p.name for p in sdists] == [f"{SDIST_TOP}.tar.gz"]
    assert [p.name for p in wheels] == [f"{NAME}-{VERSION}-py3-none-any.whl"]
    return Release(src, sdists[0], wheels[0], seconds)


def test_twine_check_strict_passes(release: Release) -> None:
    proc = _ok([sys.executable, "-m", "twine", "check", "--strict", release.sdist,
                release.wheel], cwd=release.src.parent, env={**_clean_env(), "NO_COLOR": "1"})
    assert proc.stdout.count("PASSED") == 2, _show(proc)


def _wheel_text(release: Release, name: str) -> str:
    with zipfile.ZipFile(release.wheel) as wheel:
        return wheel.read(f"{DIST_INFO}/{name}").decode("utf-8")


def test_the_wheel_holds_one_import_package_the_whole_library_and_nothing_else(
    release: Release,
) -> None:
    with zipfile.ZipFile(release.wheel) as wheel:
        names = wheel.namelist()
    assert len(names) == len(set(names))
    assert _wheel_text(release, "top_level.txt").splitlines() == ["brokergate"]
    strays = [n for n in names if not n.startswith(("brokergate/", f"{DIST_INFO}/"))]
    assert strays == []
    # Exactly the files the package-dir map covers, data files included: nothing left behind,
    # nothing from bench/, reliability/ or tests/.
    package_files = sorted(n for n in names if n.startswith("brokergate/"))
    assert package_files == sorted(_package_sources(release.src).values())
    for wanted in ("brokergate/py.typed", "brokergate/qst/pb.py", "brokergate/cqg/pb.py",
                   "brokergate/machines/qst/qst_pb2.pyi",
                   "brokergate/machines/cqg/cqg_session_pb2.pyi",
                   "brokergate/engine/cli/__init__.py", "brokergate/engine/demo/scenarios.py",
                   "brokergate/simulators/pytest_plugin.py",
                   "brokergate/simulators/qst/server.py"):
        assert wanted in names
    entry_points = configparser.ConfigParser()
    entry_points.read_string(_wheel_text(release, "entry_points.txt"))
    assert dict(entry_points["console_scripts"]) == {"brokergate": "brokergate.engine.cli:main"}
    assert dict(entry_points["pytest11"]) == {"brokergate": "brokergate.simulators.pytest_plugin"}


def test_the_wheel_metadata_is_the_projects(release: Release) -> None:
    meta = email.parser.Parser().parsestr(_wheel_text(release, "METADATA"))
    project = PYPROJECT["project"]
    assert (meta["Name"], meta["Version"]) == (NAME, VERSION)
    assert meta["Requires-Python"] == project["requires-python"]
    assert meta["Description-Content-Type"] == "text/markdown"
    runtime = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert sorted(map(str, map(Requirement, runtime))) == sorted(
        str(Requirement(r)) for r in project["dependencies"])
    assert set(meta.get_all("Provides-Extra") or []) == set(project["optional-dependencies"])


def test_the_sdist_carries_the_sources_and_nothing_checkout_only(release: Release) -> None:
    with tarfile.open(release.sdist) as sdist:
        members = sdist.getmembers()
    names = [m.name for m in members]
    assert len(names) == len(set(names))
    assert [m.name for m in members if not (m.isfile() or m.isdir())] == []  # no symlinks
    assert all(n == SDIST_TOP or n.startswith(f"{SDIST_TOP}/") for n in names)
    files = {m.name.removeprefix(f"{SDIST_TOP}/") for m in members if m.isfile()}
    assert {f.split("/", 1)[0] for f in files} == SDIST_ENTRIES
    # Every file the wheel is built from, under its checkout path (the symlinks in brokergate/
    # are not followed: engine/cli/ is there once, as engine/cli/).
    sources = _package_sources(release.src)
    assert sorted(set(sources) - files) == []
    assert [f for f in files if f.startswith(("brokergate/engine/", "brokergate/machines/",
                                              "brokergate/simulators/"))] == []
    # The schemas the committed *_pb2 modules are generated from, and the examples.
    for wanted in ("proto/qst/qst.proto", "proto/cqg/cqg_session.proto", "proto/generate.py",
                   "examples/qst_login.py", "examples/cqg_session.py"):
        assert wanted in files
    assert [f for f in files if "__pycache__" in f or f.endswith(".pyc")] == []
    if (release.src / "LICENSE").exists():
        assert "LICENSE" in files


def _checkout_leftovers() -> set[str]:
    """Untracked and ignored entries of the checkout (folders collapsed), caches aside."""
    out = _ok(["git", "status", "--porcelain=v1", "-z", "--ignored", "--untracked-files=normal"],
              cwd=ROOT, timeout=30).stdout.split("\0")
    entries = {line[3:] for line in out if line[:2] in ("??", "!!")}
    return {e for e in entries
            if not e.startswith(".venv") and not CACHES & set(e.rstrip("/").split("/"))}


def test_building_in_the_checkout_leaves_nothing_and_makes_the_same_sdist(
    release: Release, tmp_path: Path,
) -> None:
    """What a release engineer runs, `python -m build` in a used checkout (its egg-info, from
    the editable install, perhaps stale), makes the sdist a clean clone makes, and leaves only
    the git-ignored egg-info behind."""
    before = _checkout_leftovers()
    _build(ROOT, tmp_path, "--sdist")
    new = _checkout_leftovers() - before - {f"{NAME}.egg-info/"}
    assert new == set(), f"the build left {sorted(new)} in the checkout"
    assert not (ROOT / "build").exists() and not (ROOT / "dist").exists()

    def listing(path: Path) -> list[str]:
        with tarfile.open(path) as sdist:
            return sorted(sdist.getnames())

    assert listing(tmp_path / release.sdist.name) == listing(release.sdist)


# ---------------------------------------------------------------------------------------------
# the install


@dataclass(frozen=True)
class Fresh:
    root: Path  #: the virtual environment
    site: Path  #: its site-packages
    work: Path  #: the working directory of everything run from it, outside the checkout
    env: dict[str, str]

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def run(self, *cmd: str | Path, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return _run(cmd, cwd=self.work, env={**self.env, **(env or {})}, timeout=timeout)


def _runtime_closure(requires: list[str]) -> list[importlib.metadata.Distribution]:
    """The distributions of ``requires`` and of what they require in turn (no extras), as
    installed in this (the dev) environment."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = list(requires)
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        key = canonicalize_name(requirement.name)
        if key in found:
            continue
        dist = importlib.metadata.distribution(requirement.name)
        assert requirement.specifier.contains(dist.version, prereleases=True), (
            f"the dev environment's {dist.name} {dist.version} does not satisfy {requirement}")
        found[key] = dist
        todo.extend(dist.requires or [])
    return list(found.values())


def _link_distribution(dist: importlib.metadata.Distribution, site: Path) -> None:
    """Make ``dist`` installed in ``site`` by a link to each of its files (as its RECORD lists
    them), its .dist-info included; scripts outside site-packages are left out."""
    assert dist.files is not None, f"{dist.name} has no RECORD to link its files from"
    for file in dist.files:
        if file.parts[0] == "..":
            continue
        source = Path(str(dist.locate_file(file)))
        target = site / file
        if not source.exists() or target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source)


@pytest.fixture(scope="module")
def fresh(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fresh]:
    base = tmp_path_factory.mktemp("fresh")
    root, work = base / "venv", base / "work"
    work.mkdir()
    env = _clean_env()
    # From the dev environment's python, venv builds on the same base interpreter.
    _ok([sys.executable, "-m", "venv", "--without-pip", root], cwd=work, env=env, timeout=60)
    site = Path(_ok([root / "bin" / "python", "-c",
                     "import sysconfig; print(sysconfig.get_path('purelib'))"],
                    cwd=work, env=env, timeout=30).stdout.strip())
    assert site.is_relative_to(root)
    meta = email.parser.Parser().parsestr(_wheel_text(release, "METADATA"))
    for dist in _runtime_closure(meta.get_all("Requires-Dist") or []):
        _link_distribution(dist, site)
    # pip from the dev environment, installing into the fresh one; --no-index: the declared
    # dependencies must already be satisfied by what is there.
    installed = _ok([sys.executable, "-m", "pip", "--python", root / "bin" / "python",
                     "--disable-pip-version-check", "install", "--no-index", "--no-input",
                     release.wheel], cwd=work, env=env, timeout=120)
    assert f"Successfully installed {NAME}-{VERSION}" in installed.stdout, _show(installed)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(root)
    env["PYTHONNOUSERSITE"] = "1"
    yield Fresh(root, site, work, env)


def test_brokergate_comes_from_the_wheel_in_the_fresh_environment(fresh: Fresh) -> None:
    proc = fresh.run(fresh.python, "-c", (
        "import json, sys, importlib.metadata as m, brokergate, brokergate.engine.cli, "
        "brokergate.qst, brokergate.cqg, brokergate.firstock\n"
        "d = m.distribution('brokergate')\n"
        "print(json.dumps({'file': brokergate.__file__, 'cli': brokergate.engine.cli.__file__, "
        "'version': brokergate.__version__, 'dist': d.version, "
        "'meta': str(d.locate_file('')), 'direct_url': d.read_text('direct_url.json'), "
        "'path': sys.path}))"))
    assert proc.returncode == 0, _show(proc)
    found = json.loads(proc.stdout)
    site = fresh.site.resolve()
    assert Path(found["file"]).resolve() == site / "brokergate" / "__init__.py"
    assert Path(found["cli"]).resolve() == site / "brokergate" / "engine" / "cli" / "__init__.py"
    assert Path(found["meta"]).resolve() == site
    assert found["version"] == found["dist"] == VERSION
    assert "editable" not in (found["direct_url"] or "")
    assert not [p for p in found["path"] if p and Path(p).resolve().is_relative_to(ROOT)]


def test_importing_brokergate_loads_the_library_only(fresh: Fresh) -> None:
    proc = fresh.run(fresh.python, "-c",
                     "import json, sys, brokergate; print(json.dumps(sorted(sys.modules)))")
    assert proc.returncode == 0, _show(proc)
    loaded = json.loads(proc.stdout)
    assert "brokergate.engine._session" in loaded
    unwanted = [name for name in loaded
                if name.startswith(("brokergate.simulators", "brokergate.engine.demo"))
                or name.split(".")[0] in {"bench", "reliability", "tests", "helpers", "pytest",
                                          "_pytest", "hypothesis", "engine", "machines",
                                          "simulators"}]
    assert unwanted == []


@dataclass
class Simulator:
    proc: subprocess.Popen[bytes]
    url: str
    out: Path
    err: Path

    def output(self) -> str:
        return f"--- stdout\n{self.out.read_text()}\n--- stderr\n{self.err.read_text()}"

    def interrupt(self) -> int:
        """Ctrl-C, as the simulator says to stop it; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise


@contextlib.contextmanager
def _simulator(fresh: Fresh, name: str) -> Iterator[Simulator]:
    """``brokergate simulate qst`` from the install, in the foreground of its own process; it
    is stopped on the way out if the test did not stop it."""
    out, err = fresh.work / f"{name}.out", fresh.work / f"{name}.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([fresh.bin / "brokergate", "simulate", "qst", "--port", "0"],
                                cwd=fresh.work, env=fresh.env, stdin=subprocess.DEVNULL,
                                stdout=stdout, stderr=stderr)
    sim = Simulator(proc, "", out, err)
    try:
        deadline = time.monotonic() + 30
        while "stop with Ctrl-C" not in out.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, "the simulator did not start in 30 s"
            time.sleep(0.05)
        first = out.read_text().splitlines()[:1]
        assert first and "listening on ws://127.0.0.1:" in first[0], sim.output()
        sim.url = first[0].rsplit(" ", 1)[-1]
        yield sim
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_the_installed_cli_runs_the_simulator_and_logs_in_to_it(fresh: Fresh) -> None:
    with _simulator(fresh, "simulate") as sim:
        login = fresh.run(fresh.bin / "brokergate", "login", "qst", "--url", sim.url, "--user",
                          "alice", "--client-id", "release-test", "--connect-timeout", "5",
                          "--login-timeout", "5", "--translate", "ESZ6",
                          env={"BROKERGATE_PASSWORD": "alice-pw"})
        assert login.returncode == 0, _show(login)
        result = json.loads(login.stdout.splitlines()[-1])
        assert (result["broker"], result["outcome"]) == ("qst", "authenticated")
        assert "instrument_id" in result["translated"][0]
        assert "alice-pw" not in login.stdout + login.stderr
        sim.interrupt()


def test_ctrl_c_stops_the_installed_simulator_cleanly(fresh: Fresh) -> None:
    with _simulator(fresh, "interrupted") as sim:
        code = sim.interrupt()
    assert code == 0, sim.output()
    assert sim.err.read_text() == "simulator stopped\n", sim.output()


@pytest.mark.parametrize(("example", "lines"), [
    ("qst_login.py", ["authenticated; granted", "ESZ6 -> instrument"]),
    ("cqg_session.py", ["session restored on a new connection", "logons: 1, restores: 1"]),
])
def test_the_examples_run_from_the_install(fresh: Fresh, example: str,
                                           lines: list[str]) -> None:
    script = fresh.work / example
    shutil.copyfile(ROOT / "examples" / example, script)  # not run from the checkout
    proc = fresh.run(fresh.python, script)
    assert proc.returncode == 0, _show(proc)
    for line in lines:
        assert line in proc.stdout, _show(proc)


def test_the_demo_runs_from_the_install(fresh: Fresh) -> None:
    proc = fresh.run(fresh.bin / "brokergate", "demo", "--plain", "--out",
                     fresh.work / "demo-output", timeout=60)
    assert proc.returncode == 0, _show(proc)
    assert (fresh.work / "demo-output" / "audit.jsonl").is_file()


@pytest.mark.parametrize("command", ["bench", "reliability"])
def test_the_installed_cli_says_where_checkout_only_commands_run(fresh: Fresh,
                                                                 command: str) -> None:
    proc = fresh.run(fresh.bin / "brokergate", command)
    assert proc.returncode == 2, _show(proc)
    assert "from a checkout" in proc.stderr and f"python3 tasks.py {command}" in proc.stderr


def test_python_dash_m_brokergate_runs_from_the_install(fresh: Fresh) -> None:
    proc = fresh.run(fresh.python, "-m", "brokergate", "--help")
    assert proc.returncode == 0, _show(proc)
    assert proc.stdout.startswith("usage: brokergate ")


USER_SCRIPT = '''\
"""A user's script, which mypy --strict must accept against the installed wheel."""

from __future__ import annotations

import trio

import brokergate
from brokergate import (AuditLog, CqgConfig, LoginFailed, QstConfig, Secret, Session,
                        open_session)
from brokergate.cqg import pb as cqg_pb
from brokergate.qst import pb


def configs() -> tuple[QstConfig, CqgConfig]:
    qst = QstConfig(url="wss://qst.example.com/", user_name="alice",
                    password=Secret("alice-pw"), client_id="release-test")
    cqg = CqgConfig(url="wss://demoapi.cqg.com:443", user_name="alice",
                    password=Secret("alice-pw"), client_app_id="WebApiTest")
    return qst, cqg


async def symbols(session: Session, names: list[str]) -> dict[str, int]:
    answer = await session.request(pb.TranslateInstrumentSymbolRequest(
        symbol_source=1, instrument_symbols=names))
    found: dict[str, int] = {}
    for record in answer.records:
        found[str(record.symbol)] = int(record.instrument_id)
    return found


async def main() -> int:
    qst, _ = configs()
    audit: AuditLog = AuditLog.disabled()
    async with open_session(qst, audit=audit) as session:
        try:
            await session.wait_authenticated()
        except LoginFailed as exc:
            print("login failed:", exc)
            return 1
        print(await symbols(session, ["ESZ6"]), session.outcome()["granted"])
    logon: cqg_pb.Logon = cqg_pb.Logon(user_name="alice")
    print(brokergate.__version__, session.state, logon.user_name)
    return 0


if __name__ == "__main__":
    raise SystemExit(trio.run(main))
'''

#: Mistakes mypy must report, each on its line of WRONG_SCRIPT.
WRONG_SCRIPT = '''\
from brokergate import QstConfig, Secret
from brokergate.qst import pb

config = QstConfig(url=1, user_name="alice", password=Secret("pw"), client_id="x")
request = pb.TranslateInstrumentSymbolRequest(symbol_source="one")
unknown = QstConfig(url="wss://qst.example.com/", user="alice")
'''


def _mypy(fresh: Fresh, script: Path) -> subprocess.CompletedProcess[str]:
    config = fresh.work / "mypy.ini"
    config.write_text("[mypy]\n")  # no project's or user's configuration
    return _run([sys.executable, "-m", "mypy", "--strict", "--config-file", config,
                 "--python-executable", fresh.python, "--cache-dir", fresh.work / ".mypy_cache",
                 "--show-error-codes", "--no-color-output", script],
                cwd=fresh.work, env=fresh.env, timeout=120)


def test_mypy_strict_checks_a_users_script_against_the_installed_wheel(fresh: Fresh) -> None:
    good = fresh.work / "user_script.py"
    good.write_text(USER_SCRIPT)
    proc = _mypy(fresh, good)
    assert proc.returncode == 0, _show(proc)
    wrong = fresh.work / "wrong_script.py"
    wrong.write_text(WRONG_SCRIPT)
    proc = _mypy(fresh, wrong)
    assert proc.returncode == 1, _show(proc)
    errors = [line for line in proc.stdout.splitlines() if ": error: " in line]
    assert {int(line.split(":")[1]) for line in errors} == {4, 5, 6}, _show(proc)
    assert '"url" to "QstConfig" has incompatible type "int"' in proc.stdout
    assert all(line.startswith("wrong_script.py:") for line in errors), _show(proc)
