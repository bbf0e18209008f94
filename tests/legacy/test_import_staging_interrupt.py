"""Ctrl-C while an import is still reading its dump ends it cleanly, every time.

The reading phase stages each chunk in a worker thread. A cancelled thread call used to
return at once, and the cleanup closed the staging database under the thread still
writing to it: a segfault in about a third of the runs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from tests.legacy.helpers import cli_command, cli_env

LINES = 300_000


def _dump(path: Path) -> Path:
    with path.open("w") as out:
        for i in range(LINES):
            record = {"session_id": f"s{i % 50}", "stream_id": f"st{i % 7}", "id": f"e{i}"}
            record.update(data={"i": i, "pad": "x" * 100}, timestamp=1000 + i)
            out.write(json.dumps(record) + "\n")
    return path


def test_ctrl_c_while_staging_exits_130_without_a_crash(tmp_path: Path) -> None:
    dump = _dump(tmp_path / "big.jsonl")
    outcomes = []
    # Reading this dump takes about 2 s: spread the signals over the reading phase, timed
    # from the "target:" line printed once the command is up (start-up alone can take
    # more than a second on a loaded machine; a signal during it is not this test's).
    for run, delay in enumerate([0.2 * k for k in range(8)]):
        target = f"sqlite+aiosqlite:///{tmp_path}/target{run}.sqlite3"
        process = subprocess.Popen(
            [*cli_command(), "import", str(dump), "--dry-run", "--url", target],
            env=cli_env(PYTHONUNBUFFERED="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        while (line := process.stdout.readline()) and not line.startswith("target:"):
            pass
        assert line, f"the import ended before it started: {process.communicate()}"
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        outcomes.append((delay, process.returncode, stderr.strip().splitlines()[-1:]))

    assert all(code in (0, 130) for _, code, _ in outcomes), outcomes
    interrupted = [last for _, code, last in outcomes if code == 130]
    assert interrupted, f"no run was interrupted: {outcomes}"
    assert all(
        last == ["interrupted: a dry run, so nothing was written"] for last in interrupted
    ), outcomes
