"""What ``pip install brokergate`` puts in a user's environment: one import package, its public
API at the top, nothing but the library loaded by ``import brokergate``, and one import style
inside it. (tests/test_release.py builds and installs the wheel itself.)"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

import brokergate
import brokergate.cqg
import brokergate.firstock
import brokergate.qst
from brokergate.machines.cqg import cqg_session_pb2
from brokergate.machines.qst import qst_pb2

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PACKAGE_DIR: dict[str, str] = SETUPTOOLS["package-dir"]


def _child(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter outside the checkout (so that the working directory
    lends it nothing), with the environment's installed brokergate."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=Path.home() if Path.home().is_dir()
                          else "/", env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def test_importing_brokergate_loads_the_library_only() -> None:
    proc = _child("import json, sys, brokergate; print(json.dumps(sorted(sys.modules)))")
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    ours = [name for name in loaded if name.split(".")[0] == "brokergate"]
    assert "brokergate.engine._session" in ours  # the check sees what it should
    unwanted = [
        name for name in loaded
        if name.startswith(("brokergate.simulators", "brokergate.engine.cli",
                            "brokergate.engine.demo", "brokergate.engine.diagrams"))
        or name.split(".")[0] in {"bench", "reliability", "tests", "helpers", "pytest",
                                  "_pytest", "hypothesis", "engine", "machines", "simulators"}
    ]
    assert unwanted == [], f"`import brokergate` also imported {unwanted}"


def test_the_brokers_cli_parts_are_the_command_lines_only() -> None:
    """``machines/<broker>/cli.py`` is imported by ``brokergate.engine.cli``, not the library."""
    proc = _child("import json, sys, brokergate, brokergate.machines.brokers; "
                  "print(json.dumps(sorted(sys.modules)))")
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    assert "brokergate.machines.qst.broker" in loaded  # the check sees what it should
    assert [name for name in loaded if name.endswith(".cli")] == []


def test_the_console_entry_and_python_dash_m_are_the_same_command_line() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts == {"brokergate": "brokergate.engine.cli:main"}
    proc = subprocess.run([sys.executable, "-m", "brokergate", "--help"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: brokergate ")
    version = subprocess.run([sys.executable, "-m", "brokergate", "--version"],
                             capture_output=True, text=True, timeout=60, check=False)
    assert version.stdout == f"brokergate {PYPROJECT['project']['version']}\n"


@pytest.mark.parametrize("command", ["bench", "reliability"])
def test_checkout_only_commands_say_where_they_run(command: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "brokergate", command, "--quick"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "is not part of the installed package" in proc.stderr
    assert f"python3 tasks.py {command}" in proc.stderr


@pytest.mark.parametrize("module", [brokergate, brokergate.qst, brokergate.cqg,
                                    brokergate.firstock], ids=lambda m: m.__name__)
def test_every_public_name_is_there_and_listed_once(module: ModuleType) -> None:
    names = module.__all__
    assert len(names) == len(set(names))
    missing = [name for name in names if not hasattr(module, name)]
    assert missing == []
    public = {name for name in vars(module) if not name.startswith("_")
              and not isinstance(getattr(module, name), ModuleType)}
    assert public - set(names) == set(), "public names left out of __all__"


def test_the_top_level_api_names_what_a_user_needs() -> None:
    wanted = {"open_session", "Session", "QstConfig", "CqgConfig", "FirstockConfig", "Secret",
              "AuditLog", "LoginFailed", "NotAuthenticated", "ConnectionLost", "RequestFailed",
              "BrokerMessage", "Notice", "Transitioned", "FileTokenStore", "Backoff"}
    assert wanted <= set(brokergate.__all__)
    assert brokergate.__version__ == PYPROJECT["project"]["version"]
    assert (ROOT / "brokergate" / "py.typed").is_file()


@pytest.mark.parametrize(("stable", "generated"), [(brokergate.qst.pb, qst_pb2),
                                                   (brokergate.cqg.pb, cqg_session_pb2)],
                         ids=["qst", "cqg"])
def test_the_stable_protobuf_names_carry_the_whole_schema(
    stable: ModuleType, generated: ModuleType
) -> None:
    """``brokergate.qst.pb`` and ``brokergate.cqg.pb`` hold every message, enum and enum value
    of the generated module, as the same objects."""
    file = generated.DESCRIPTOR
    names = [*file.message_types_by_name, *file.enum_types_by_name,
             *(value.name for enum in file.enum_types_by_name.values() for value in enum.values)]
    assert names
    missing = [name for name in names if getattr(stable, name, None) is not
               getattr(generated, name)]
    assert missing == []
    assert importlib.import_module(stable.__name__) is stable


def _package_folder(package: str) -> Path:
    """The folder pyproject's package-dir map builds ``package`` from."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        head = ".".join(parts[:cut])
        if head in PACKAGE_DIR:
            return ROOT / PACKAGE_DIR[head] / Path(*parts[cut:])
    raise AssertionError(f"{package} is not under any package-dir entry")


def test_the_package_list_is_every_folder_the_map_covers() -> None:
    """pyproject lists the packages by hand (setuptools' finder does not follow the map): the
    list is exactly every folder with an ``__init__.py`` under a mapped folder, and the folders
    of data only (the diagrams the status page draws on), which have none."""
    data_only = {name for name in SETUPTOOLS["package-data"] if name != "*"}
    for package in data_only:
        folder = ROOT / PACKAGE_DIR[package]
        assert not (folder / "__init__.py").exists(), package
        for pattern in SETUPTOOLS["package-data"][package]:
            assert list(folder.glob(pattern)), f"{package}: nothing matches {pattern}"
    listed = set(SETUPTOOLS["packages"]) - data_only
    assert all(name == "brokergate" or name.startswith("brokergate.") for name in listed)
    found: set[str] = set()
    for package, folder in PACKAGE_DIR.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base)
            if relative.parts and relative.parts[0] in {"engine", "machines", "simulators"} \
                    and package == "brokergate":
                continue  # the symlinks in brokergate/, which the map builds from their targets
            found.add(".".join([package, *relative.parts]))
    assert listed == found - data_only
    for package in listed:
        assert (_package_folder(package) / "__init__.py").is_file(), package


def test_the_checkout_symlinks_match_the_package_map() -> None:
    """brokergate/engine, /machines and /simulators let tools that read the checkout (mypy, an
    editor) see the installed layout; they point where pyproject's map builds from."""
    for package, folder in PACKAGE_DIR.items():
        if package == "brokergate":
            continue
        link = ROOT / "brokergate" / package.split(".", 1)[1]
        assert link.is_symlink(), f"{link} should be a symlink to ../{folder}"
        assert link.resolve() == (ROOT / folder).resolve()
    assert not {"bench", "reliability", "tests"} & {name.split(".")[1]
                                                    for name in PACKAGE_DIR if "." in name}


def _package_modules() -> list[Path]:
    files = sorted((ROOT / "brokergate").glob("*.py"))
    files += sorted((ROOT / "brokergate").glob("*/*.py"))  # broker namespaces
    for folder in ("engine", "machines", "simulators"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return [f for f in files if not f.name.endswith("_pb2.py")]


def test_every_import_inside_the_package_is_absolute_from_brokergate() -> None:
    """One style: ``from brokergate.x.y import z``; no relative imports, no old top-level names,
    nothing from the checkout-only folders, and internal modules take names from the module that
    defines them, not from the top-level API (which imports them)."""
    ours = {"engine", "machines", "simulators", "bench", "reliability", "tests", "helpers"}
    problems = []
    for path in _package_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    problems.append(f"{where}:{node.lineno}: relative import")
                    continue
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                if module.split(".")[0] in ours:
                    problems.append(f"{where}:{node.lineno}: imports {module}")
                if module == "brokergate" and where.parts[0] != "brokergate":
                    problems.append(f"{where}:{node.lineno}: imports the top-level API")
    assert problems == []
