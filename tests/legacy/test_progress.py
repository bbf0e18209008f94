"""Import progress: a rich bar on a terminal, periodic plain lines otherwise."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
from pathlib import Path

from tests.legacy.helpers import DumpLines, cli_command, cli_env, run_process


def dump_of(path: Path, count: int) -> Path:
    dump = DumpLines(path)
    for i in range(count):
        dump.add(f"s{i % 7}", f"e{i}", {"i": i}, i)
    return dump.write()


def test_without_a_terminal_progress_is_plain_periodic_lines(
    tmp_path: Path, sqlite_url: str
) -> None:
    dump = dump_of(tmp_path / "d.jsonl", 3000)

    result = run_process(
        "import", str(dump), "--url", sqlite_url, "--batch-size", "500", "--log-every", "0"
    )

    assert result.returncode == 0, result.stderr
    importing = [line for line in result.stderr.splitlines() if line.startswith("importing:")]
    # At --log-every 0, a line whenever events commit, then the phase's closing line.
    done = [int(re.sub(r"\D", "", line.split("/")[0])) for line in importing]
    assert len(done) >= 3
    assert done == sorted(done) and 0 < done[0] < 3000
    assert re.fullmatch(r"importing: 3,000/3,000 events, [\d,]+ events/s, [\d.]+s", importing[-1])
    assert re.search(r"^reading .*d\.jsonl: 3,000 records", result.stderr, re.MULTILINE)
    assert "\x1b[" not in result.stderr  # no terminal control codes in logs
    assert "imported: 3,000 new events" in result.stdout


def test_on_a_terminal_progress_is_a_rich_bar(tmp_path: Path, sqlite_url: str) -> None:
    dump = dump_of(tmp_path / "d.jsonl", 3000)
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
    try:
        process = subprocess.Popen(
            [*cli_command(), "import", str(dump), "--url", sqlite_url, "--batch-size", "500"],
            env=cli_env(TERM="xterm-256color"),
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the process closed its end
                break
            if not chunk:
                break
            shown += chunk
        stdout, _ = process.communicate(timeout=120)
    finally:
        os.close(controller)

    assert process.returncode == 0
    screen = shown.decode("utf-8", "replace")
    assert "━" in screen  # the bar
    assert "3000/3000" in screen  # counts
    assert re.search(r"[\d,]+ events/s", screen)  # rate
    assert "importing" in screen
    assert "imported: 3,000 new events" in stdout
