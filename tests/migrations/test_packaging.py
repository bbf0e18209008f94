"""The wheel carries the migrations: an installed copy migrates from any directory."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from eventstore import migrate
from eventstore.migrate import SchemaState
from tests.migrations.helpers import ROOT


def _run(*command: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_an_installed_wheel_runs_alembic_upgrade_head_elsewhere(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", dist, cwd=ROOT)
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in (
        "eventstore/migrations/env.py",
        "eventstore/migrations/script.py.mako",
        "eventstore/migrations/versions/r0001_legacy_baseline.py",
        "eventstore/migrations/versions/r0005_stream_contract.py",
    ):
        assert shipped in names

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    # Dependencies from this environment, without its editable copy of the project: a
    # directory named in a .pth file is added to the path, its own .pth files are not run.
    site = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
    )
    Path(site.strip(), "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "app"
    elsewhere.mkdir()
    where = _run(python, "-c", "import eventstore; print(eventstore.__file__)", cwd=elsewhere)
    assert where.startswith(str(venv)), where

    (elsewhere / "alembic.ini").write_text("[alembic]\nscript_location = eventstore:migrations\n")
    first = f"sqlite+aiosqlite:///{tmp_path}/first.sqlite3"
    _run(python, "-m", "alembic", "-x", f"url={first}", "upgrade", "head", cwd=elsewhere)
    assert asyncio.run(migrate.status(first)).state is SchemaState.CURRENT

    second = f"sqlite+aiosqlite:///{tmp_path}/second.sqlite3"
    output = _run(venv / "bin" / "eventstore", "migrate", "--url", second, cwd=elsewhere)
    assert "applied 0005 " in output
    assert asyncio.run(migrate.status(second)).state is SchemaState.CURRENT
