"""MIGRATION.md: every command of the sections this suite owns runs exactly as written.

The fenced ``sh`` and ``python`` blocks of each section are extracted and run in order in a
fresh directory holding the files and databases the page talks about, with the page's
environment variables set; then the target is checked against what the section promises.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventstore import StoreEvent, open_store
from tests.conftest import PostgresServer
from tests.legacy.helpers import DumpLines, Row, cli_env, create_legacy_table, stored

MIGRATION = Path(__file__).resolve().parents[2] / "MIGRATION.md"
OWN_SECTIONS = (
    "Choose the default stream id",
    "From a legacy in-memory store (JSON-lines dump)",
    "Copying a legacy SQL table into another store",
    "Moving a store to another backend",
    "From code that calls the old API",
)

# A clean legacy dump: three sessions, lines out of timestamp order.
DUMP = [
    ("s-a", "a2", {"n": 2}, 20),
    ("s-b", "b1", "nul \x00", 5),
    ("s-a", "a1", {"n": 1}, 10),
    ("s-c", "c1", [1], 1),
    ("s-a", "a3", {"n": 3}, 30),
]
DUMP_IMPORTED = [
    ("s-a", 1, "a1", {"n": 1}, 10),
    ("s-a", 2, "a2", {"n": 2}, 20),
    ("s-a", 3, "a3", {"n": 3}, 30),
    ("s-b", 1, "b1", "nul \x00", 5),
    ("s-c", 1, "c1", [1], 1),
]
LEGACY_ROWS = [
    {"session_id": "old-1", "event_id": "x2", "data": '"second"', "timestamp": 2},
    {"session_id": "old-1", "event_id": "x1", "data": '"first"', "timestamp": 1},
]


def sections() -> dict[str, list[tuple[str, str]]]:
    """``{heading: [(language, code), ...]}`` of every ``##`` section of MIGRATION.md."""
    found: dict[str, list[tuple[str, str]]] = {}
    heading = ""
    for part in re.split(r"^## (.+)$", MIGRATION.read_text(encoding="utf-8"), flags=re.M)[1:]:
        if not heading:
            heading = part.strip()
            continue
        found[heading] = re.findall(r"^```(sh|python)\n(.*?)^```$", part, flags=re.M | re.S)
        heading = ""
    return found


@dataclass
class Place:
    """The directory and databases one section's commands run against."""

    workdir: Path
    target: str
    legacy: str
    old_store: str
    env: dict[str, str]


@pytest.fixture
def place(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Place:
    def new_database(name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path}/{name}.sqlite3"
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.new_database()

    dump = DumpLines(tmp_path / "legacy-dump.jsonl")
    for line in DUMP:
        dump.add(*line)
    dump.write()
    with gzip.open(tmp_path / "legacy-dump.jsonl.gz", "wb") as out:
        out.write(dump.path.read_bytes())
    legacy = new_database("legacy")
    create_legacy_table(legacy, LEGACY_ROWS)
    old_store = new_database("old-store")
    asyncio.run(_fill(old_store))
    target = new_database("target")
    env = cli_env(
        EVENTSTORE_DATABASE_URL=target,
        LEGACY_DATABASE_URL=legacy,
        OLD_STORE_URL=old_store,
        SESSION_ID="kept",
    )
    return Place(tmp_path, target, legacy, old_store, env)


async def _fill(url: str) -> None:
    async with open_store(url) as store:
        await store.apply(
            [
                StoreEvent(session, stream, f"{session}-{stream}-{i}", {"i": i}, 100 + i)
                for session in ("kept", "other")
                for stream in ("_default", "7")
                for i in range(3)
            ]
        )


def in_target(place: Place) -> list[Row]:
    return stored(place.target)


def check_default_stream(place: Place) -> None:
    assert in_target(place) == [(s, "stdio", *rest) for s, *rest in DUMP_IMPORTED]
    # The legacy table, upgraded in place, put its rows in the same stream.
    assert stored(place.legacy) == [
        ("old-1", "stdio", 1, "x1", "first", 1),
        ("old-1", "stdio", 2, "x2", "second", 2),
    ]


def check_dump(place: Place) -> None:
    assert in_target(place) == [(s, "_default", *rest) for s, *rest in DUMP_IMPORTED]
    assert not list(place.workdir.glob("*.rejects.jsonl"))


def check_legacy_table(place: Place) -> None:
    assert in_target(place) == [
        ("old-1", "_default", 1, "x1", "first", 1),
        ("old-1", "_default", 2, "x2", "second", 2),
    ]


def check_move(place: Place) -> None:
    assert in_target(place) == stored(place.old_store)
    lines = (place.workdir / "one-session.jsonl").read_text().splitlines()
    assert {json.loads(line)["session_id"] for line in lines} == {"kept"}
    assert len(lines) == 6


def check_old_api(place: Place) -> None:
    assert in_target(place) == []  # the example clears its session at the end


CHECKS: dict[str, Callable[[Place], None]] = dict(
    zip(
        OWN_SECTIONS,
        (check_default_stream, check_dump, check_legacy_table, check_move, check_old_api),
        strict=True,
    )
)


def test_the_page_has_the_sections_and_every_one_has_commands() -> None:
    found = sections()
    for heading in OWN_SECTIONS:
        assert found.get(heading), f"MIGRATION.md lacks commands under '## {heading}'"


# Every section on SQLite; the ones whose commands take database URLs on PostgreSQL too.
RUNS = [(heading, "sqlite") for heading in OWN_SECTIONS] + [
    (OWN_SECTIONS[2], "postgres"),
    (OWN_SECTIONS[3], "postgres"),
]


@pytest.mark.parametrize(("heading", "backend"), RUNS)
def test_the_commands_of_a_section_do_what_it_says(place: Place, heading: str) -> None:
    blocks = sections()[heading]
    for language, code in blocks:
        if language == "sh":
            command = ["bash", "-euo", "pipefail", "-c", code]
        else:
            command = [sys.executable, "-c", code]
        result = subprocess.run(
            command,
            cwd=place.workdir,
            env=place.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, (
            f"{code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    CHECKS[heading](place)
