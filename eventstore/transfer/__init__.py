"""Moving events in and out of a store: legacy dumps and tables in, JSON lines out.

* :func:`import_events` reads a :class:`Source` (:func:`open_source`: a JSON-lines dump,
  gzip or plain, legacy or current format, or a database's ``events`` table, legacy or
  current) into any store: order kept, duplicates settled, the cap respected, bad lines
  rejected with their line numbers, idempotent and so resumable.
* :func:`export_events` writes an SQL store as JSON lines that :func:`import_events`
  reads back.

The ``eventstore import`` and ``eventstore export`` commands are thin wrappers around
these (see MIGRATION.md).
"""

from eventstore.transfer.exporter import export_events
from eventstore.transfer.importer import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    ImportReport,
    import_events,
)
from eventstore.transfer.progress import LogProgress, NoProgress, ProgressSink, RichProgress
from eventstore.transfer.records import Reject, SourceEvent
from eventstore.transfer.rejects import RejectFile
from eventstore.transfer.sources import DumpFile, EventsTable, Source, open_source
from eventstore.transfer.staging import CappedStream, CapSummary

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MAX_BATCH_SIZE",
    "CapSummary",
    "CappedStream",
    "DumpFile",
    "EventsTable",
    "ImportReport",
    "LogProgress",
    "NoProgress",
    "ProgressSink",
    "Reject",
    "RejectFile",
    "RichProgress",
    "Source",
    "SourceEvent",
    "export_events",
    "import_events",
    "open_source",
]
