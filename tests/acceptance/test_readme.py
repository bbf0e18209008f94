"""The README's Python examples run as printed (each one twice: they are safe to re-run)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
# The complete programs; fragments (an MCP app for uvicorn) are checked elsewhere.
PROGRAMS = [block for block in _BLOCK.findall(README.read_text()) if "asyncio.run(" in block]


def test_the_readme_has_runnable_examples() -> None:
    assert len(PROGRAMS) >= 2


@pytest.mark.parametrize("program", PROGRAMS, ids=[f"example-{n}" for n in range(len(PROGRAMS))])
def test_a_readme_example_runs_as_printed(program: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(program)
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "events.sqlite3").exists()
