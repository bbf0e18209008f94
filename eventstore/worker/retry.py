"""Riding out database outages: reruns with backoff until a deadline."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_random_exponential,
)

from eventstore.errors import StoreUnavailableError

log = logging.getLogger("eventstore.worker")

#: Default backoff: the first wait's bound and the largest wait, in seconds.
DEFAULT_INITIAL_SECONDS = 0.05
DEFAULT_MAXIMUM_SECONDS = 2.0

P = ParamSpec("P")
R = TypeVar("R")


class OutageRetrier:
    """Reruns a store call that raised ``StoreUnavailableError``, with backoff and jitter.

    The deadline belongs to the *outage*, not to one call: it starts at the first
    failure and ends at the next success. So while the database is away, calls are
    retried until it has been unreachable for ``timeout`` seconds; after that, each call
    gets a single attempt and fails at once, until one succeeds. Callers waiting behind
    a long outage thus get their error after ``timeout``, not after ``timeout`` per
    batch queued ahead of them.

    Waits are drawn from full-jitter exponential backoff (random, up to ``initial``,
    doubling per attempt, at most ``maximum`` seconds), so many processes losing the
    same database do not come back in lockstep.
    """

    def __init__(
        self,
        *,
        timeout: float,
        initial: float,
        maximum: float,
        on_retry: Callable[[], None] = lambda: None,
    ) -> None:
        self.timeout = timeout
        self._wait = wait_random_exponential(multiplier=initial, max=maximum)
        self._on_retry = on_retry
        self._outage_since: float | None = None

    async def call(
        self, function: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """``await function(...)``, rerun on ``StoreUnavailableError`` within the deadline.

        Raises the last ``StoreUnavailableError`` once the outage is older than the
        deadline; any other exception propagates at once.
        """
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(StoreUnavailableError),
            after=self._note_failure,
            stop=self._deadline_passed,
            wait=self._wait,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        result: R = await retrying(function, *args, **kwargs)
        if self._outage_since is not None:
            log.info("database reachable again after %.1fs", time.monotonic() - self._outage_since)
            self._outage_since = None
        return result

    def _note_failure(self, state: RetryCallState) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()

    def _deadline_passed(self, state: RetryCallState) -> bool:
        assert self._outage_since is not None
        return time.monotonic() - self._outage_since >= self.timeout

    def _before_sleep(self, state: RetryCallState) -> None:
        self._on_retry()
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "database unavailable (%s); retry %d in %.2fs",
            error,
            state.attempt_number,
            state.upcoming_sleep,
        )
