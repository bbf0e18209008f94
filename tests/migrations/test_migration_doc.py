"""MIGRATION.md, "From a legacy SQL table": its commands run as written and do what it says.

The section's fenced ``sh`` blocks run in order in a fresh directory, with
``$LEGACY_DATABASE_URL`` naming a legacy database that never had Alembic; the first block
upgrades it, the last rolls it back to the legacy table.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from eventstore import migrate
from eventstore.migrate import SchemaState
from tests.migrations.helpers import (
    ROOT,
    assert_numbered_in_order,
    create_unversioned_legacy,
    query,
)

SECTION = "From a legacy SQL table"
ROWS = [("s1", "a", '"a"', 20), ("s1", "b", '"b"', 10), ("s1", "a", '"again"', 30)]


def _blocks() -> list[str]:
    page = (ROOT / "MIGRATION.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(SECTION)}\n(.*?)(?=^## |\Z)", page, flags=re.M | re.S)
    assert match, f"MIGRATION.md lacks '## {SECTION}'"
    return re.findall(r"^```sh\n(.*?)^```$", match.group(1), flags=re.M | re.S)


def _run(block: str, workdir: Path, url: str) -> None:
    env = {
        **os.environ,
        "LEGACY_DATABASE_URL": url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("EVENTSTORE_DATABASE_URL", None)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{block}\n--- stdout\n{result.stdout}\n--- {result.stderr}"


def test_upgrade_then_roll_back_as_the_page_says(sql_url: str, tmp_path: Path) -> None:
    blocks = _blocks()
    assert len(blocks) == 2, "the section has an upgrade block and a rollback block"
    upgrade, rollback = blocks
    asyncio.run(create_unversioned_legacy(sql_url, ROWS))

    _run(upgrade, tmp_path, sql_url)
    assert asyncio.run(migrate.status(sql_url)).state is SchemaState.CURRENT
    asyncio.run(assert_numbered_in_order(sql_url))
    assert (tmp_path / "upgrade.sql").read_text().startswith("BEGIN;")
    upgraded = asyncio.run(query(sql_url, "SELECT event_id, seq FROM events ORDER BY seq"))
    assert upgraded == [("b", 1), ("a", 2), (upgraded[2][0], 3)]
    assert upgraded[2][0].startswith("a#dup-")

    _run(rollback, tmp_path, sql_url)
    assert asyncio.run(migrate.status(sql_url)).revision == "0001"
    kept = asyncio.run(query(sql_url, "SELECT session_id, data, timestamp FROM events"))
    assert sorted(kept) == sorted((s, d, t) for s, _, d, t in ROWS)
