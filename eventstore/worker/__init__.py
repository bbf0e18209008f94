"""The write path: :class:`PersistenceWorker` group-commits queued requests to a store."""

from eventstore.worker.persistence import MAX_BATCH_LIMIT, PersistenceWorker
from eventstore.worker.requests import Flush, PersistenceRequest
from eventstore.worker.stats import WorkerStats

__all__ = ["MAX_BATCH_LIMIT", "Flush", "PersistenceRequest", "PersistenceWorker", "WorkerStats"]
