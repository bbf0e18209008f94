"""examples/: the PostgreSQL server and client, run as examples/README.md says."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from eventstore.mcp.demo.loopback import serve_on_loopback

ROOT = Path(__file__).resolve().parents[2]


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def migrated_url(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh PostgreSQL database after `alembic upgrade head` with the README's env var."""
    monkeypatch.setenv("EVENTSTORE_DATABASE_URL", postgres_url)
    migrate = subprocess.run(
        [str(Path(sys.executable).with_name("alembic")), "upgrade", "head"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    return postgres_url


async def test_example_server_and_client_on_postgresql_after_alembic(
    migrated_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = load(ROOT / "examples" / "postgres_server.py")
    client = load(ROOT / "examples" / "client.py")
    async with serve_on_loopback(server.app) as base_url:
        await client.main(f"{base_url}/mcp", 2)

    out = capsys.readouterr().out
    assert out.splitlines() == ["progress 1/2: 2...", "progress 2/2: 1...", "result: liftoff"]
