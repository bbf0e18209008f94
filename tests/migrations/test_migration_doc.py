"""MIGRATION.md, "From a legacy SQL table": its commands run as written and do what it says.

Each part of the section (the command itself, the script for a DBA, Alembic, rolling
back) runs its fenced ``sh`` blocks in order in a fresh directory, with
``$LEGACY_DATABASE_URL`` (and ``$LEGACY_SQLITE_FILE``) naming a legacy database that never
had Alembic; a block that runs ``psql`` runs on PostgreSQL only, one that runs ``sqlite3``
on SQLite only. A last test checks that every section of the page with commands is run
by some test.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eventstore import migrate
from eventstore.migrate import SchemaState
from eventstore.sql.engine import normalize_url
from tests.legacy.test_migration_doc import OWN_SECTIONS
from tests.migrations.helpers import (
    ROOT,
    assert_numbered_in_order,
    create_unversioned_legacy,
    database_url,
    events_rows,
    query,
)
from tests.pgcluster import find_bindir

PAGE = ROOT / "MIGRATION.md"
SECTION = "From a legacy SQL table"
#: Sections whose commands other tests run.
ELSEWHERE = {
    "Sharing the database with your application's Alembic history": "test_coexistence.py",
}
ROWS = [("s1", "a", '"a"', 20), ("s1", "b", '"b"', 10), ("s1", "a", '"again"', 30)]


def _section(page: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", page, flags=re.M | re.S)
    assert match, f"MIGRATION.md lacks '## {heading}'"
    return match.group(1)


def _parts() -> dict[str, list[str]]:
    """The section's ``sh`` blocks by part: its opening text (``""``), then each ``###``."""
    section = _section(PAGE.read_text(encoding="utf-8"), SECTION)
    parts: dict[str, list[str]] = {}
    chunks = re.split(r"^### (.+)$", section, flags=re.M)
    names = ["", *chunks[1::2]]
    for name, body in zip(names, chunks[0::2], strict=True):
        parts[name.strip()] = re.findall(r"^```sh\n(.*?)^```$", body, flags=re.M | re.S)
    return parts


def _env(url: str) -> dict[str, str]:
    bindir = find_bindir()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{bindir}{os.pathsep}"
        f"{os.environ.get('PATH', '')}",
    }
    env.pop("EVENTSTORE_DATABASE_URL", None)
    if url.startswith("postgresql"):
        env["LEGACY_DATABASE_URL"] = database_url(url)  # postgresql://, as psql reads it
    else:
        database = normalize_url(url).database
        assert database is not None
        env["LEGACY_DATABASE_URL"] = f"sqlite:///{database}"
        env["LEGACY_SQLITE_FILE"] = database
    return env


def _run(blocks: list[str], workdir: Path, url: str) -> None:
    postgresql = url.startswith("postgresql")
    for block in blocks:
        if re.search(r"^psql ", block, flags=re.M) and not postgresql:
            continue
        if re.search(r"^sqlite3 ", block, flags=re.M) and postgresql:
            continue
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=workdir,
            env=_env(url),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"{block}\n--- stdout\n{result.stdout}\n--- {result.stderr}"


def _check_upgraded(url: str) -> None:
    assert asyncio.run(migrate.status(url)).state is SchemaState.CURRENT
    asyncio.run(assert_numbered_in_order(url))
    upgraded = asyncio.run(query(url, "SELECT event_id, seq FROM events ORDER BY seq"))
    assert upgraded == [("b", 1), ("a", 2), (upgraded[2][0], 3)]
    assert upgraded[2][0].startswith("a#dup-")


def test_the_section_has_its_parts() -> None:
    parts = _parts()
    assert list(parts) == [
        "",
        "As a script for a DBA",
        "With Alembic",
        "What happens to the rows",
        "Rolling back",
    ]
    assert len(parts[""]) == 1
    assert len(parts["As a script for a DBA"]) == 3
    assert len(parts["With Alembic"]) == 1
    assert parts["What happens to the rows"] == []
    assert len(parts["Rolling back"]) == 1


@pytest.mark.parametrize("part", ["", "As a script for a DBA", "With Alembic"])
def test_each_way_upgrades_as_the_page_says(sql_url: str, tmp_path: Path, part: str) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, ROWS))
    _run(_parts()[part], tmp_path, sql_url)
    _check_upgraded(sql_url)
    if part == "As a script for a DBA":
        script = (tmp_path / "upgrade.sql").read_text()
        if sql_url.startswith("postgresql"):
            assert script.splitlines()[0] == "\\set ON_ERROR_STOP on"
    if part == "With Alembic":
        assert (tmp_path / "eventstore-alembic.ini").is_file()


def test_rolling_back_as_the_page_says(sql_url: str, tmp_path: Path) -> None:
    asyncio.run(create_unversioned_legacy(sql_url, ROWS))
    _run(_parts()[""], tmp_path, sql_url)
    upgraded = asyncio.run(events_rows(sql_url))

    _run(_parts()["Rolling back"], tmp_path, sql_url)
    assert asyncio.run(migrate.status(sql_url)).revision == "0001"
    kept = asyncio.run(
        query(sql_url, "SELECT id, session_id, event_id, data, timestamp FROM events")
    )
    assert sorted(kept) == sorted((r[0], r[1], r[4], r[5], r[6]) for r in upgraded)
    assert sorted((s, d, t) for _, s, _, d, t in kept) == sorted((s, d, t) for s, _, d, t in ROWS)


def test_every_section_with_commands_is_run_by_a_test() -> None:
    page = PAGE.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", page, flags=re.M)
    with_code = [h for h in headings if re.search(r"^```(sh|python)$", _section(page, h), re.M)]
    covered = {*OWN_SECTIONS, SECTION, *ELSEWHERE}
    assert [h for h in with_code if h not in covered] == []
    # No command hides in the running text of the section either: the text names a
    # command or an option, and every command line is in a block the tests run.
    text = re.sub(r"^```.*?^```$", "", _section(page, SECTION), flags=re.M | re.S)
    inline = re.findall(r"`((?:eventstore|alembic|psql|sqlite3) [^`]*)`", text)
    lines = [c for c in inline if not re.fullmatch(r"(eventstore|alembic) [\w-]+( --[\w-]+)?", c)]
    assert lines == []
