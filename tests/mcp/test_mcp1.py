"""The same code on mcp 1.x (``FastMCP``): a cached venv with mcp 1.30.0 runs the scenario.

The venv holds mcp 1.30.0 and this project's dependencies (read from pyproject.toml); the
project itself comes from this checkout via ``PYTHONPATH``, so the venv never goes stale.
It lives in pytest's cache directory and is rebuilt when the requirements change.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

MCP1 = "mcp==1.30.0"
ROOT = Path(__file__).resolve().parents[2]
TEST_TOOLS = ("pytest", "pytest-asyncio", "httpx-sse")


def requirements() -> list[str]:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["postgres"], *extras["mcp"]]
    wanted += [r for r in extras["dev"] if r.split(">")[0].split("=")[0] in TEST_TOOLS]
    return [MCP1 if r.startswith("mcp>") or r.startswith("mcp=") else r for r in wanted]


@pytest.fixture(scope="session")
def mcp1_python(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    # Without pytest's cache (``-p no:cacheprovider``) the venv is built for this run only.
    cache = getattr(request.config, "cache", None)
    home = Path(cache.mkdir("mcp1-venv")) if cache else tmp_path_factory.mktemp("mcp1-venv")
    wanted = "\n".join([sys.version, *requirements()])
    with open(home / "lock", "w") as lock:
        # Engineers run the suite concurrently; one builds, the others wait.
        fcntl.flock(lock, fcntl.LOCK_EX)
        env_dir = home / "venv"
        python = env_dir / "bin" / "python"
        ready = home / "ready"
        if not (ready.exists() and ready.read_text() == wanted and python.exists()):
            ready.unlink(missing_ok=True)
            shutil.rmtree(env_dir, ignore_errors=True)
            venv.EnvBuilder(with_pip=True).create(env_dir)
            install = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", *requirements()],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert install.returncode == 0, f"pip install failed:\n{install.stderr[-3000:]}"
            ready.write_text(wanted)
    yield python


def run(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("EVENTSTORE_TEST_POSTGRES_URL", None)
    return subprocess.run(
        [str(python), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_venv_really_has_mcp_1(mcp1_python: Path) -> None:
    result = run(mcp1_python, "-c", "import importlib.metadata as m; print(m.version('mcp'))")
    assert result.stdout.strip() == MCP1.split("==")[1], result.stderr


def test_demo_passes_on_mcp_1(mcp1_python: Path, sqlite_url: str) -> None:
    entry = "import sys; from eventstore.cli import main; sys.exit(main())"
    result = run(mcp1_python, "-c", entry, "demo", "--url", sqlite_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"(mcp {MCP1.split('==')[1]})" in result.stdout
    assert "all 13 checks passed" in result.stdout


def test_end_to_end_suite_passes_on_mcp_1(mcp1_python: Path) -> None:
    result = run(
        mcp1_python,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "sqlite or memory or test_reattach",
        "tests/mcp/test_reattach.py",
        "tests/mcp/test_end_to_end.py",
        "tests/mcp/test_live_resume.py",
        "tests/mcp/test_adapter.py",
        "tests/mcp/test_binding.py",
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
