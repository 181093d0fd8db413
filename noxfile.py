"""Every way this project is checked, built and shown. The single source of the CI matrix.

Default sessions (the README's test command): lint, types, tests, integration (latest flyte and
torch 2.13.0), dist, docs. Not default: matrix, lowest, newest, siblings, tables, bench, demo,
and the other integration pairs.

Speed: sessions get uv-backed virtualenvs (uv is installed beside nox; without it nox falls back
to virtualenv and pip), so an install is a copy out of uv's cache; the default sessions run two
at a time (``nox.options.parallel``; ``-j 1`` or ``NOX_PARALLEL=1`` runs them one by one), and
the integration tests can run in pytest-xdist workers (``NOX_XDIST_WORKERS``, default none).
Every integration run writes each test's duration and CPU time to ``.nox/reports/`` (JUnit XML).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nox

# --parallel and allow_parallel= came with this nox.
nox.needs_version = ">=2026.10.20"

ROOT = Path(__file__).resolve().parent
PACKAGES = {
    "core": ROOT / "packages" / "flyteplugins-wandb-core",
    "wandb": ROOT / "packages" / "flyteplugins-wandb",
    "sweeps": ROOT / "packages" / "flyteplugins-wandb-sweeps",
}
DISTRIBUTIONS = {
    "core": "flyteplugins-wandb-core",
    "wandb": "flyteplugins-wandb",
    "sweeps": "flyteplugins-wandb-sweeps",
}

# Versions. FLYTE_LOWEST is the oldest flyte 2.x with every API the plugin uses (docs/versions.md).
FLYTE_LATEST = "2.12.1"
FLYTE_LOWEST = "2.1.3"
# torch 2.13.0 is the CPU wheel on this machine's disk; CI adds more versions (from PyTorch's CPU
# index) through NOX_EXTRA_TORCH_VERSIONS, e.g. "2.6.0", so its matrix stays nox's session list.
TORCH_VERSIONS = ["2.13.0"] + [
    v.strip() for v in os.environ.get("NOX_EXTRA_TORCH_VERSIONS", "").split(",") if v.strip()
]
WANDB_LATEST = "0.31.0"
# The oldest wandb with the shared-mode settings and finish_timeout whose offline writers pass the
# integration tests (docs/versions.md). Must equal the plugin's `wandb>=` bound.
WANDB_LOWEST = "0.30.0"
# (flyte, torch) pairs the integration tests run against. The first one is the default.
INTEGRATION_PAIRS = [(FLYTE_LATEST, t) for t in TORCH_VERSIONS] + [
    (FLYTE_LOWEST, t) for t in TORCH_VERSIONS
]
DEFAULT_INTEGRATION = f"integration(flyte='{FLYTE_LATEST}', torch='{TORCH_VERSIONS[0]}')"

TEST_DEPS = ["pytest>=8", "hypothesis>=6.100", "pytest-timeout>=2.3"]
LINT_DEPS = ["ruff==0.17.5", "check-jsonschema==0.39.0", "import-linter==2.17"]
DOCS_DEPS = [
    "mkdocs==1.6.1",
    "mkdocs-material==9.8.1",
    "mkdocstrings==1.0.8",
    "mkdocstrings-python==2.0.11",
]

nox.options.default_venv_backend = "uv|virtualenv"
# The integration tests first: they take longest, and the others fill the cores while they wait.
nox.options.sessions = [DEFAULT_INTEGRATION, "lint", "types", "tests", "dist", "docs"]
nox.options.error_on_missing_interpreters = True
nox.options.parallel = 2
# Every session may run beside another: each has its own venv, output folders and temporary
# folders, and the tests' servers listen on free ports.
nox.options.allow_parallel = True
# pytest-xdist workers for the integration tests: none by default (on this 2-core machine two
# workers made torchrun jobs miss their deadlines: 14 min instead of 9; with the shared jobs of
# today, 2 workers took 7.7 min instead of 8.5 but 7.5 CPU-min instead of 5.6: each worker
# starts its own interpreter and session servers); NOX_XDIST_WORKERS=2 on a machine with cores
# to spare.
XDIST_WORKERS = os.environ.get("NOX_XDIST_WORKERS", "0")

# Bytecode caches: uv installs wheels without compiling them, and where PYTHONDONTWRITEBYTECODE
# is set (as on this machine) Python never writes the caches either, so every process of the
# tests compiled wandb, flyte, torch and the plugin from source again (`import wandb` 2.0 s
# instead of 0.9 s here; a 1x2 Elastic job of six cases 64 s instead of 37 s). The sessions'
# processes may write them: into .nox/ and the packages' __pycache__ folders (ignored by git).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# pip's settings on this machine (config files and PIP_* variables) given to uv, which reads
# neither: the local wheel folder that holds torch's CPU build (without it uv would fetch a
# multi-GB CUDA build), extra indexes (as pip uses them: the best version across all indexes)
# and constraints. Variables the user set for uv win.
_PIP_TO_UV = {
    "find-links": ("UV_FIND_LINKS", ","),
    "index-url": ("UV_DEFAULT_INDEX", " "),
    "extra-index-url": ("UV_EXTRA_INDEX_URL", " "),
    "constraint": ("UV_CONSTRAINT", " "),
}


def _pip_settings() -> dict[str, list[str]]:
    """The install options pip would use here, by option name (``find-links``: [...])."""
    try:
        listed = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    # pip's precedence: PIP_* variables, then the [install] section, then [global]
    rank = {":env:": 0, "install": 1, "global": 2}
    best: dict[str, tuple[int, list[str]]] = {}
    for line in listed.splitlines():
        key, sep, raw = line.partition("=")
        section, _, name = key.rpartition(".")
        if not sep or section not in rank or name not in _PIP_TO_UV:
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        values = str(value).split()
        if name not in best or rank[section] < best[name][0]:
            best[name] = (rank[section], values)
    return {name: values for name, (_, values) in best.items()}


def _uv_env_from_pip() -> dict[str, str]:
    env: dict[str, str] = {}
    for name, values in _pip_settings().items():
        variable, separator = _PIP_TO_UV[name]
        env[variable] = separator.join(values)
    if "UV_EXTRA_INDEX_URL" in env:
        env["UV_INDEX_STRATEGY"] = "unsafe-best-match"
    return env


for _variable, _value in _uv_env_from_pip().items():
    os.environ.setdefault(_variable, _value)


def _uv() -> str | None:
    """The uv binary nox uses (installed beside nox), or None when sessions fall back to pip."""
    from nox.virtualenv import find_uv

    found, path, _version = find_uv()
    return path if found else None


def _editable(*names: str) -> list[str]:
    args: list[str] = []
    for name in names:
        args += ["-e", str(PACKAGES[name])]
    return args


def install_stack(
    session: nox.Session,
    *,
    flyte: str = FLYTE_LATEST,
    torch: str | None = TORCH_VERSIONS[0],
    wandb: str = WANDB_LATEST,
    extra: list[str] | None = None,
) -> None:
    """Install flyte, wandb, torch (CPU wheel) and the three local packages in one pip call.

    torch is pinned in the same pip command as flyteplugins-pytorch, whose bare ``torch``
    requirement would otherwise resolve to a multi-GB CUDA build.
    """
    reqs = [f"flyte=={flyte}", f"wandb=={wandb}"]
    if torch is not None:
        reqs += [f"flyteplugins-pytorch=={flyte}", f"torch=={torch}"]
    reqs += ["sweeps==0.2.0", *TEST_DEPS, *(extra or [])]
    session.install(*reqs, *_editable("core", "wandb", "sweeps"))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check (with the banned private APIs), ruff format --check, the import contracts
    (import-linter: the plugin's layers, the distributions' one-way dependencies), the GitHub
    workflow schemas, the docs' generated tables."""
    session.install(*LINT_DEPS)
    session.install("--no-deps", *_editable("core", "wandb", "sweeps"))
    session.run("ruff", "check", ".")
    session.run("lint-imports")
    session.run("ruff", "format", "--check", ".")
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    if workflows:
        session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    session.run("python", str(TABLES), "--check")


TABLES = ROOT / "docs" / "hooks" / "plan_tables.py"


@nox.session(venv_backend="none", default=False)
def tables(session: nox.Session) -> None:
    """Write the generated tables and CLI outputs into the docs' Markdown (lint checks them)."""
    session.run(sys.executable, str(TABLES))


@nox.session
def types(session: nox.Session) -> None:
    """mypy: strict on core, checked on the plugin and sweeps."""
    install_stack(session, torch=None, extra=["mypy==2.4.1"])
    session.run(
        "mypy",
        "--strict",
        "-p",
        "flyteplugins.wandb_core",
        env={"MYPYPATH": str(PACKAGES["core"] / "src")},
    )
    session.run(
        "mypy",
        "-p",
        "flyteplugins.wandb",
        "-p",
        "flyteplugins.wandb_sweeps",
        env={
            "MYPYPATH": os.pathsep.join(
                str(PACKAGES[n] / "src") for n in ("core", "wandb", "sweeps")
            )
        },
    )


@nox.session
@nox.parametrize("package", list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """Each package's unit tests; core alone, with nothing but its test tools installed."""
    if package == "core":
        session.install(*TEST_DEPS, *_editable("core"))
        session.run("python", str(ROOT / "tools" / "assert_pure.py"))
    else:
        install_stack(session, torch=None)
    session.run("pytest", str(PACKAGES[package] / "tests"), *session.posargs)


INTEGRATION_EXTRA = ["pandas", "rich", "matplotlib", "pytest-xdist==3.8.0"]


# Where the integration runs write every test's duration (JUnit XML, one file per session):
# ``nox -s bench`` (area loop) reads them after the README's test command.
REPORTS = ROOT / ".nox" / "reports"


def run_integration(session: nox.Session, flyte: str, *args: str) -> None:
    """pytest over tests-integration, the 30 slowest tests listed at the end and every test's
    duration written to ``.nox/reports/<session>.xml`` (JUnit XML).

    With ``NOX_XDIST_WORKERS`` set, in that many xdist workers by group (``--dist loadgroup``,
    groups set in tests-integration/conftest.py): one per file, so a file's module-scoped
    fixtures start once, and one for every file that launches torchrun jobs, so two such jobs
    never compete for the CPUs. Each test has its own tmp_path; servers listen on free ports.
    """
    workers = ["-n", XDIST_WORKERS, "--dist", "loadgroup"] if XDIST_WORKERS != "0" else []
    REPORTS.mkdir(parents=True, exist_ok=True)
    junit = REPORTS / (re.sub(r"[^\w.]+", "-", session.name).strip("-") + ".xml")
    session.run(
        "pytest",
        str(ROOT / "tests-integration"),
        "-p",
        "no:cacheprovider",
        *workers,
        "--durations=30",
        f"--junitxml={junit}",
        *args,
        env={"WANDB_SILENT": "true", "FLYTE_TEST_VERSION": flyte},
    )


def _integration(session: nox.Session, flyte: str, torch: str) -> None:
    install_stack(session, flyte=flyte, torch=torch, extra=INTEGRATION_EXTRA)
    run_integration(session, flyte, *(session.posargs or ["-m", "not slow"]))


@nox.session
@nox.parametrize(("flyte", "torch"), INTEGRATION_PAIRS)
def integration(session: nox.Session, flyte: str, torch: str) -> None:
    """tests-integration: real Flyte local runs, real wandb, real torchrun, loopback servers."""
    _integration(session, flyte, torch)


@nox.session
def matrix(session: nox.Session) -> None:
    """The integration tests for every flyte x torch pair installable on this machine."""
    for flyte, torch in INTEGRATION_PAIRS:
        session.notify(f"integration(flyte='{flyte}', torch='{torch}')")


def _bound(pyproject: Path, dist: str, op: str) -> str:
    """The ``op`` (``>=`` or ``<=``) bound of ``dist`` in a pyproject's dependencies."""
    import re

    found = re.search(
        rf'"{re.escape(dist)}(?:[^",;]*,)?{re.escape(op)}([^",<>;]+)', pyproject.read_text()
    )
    if found is None:
        raise ValueError(f"{pyproject} has no {dist}{op} bound")
    return found.group(1).strip()


def _check_bounds(session: nox.Session, op: str, tested: dict[str, str]) -> None:
    """Fail when the plugin's ``op`` bounds are not the versions the noxfile tests."""
    plugin = PACKAGES["wandb"] / "pyproject.toml"
    for dist, pinned in tested.items():
        declared = _bound(plugin, dist, op)
        if declared != pinned:
            session.error(f"{plugin} says {dist}{op}{declared} but the noxfile tests {pinned}")


@nox.session
def lowest(session: nox.Session) -> None:
    """Unit and integration tests with the lowest allowed version of every direct dependency."""
    _check_bounds(session, ">=", {"flyte": FLYTE_LOWEST, "wandb": WANDB_LOWEST})
    install_stack(session, flyte=FLYTE_LOWEST, wandb=WANDB_LOWEST, extra=INTEGRATION_EXTRA)
    for name in ("wandb", "sweeps"):
        session.run("pytest", str(PACKAGES[name] / "tests"))
    run_integration(session, FLYTE_LOWEST, "-m", "not slow", *session.posargs)


@nox.session
def newest(session: nox.Session) -> None:
    """Unit and integration tests on the newest flyte and wandb the registry offers (CI: weekly).

    flyte and wandb are installed unpinned, flyteplugins-pytorch at flyte's version, then this
    tree's three packages without their dependencies, so the plugin's own upper bounds do not
    hold the newest releases back. The upper bounds are the newest versions these tests passed
    on (``FLYTE_LATEST`` / ``WANDB_LATEST``): a failure here is an upstream change to handle
    before users meet it; a pass on a release above the bounds fails too, naming the bounds to
    raise (pyproject, noxfile, docs/versions.md).
    """
    _check_bounds(session, "<=", {"flyte": FLYTE_LATEST, "wandb": WANDB_LATEST})
    session.install("--upgrade", "flyte", "wandb")
    shown = session.run(
        "python",
        "-c",
        "import json, importlib.metadata as m; "
        "print(json.dumps({d: m.version(d) for d in ('flyte', 'wandb')}))",
        silent=True,
    )
    newest = json.loads(str(shown).strip().splitlines()[-1])
    session.log(f"newest on the registry: flyte {newest['flyte']}, wandb {newest['wandb']}")
    session.install(
        f"flyte=={newest['flyte']}",
        f"wandb=={newest['wandb']}",
        f"flyteplugins-pytorch=={newest['flyte']}",
        f"torch=={TORCH_VERSIONS[0]}",
        "sweeps==0.2.0",
        *TEST_DEPS,
        *INTEGRATION_EXTRA,
    )
    session.install("--no-deps", *_editable("core", "wandb", "sweeps"))
    for name in PACKAGES:
        session.run("pytest", str(PACKAGES[name] / "tests"), "-p", "no:cacheprovider")
    run_integration(session, newest["flyte"], "-m", "not slow", *session.posargs)
    above = {
        dist: version
        for dist, version, bound in (
            ("flyte", newest["flyte"], FLYTE_LATEST),
            ("wandb", newest["wandb"], WANDB_LATEST),
        )
        if version != bound
    }
    if above:
        session.error(
            "the tests pass on "
            + ", ".join(f"{d} {v}" for d, v in above.items())
            + f", above the plugin's upper bounds (flyte<={FLYTE_LATEST}, wandb<={WANDB_LATEST}):"
            " raise them in packages/flyteplugins-wandb/pyproject.toml, FLYTE_LATEST /"
            " WANDB_LATEST in noxfile.py and docs/versions.md"
        )
    session.log(f"flyte {newest['flyte']} and wandb {newest['wandb']} pass: the bounds hold")


RELEASE_TAGS = {"core": "core-v", "wandb": "wandb-v", "sweeps": "sweeps-v"}
_MODULES = {"core": "wandb_core", "wandb": "wandb", "sweeps": "wandb_sweeps"}


def _tree_version(root: Path, name: str) -> str:
    """The version a distribution's ``__about__.py`` declares under ``root`` (a checkout)."""
    import re

    about = root / "src" / "flyteplugins" / _MODULES[name] / "__about__.py"
    found = re.search(r'__version__\s*=\s*"([^"]+)"', about.read_text())
    if found is None:
        raise ValueError(f"{about} declares no __version__")
    return found.group(1)


def _sibling_floors(pyproject: Path) -> dict[str, str]:
    """``{package: lowest version}`` of every sibling distribution a pyproject requires.

    Dependencies and extras alike (the plugin's ``[sweeps]`` extra names the sweeps
    distribution); the floor is the range's ``>=`` bound, padded to three parts.
    """
    import re

    text = pyproject.read_text()
    floors: dict[str, str] = {}
    for name, dist in DISTRIBUTIONS.items():
        found = re.search(rf'"{re.escape(dist)}(?:\[[^\]]*\])?>=([0-9.]+)', text)
        if found is not None:
            parts = found.group(1).split(".")
            floors[name] = ".".join([*parts, "0", "0"][:3])
    return floors


def _source(session: nox.Session, name: str, version: str, work: Path) -> Path:
    """The folder to build ``name`` at ``version`` from: this tree's, else its release tag's."""
    import subprocess

    if _tree_version(PACKAGES[name], name) == version:
        return PACKAGES[name]
    tag = f"{RELEASE_TAGS[name]}{version}"
    where = PACKAGES[name].relative_to(ROOT)
    found = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "-q", "--verify", f"refs/tags/{tag}"],
        capture_output=True,
        check=False,
    )
    if found.returncode != 0:
        session.error(
            f"the lowest {DISTRIBUTIONS[name]} a range allows is {version}: not this tree's "
            f"version, and there is no release tag {tag!r} to build it from"
        )
    export = work / f"{tag}.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", f"--output={export}", tag, str(where)], check=True
    )
    shutil.unpack_archive(str(export), str(work / tag), format="tar")
    return work / tag / where


def _lowest_stack(session: nox.Session, under_test: str, work: Path) -> dict[str, tuple[str, Path]]:
    """``{package: (version, source folder)}`` to install for testing ``under_test``.

    The package at this tree's version; every sibling it needs (directly or through another
    sibling) at the floor of the range that first names it.
    """
    version = _tree_version(PACKAGES[under_test], under_test)
    stack = {under_test: (version, PACKAGES[under_test])}
    todo = [under_test]
    while todo:
        current = todo.pop()
        for name, floor in _sibling_floors(stack[current][1] / "pyproject.toml").items():
            if name not in stack:
                stack[name] = (floor, _source(session, name, floor, work))
                todo.append(name)
    return stack


@nox.session
@nox.parametrize("package", ["wandb", "sweeps"])
def siblings(session: nox.Session, package: str) -> None:
    """A distribution's built wheel with the *lowest* sibling versions its ranges allow.

    The package under test is built from this tree; each sibling it requires (and each sibling of
    those) is installed at the floor of its declared range: a wheel built from this tree when the
    floor is the tree's version, else from the sibling's release tag. Our distributions come
    only from these wheels (``--no-index``), pip checks every declared range, and the package's
    unit tests run against what was installed, never against the source tree.
    """
    work = Path(tempfile.mkdtemp(prefix="fpw-siblings-"))
    wheels = work / "wheels"
    wheels.mkdir()
    stack = _lowest_stack(session, package, work)
    build_dists(session, wheels, *(source for _version, source in stack.values()), wheel_only=True)
    session.install(f"flyte=={FLYTE_LATEST}", f"wandb=={WANDB_LATEST}", "sweeps==0.2.0", *TEST_DEPS)
    # the plugin's [sweeps] extra is requested so that pip checks its range too
    extras = {"wandb": "[sweeps]"} if "sweeps" in stack else {}
    session.install(
        "--no-index",
        "--find-links",
        str(wheels),
        *(
            f"{DISTRIBUTIONS[name]}{extras.get(name, '')}=={version}"
            for name, (version, _) in stack.items()
        ),
    )
    pins = ", ".join(f"{DISTRIBUTIONS[name]} {version}" for name, (version, _) in stack.items())
    session.log(f"installed from wheels: {pins}")
    # the tests must import the installed wheels, not this tree's sources
    check = (
        "import sys, flyteplugins.wandb_core as c, flyteplugins.wandb as w, "
        "flyteplugins.wandb_sweeps as s; "
        "bad = [m.__file__ for m in (c, w, s) if sys.argv[1] in m.__file__]; "
        "sys.exit(f'imported from the tree: {bad}' if bad else 0)"
    )
    session.run("python", "-c", check, str(ROOT / "packages"))
    session.run(
        "pytest",
        str(PACKAGES[package] / "tests"),
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"WANDB_SILENT": "true"},
    )


def build_dists(
    session: nox.Session, outdir: Path, *sources: Path, wheel_only: bool = False
) -> None:
    """Build each source's sdist and wheel (or its wheel only) into ``outdir``.

    ``uv build`` where nox has uv (isolated build environments out of uv's cache), else
    ``python -m build``; both build the wheel from the sdist unless ``wheel_only``.
    """
    uv = _uv()
    if uv is None:
        session.install("build==1.3.0")
    kind = ["--wheel"] if wheel_only else []
    for source in sources:
        if uv is None:
            session.run("python", "-m", "build", *kind, "--outdir", str(outdir), str(source))
        else:
            session.run(
                uv, "build", "-q", *kind, "--out-dir", str(outdir), str(source), external=True
            )


def _fresh_venv(where: Path) -> Path:
    """A clean virtualenv outside the repository (uv's when nox has uv, else venv with pip)."""
    uv = _uv()
    if uv is None:
        import venv

        venv.EnvBuilder(with_pip=True, clear=True).create(where)
    else:
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(where)], check=True)
    return where / ("Scripts" if sys.platform == "win32" else "bin")


def _pip_install(bindir: Path) -> list[str]:
    """The command that installs into the virtualenv of ``bindir``."""
    uv = _uv()
    if uv is None:
        return [str(bindir / "pip"), "install", "-q"]
    return [uv, "pip", "install", "-q", "--python", str(bindir / "python")]


@nox.session
def dist(session: nox.Session) -> None:
    """Build wheels and sdists; install them in clean venvs outside the repo and smoke-test.

    Three installs: core alone (no flyte, wandb or torch may appear), the plugin without sweeps,
    and the full install. Our packages come only from the built wheels (--no-index).
    """
    out = Path(tempfile.mkdtemp(prefix="fpw-dist-"))
    wheels = out / "wheels"
    build_dists(session, wheels, *PACKAGES.values())
    session.log(f"built {', '.join(DISTRIBUTIONS.values())}")
    smoke = ROOT / "tools" / "smoke.py"
    try:
        # 1. core alone
        b = _fresh_venv(out / "core-only")
        session.run(
            *_pip_install(b),
            "--no-index",
            "--find-links",
            str(wheels),
            DISTRIBUTIONS["core"],
            external=True,
        )
        session.run(str(b / "python"), str(smoke), "core", external=True)
        session.run(
            str(b / "flyteplugins-wandb-plan"),
            "plan",
            "--nnodes",
            "2",
            "--nproc-per-node",
            "2",
            "--run-mode",
            "new",
            "--rank-scope",
            "worker",
            external=True,
        )
        # 2. plugin without sweeps; 3. full install
        for flavour, targets in (
            ("plugin", [DISTRIBUTIONS["wandb"]]),
            ("full", [f"{DISTRIBUTIONS['wandb']}[sweeps]", f"{DISTRIBUTIONS['sweeps']}[local]"]),
        ):
            b = _fresh_venv(out / flavour)
            third_party = [f"flyte=={FLYTE_LATEST}", f"wandb=={WANDB_LATEST}"]
            if flavour == "full":
                third_party.append("sweeps==0.2.0")
            session.run(*_pip_install(b), *third_party, external=True)
            session.run(
                *_pip_install(b),
                "--no-index",
                "--find-links",
                str(wheels),
                *targets,
                external=True,
            )
            session.run(str(b / "python"), str(smoke), flavour, external=True)
            session.run(
                str(b / "python"),
                "-m",
                "flyteplugins.wandb_core",
                "plan",
                "--nnodes",
                "1",
                "--nproc-per-node",
                "2",
                external=True,
            )
    finally:
        if not os.environ.get("KEEP_DIST"):
            shutil.rmtree(out / "core-only", ignore_errors=True)
            shutil.rmtree(out / "plugin", ignore_errors=True)
            shutil.rmtree(out / "full", ignore_errors=True)
    (ROOT / "dist").mkdir(exist_ok=True)
    for f in wheels.iterdir():
        shutil.copy2(f, ROOT / "dist" / f.name)
    session.log(json.dumps(sorted(p.name for p in (ROOT / "dist").iterdir())))


DOCS_TESTS = ROOT / "tests-docs"


@nox.session
def docs(session: nox.Session) -> None:
    """Build the mkdocs site in strict mode (tables generated from core's plan); then check that
    every page reads as plain Markdown and that every complete example runs (tests-docs/)."""
    # ruff formats the separated signatures of the API reference
    install_stack(session, torch=None, extra=[*DOCS_DEPS, LINT_DEPS[0]])
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        str(ROOT / "site"),
        env={"NO_MKDOCS_2_WARNING": "1"},
    )
    session.run("pytest", str(DOCS_TESTS), "-p", "no:cacheprovider", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark beside its baseline: prints a table, writes docs/benchmarks.md."""
    install_stack(session, extra=["rich", "matplotlib"])
    session.run("python", str(ROOT / "bench" / "run.py"), *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job in W&B offline mode: no account, no server."""
    install_stack(session, extra=["rich", "matplotlib"])
    session.run("python", str(ROOT / "demo" / "pipeline.py"), *session.posargs)
