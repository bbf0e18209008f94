"""What a :class:`~eventstore.worker.PersistenceWorker` has done, as numbers to read."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# Percentiles are taken over this many recent commits: enough for a stable p99, small
# enough that reading the stats stays cheap and memory stays constant.
_WINDOW = 1024


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """A snapshot of a worker's counters (see :attr:`PersistenceWorker.stats`).

    Counts of requests: ``submitted`` were accepted into the queue, ``committed``
    succeeded, ``failed`` ended with an error (their own, or the database's after the
    retry deadline); ``queued`` wait in the queue now and ``queue_high_water`` is the
    most that ever waited at once (never above ``max_queue``); ``committing`` were taken
    from the queue into the transaction under way (or its retries) and have no outcome
    yet. So ``submitted == committed + failed + committing + queued`` (less any
    ``Flush`` barriers, which are queued but not counted as submitted). ``retries`` counts
    transactions rerun after a transient database error. ``batches`` counts
    transactions that committed, ``largest_batch`` and ``mean_batch_size`` their request
    counts; ``commit_seconds_p50``/``_p99``/``_max`` describe how long those
    transactions took (percentiles over the last 1024).
    """

    queued: int
    queue_high_water: int
    max_queue: int
    committing: int
    submitted: int
    committed: int
    failed: int
    retries: int
    batches: int
    largest_batch: int
    mean_batch_size: float
    commit_seconds_p50: float
    commit_seconds_p99: float
    commit_seconds_max: float


class StatsRecorder:
    """The mutable counters behind :class:`WorkerStats`."""

    def __init__(self) -> None:
        self.submitted = 0
        self.committing = 0
        self.committed = 0
        self.failed = 0
        self.retries = 0
        self.batches = 0
        self.batched_requests = 0
        self.largest_batch = 0
        self.commit_seconds_max = 0.0
        self._recent_commits: deque[float] = deque(maxlen=_WINDOW)

    def record_commit(self, size: int, seconds: float) -> None:
        """One transaction of ``size`` requests committed in ``seconds``."""
        self.batches += 1
        self.batched_requests += size
        self.largest_batch = max(self.largest_batch, size)
        self.commit_seconds_max = max(self.commit_seconds_max, seconds)
        self._recent_commits.append(seconds)

    def snapshot(self, queued: int, queue_high_water: int, max_queue: int) -> WorkerStats:
        recent = sorted(self._recent_commits)

        def percentile(fraction: float) -> float:
            return recent[min(len(recent) - 1, int(fraction * len(recent)))] if recent else 0.0

        return WorkerStats(
            queued=queued,
            queue_high_water=queue_high_water,
            max_queue=max_queue,
            committing=self.committing,
            submitted=self.submitted,
            committed=self.committed,
            failed=self.failed,
            retries=self.retries,
            batches=self.batches,
            largest_batch=self.largest_batch,
            mean_batch_size=self.batched_requests / self.batches if self.batches else 0.0,
            commit_seconds_p50=percentile(0.5),
            commit_seconds_p99=percentile(0.99),
            commit_seconds_max=self.commit_seconds_max,
        )
