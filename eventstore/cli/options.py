"""What several subcommands share: options, argument checks, running, and reporting.

Every command reports a failure as one ``Error: ...`` line and a non-zero exit status
(1, or 2 for bad usage), never a traceback; Ctrl-C ends it with status 130
(:data:`EXIT_INTERRUPTED`), SIGTERM with 143 (:data:`EXIT_TERMINATED`), after the same
cleanup and with a line saying how to go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from sqlalchemy.engine import URL, make_url

from eventstore.codec import check_id
from eventstore.config import URL_ENV
from eventstore.errors import InvalidInputError
from eventstore.migrate import SchemaState, SchemaStatus, parse_duration_ms, status
from eventstore.sql.engine import display_url, normalize_url

T = TypeVar("T")

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 128 + signal.SIGINT
#: Exit status of a command stopped by SIGTERM (128 + SIGTERM).
EXIT_TERMINATED = 128 + signal.SIGTERM


def not_empty(
    ctx: click.Context | None, param: click.Parameter | None, value: str | None
) -> str | None:
    """Click callback: refuse an empty (or blank) URL or path instead of ignoring it.

    An empty ``--url`` is what ``--url "$LEGACY_DATABASE_URL"`` gives when the variable is
    unset; taken as "no --url", it would send the command to the embedded default store
    -- importing into it, migrating or pruning it -- without a word.
    """
    if value is None and param is not None and param.name == "url":
        from_env = os.environ.get(URL_ENV)
        if from_env is not None and not from_env.strip():
            # Click takes an empty variable for an unset one: the same trap as above.
            raise click.BadParameter(
                f"${URL_ENV} is set but empty; unset it for the embedded default store, "
                "or give it a URL",
                ctx=ctx,
                param=param,
            )
    if value is not None and not value.strip():
        name = "the URL" if param is not None and param.name == "url" else "it"
        raise click.BadParameter(
            f'{name} is empty: if it came from a variable (like "$LEGACY_DATABASE_URL"), '
            "that variable is unset or empty",
            ctx=ctx,
            param=param,
        )
    return value


url_option = click.option(
    "--url",
    envvar=URL_ENV,
    default=None,
    callback=not_empty,
    show_envvar=True,
    help="Database URL (sqlite+aiosqlite:///file, postgresql+asyncpg://...). "
    "Default: the embedded SQLite file.",
)


def duration(
    ctx: click.Context | None, param: click.Parameter | None, value: str | None
) -> int | None:
    """Click callback: ``90s``, ``15m``, ``1h``, ``1h30m``, ``2d``, ``500ms`` or ``0``, in ms."""
    if value is None:
        return None
    try:
        return parse_duration_ms(value)
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def an_id(
    ctx: click.Context | None, param: click.Parameter | None, value: str | None
) -> str | None:
    """Click callback: a usable stream id (not empty, not only whitespace, ...)."""
    if value is None:
        return None
    try:
        return check_id(param.name if param and param.name else "id", value)
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def is_memory(url: str) -> bool:
    return url.strip().lower().startswith("memory:")


def safe_url(url: str | URL) -> str:
    """``url`` for display: its password hidden."""
    if isinstance(url, str) and is_memory(url):
        return url
    try:
        return display_url(make_url(url))
    except Exception:
        return "the given URL"


def parse_url(url: str) -> URL:
    """A supported database URL, or an ``Error:`` line (exit 2)."""
    try:
        return normalize_url(url)
    except InvalidInputError as exc:
        raise click.UsageError(str(exc)) from None


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL (None for another backend)."""
    if url.get_backend_name() != "sqlite":
        return None
    return Path(url.database or "").expanduser()


def require_database(url: str) -> URL:
    """For a command that must not create anything: the URL, or an ``Error:`` line when it
    names a SQLite file that does not exist."""
    parsed = parse_url(url)
    path = sqlite_path(parsed)
    if path is not None and not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        fail(f"no eventstore database at {path}: the file {what} (nothing was created)")
    return parsed


async def require_store(url: str) -> SchemaStatus:
    """For a command that must not create anything: the schema's status, or an ``Error:``
    line unless the database at ``url`` holds an up-to-date event store. Only reads."""
    found = await status(url)
    if found.state is SchemaState.EMPTY:
        fail(
            f"no eventstore database at {safe_url(url)}: it has no event store tables "
            "(nothing was created; `eventstore migrate` creates them)"
        )
    if found.state is not SchemaState.CURRENT:
        fail(f"no usable eventstore database at {safe_url(url)}: {found.problem()}")
    return found


def fail(message: str) -> NoReturn:
    raise click.ClickException(message)


#: The signals that stop a command cleanly: Ctrl-C, and what ``kill``, systemd or a
#: container runtime send.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """The command was stopped by Ctrl-C (SIGINT) or SIGTERM (``signum``)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Interrupted` where the program is (as Ctrl-C
    raises ``KeyboardInterrupt``) instead of ending the process on the spot, so cleanup
    that runs outside :func:`run` (an export's temporary file, created before and renamed
    after) still happens."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, where Ctrl-C or SIGTERM cancels ``main`` and raises
    :class:`Interrupted` -- whatever the cleanup after the cancellation raised on its
    way out."""
    stopped_by: int | None = None
    # Signals that come while the event loop is being built (before guarded() installs
    # its handlers): a KeyboardInterrupt there can land inside the loop's constructor,
    # which then fails in its __del__ at exit. Noted here, acted on once the loop runs.
    early: list[int] = []

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal(signum: int) -> None:
            nonlocal stopped_by
            if stopped_by is None:
                stopped_by = signum
            task.cancel()

        installed: list[tuple[int, Any]] = []
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            try:
                loop.add_signal_handler(signum, on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or no signals here: Python's default
            installed.append((signum, previous))
        if early:
            on_signal(early[0])
        try:
            return await main
        finally:
            for handled, previous in installed:
                loop.remove_signal_handler(handled)
                # asyncio leaves SIG_DFL behind, not what was there (sigterm_raises).
                if previous is not None:
                    signal.signal(handled, previous)

    outer = guarded()
    deferred: list[tuple[signal.Signals, Any]] = []
    for stop_signal in STOP_SIGNALS:
        try:
            handler = signal.signal(stop_signal, lambda number, _: early.append(number))
        except ValueError:
            continue  # not the main thread: Python's default
        deferred.append((stop_signal, handler))
    try:
        return asyncio.run(outer)
    except KeyboardInterrupt as exc:
        raise Interrupted(signal.SIGINT) from exc
    except Interrupted:
        raise
    except BaseException as exc:
        if stopped_by is not None:
            raise Interrupted(stopped_by) from exc
        raise
    finally:
        for deferred_signal, previous_handler in deferred:
            signal.signal(deferred_signal, previous_handler)
        # Never started (asyncio.run refused): no "never awaited" warnings.
        outer.close()
        main.close()


def interrupted(message: str, stop: Interrupted | None = None) -> NoReturn:
    """End the command after Ctrl-C or SIGTERM (``stop``): ``message`` on stderr, exit
    status 128 + the signal (130 for Ctrl-C, 143 for SIGTERM), as shells report it."""
    signum: int = signal.SIGINT if stop is None else stop.signum
    said = "interrupted" if signum == signal.SIGINT else "terminated"
    click.echo(f"{said}: {message}", err=True)
    sys.exit(128 + signum)
