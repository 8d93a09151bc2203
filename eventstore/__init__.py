"""runlog's event store: an append-only, hash-chained log of run and sweep events.

Open one with :func:`open_store`; append events to streams with expected-version
checks; read a stream, the whole log, or subscribe to it.
"""

import typing as _typing

from . import wire as wire
from ._chain import GENESIS_HASH as GENESIS_HASH
from ._chain import chain_hash as chain_hash
from ._codec import EventCodec as EventCodec
from ._codec import Upcaster as Upcaster
from ._codec import default_codec as default_codec
from ._codec import event_id_bytes as event_id_bytes
from ._codec import new_event_id as new_event_id
from ._errors import ConcurrencyError as ConcurrencyError
from ._errors import CorruptStore as CorruptStore
from ._errors import DecodeError as DecodeError
from ._errors import EventIdConflict as EventIdConflict
from ._errors import EventTooLarge as EventTooLarge
from ._errors import FencedWriter as FencedWriter
from ._errors import IncompatibleSchema as IncompatibleSchema
from ._errors import InvalidArgument as InvalidArgument
from ._errors import InvalidEvent as InvalidEvent
from ._errors import InvalidStreamName as InvalidStreamName
from ._errors import MalformedEvent as MalformedEvent
from ._errors import NotARunlogDatabase as NotARunlogDatabase
from ._errors import RunLogError as RunLogError
from ._errors import StoreBusy as StoreBusy
from ._errors import StoreClosed as StoreClosed
from ._errors import StoreError as StoreError
from ._errors import StoreUnavailable as StoreUnavailable
from ._errors import UnknownEventType as UnknownEventType
from ._errors import UnsupportedStore as UnsupportedStore
from ._errors import WrongExpectedVersion as WrongExpectedVersion
from ._events import AgentHeartbeat as AgentHeartbeat
from ._events import AgentStarted as AgentStarted
from ._events import AgentStopped as AgentStopped
from ._events import ClaimLapsed as ClaimLapsed
from ._events import ConfigUpdated as ConfigUpdated
from ._events import Event as Event
from ._events import FileSaved as FileSaved
from ._events import Heartbeat as Heartbeat
from ._events import HeartbeatExpired as HeartbeatExpired
from ._events import MetricDefined as MetricDefined
from ._events import NotesEdited as NotesEdited
from ._events import PreemptMarked as PreemptMarked
from ._events import RunClaimed as RunClaimed
from ._events import RunExited as RunExited
from ._events import RunForked as RunForked
from ._events import RunInitialized as RunInitialized
from ._events import RunKilled as RunKilled
from ._events import RunRevived as RunRevived
from ._events import RunRewound as RunRewound
from ._events import RunScheduled as RunScheduled
from ._events import RunStopRequested as RunStopRequested
from ._events import StepLogged as StepLogged
from ._events import SummaryUpdated as SummaryUpdated
from ._events import SweepCancelled as SweepCancelled
from ._events import SweepCreated as SweepCreated
from ._events import SweepFinished as SweepFinished
from ._events import SweepPaused as SweepPaused
from ._events import SweepResumed as SweepResumed
from ._events import SweepStopped as SweepStopped
from ._hosting import ConnectionRunner as ConnectionRunner
from ._hosting import ReadModelFactory as ReadModelFactory
from ._http import HTTPStore as HTTPStore
from ._inline import InlineProjection as InlineProjection
from ._inline import StoredHead as StoredHead
from ._inline import StreamHead as StreamHead
from ._location import StoreLocation as StoreLocation
from ._location import parse_location as parse_location
from ._merged import read_streams as read_streams
from ._open import Opening as Opening
from ._open import open_store as open_store
from ._protocol import EventStore as EventStore
from ._sqlite import SQLiteStore as SQLiteStore
from ._sqlite_runner import SQLiteRunner as SQLiteRunner
from ._streams import parse_stream as parse_stream
from ._streams import run_stream as run_stream
from ._streams import sweep_stream as sweep_stream
from ._subscription import Subscription as Subscription
from ._types import ANY as ANY
from ._types import EXISTS as EXISTS
from ._types import NO_STREAM as NO_STREAM
from ._types import AppendResult as AppendResult
from ._types import ExpectedVersion as ExpectedVersion
from ._types import ImportResult as ImportResult
from ._types import NewEvent as NewEvent
from ._types import RecordedEvent as RecordedEvent
from ._types import StoredEvent as StoredEvent
from ._types import StreamInfo as StreamInfo
from ._verify import LogCheck as LogCheck
from ._verify import LogFault as LogFault
from ._verify import RangeCheck as RangeCheck
from ._verify import check_log as check_log
from ._verify import check_range as check_range
from ._verify import merge_ranges as merge_ranges

if _typing.TYPE_CHECKING:
    from ._postgres import PostgresStore as PostgresStore


def __getattr__(name: str) -> _typing.Any:
    # The PostgreSQL backend imports asyncpg; SQLite users never load it.
    if name == "PostgresStore":
        from ._postgres import PostgresStore

        globals()[name] = PostgresStore
        return PostgresStore
    raise AttributeError(f"module 'eventstore' has no attribute {name!r}")


__all__ = [
    "ANY",
    "AgentHeartbeat",
    "AgentStarted",
    "AgentStopped",
    "AppendResult",
    "ClaimLapsed",
    "ConcurrencyError",
    "ConfigUpdated",
    "ConnectionRunner",
    "CorruptStore",
    "DecodeError",
    "EXISTS",
    "Event",
    "EventCodec",
    "EventIdConflict",
    "EventStore",
    "EventTooLarge",
    "ExpectedVersion",
    "FencedWriter",
    "FileSaved",
    "GENESIS_HASH",
    "HTTPStore",
    "Heartbeat",
    "HeartbeatExpired",
    "ImportResult",
    "IncompatibleSchema",
    "InlineProjection",
    "InvalidArgument",
    "InvalidEvent",
    "InvalidStreamName",
    "LogCheck",
    "LogFault",
    "MalformedEvent",
    "MetricDefined",
    "NO_STREAM",
    "NewEvent",
    "NotARunlogDatabase",
    "NotesEdited",
    "Opening",
    "PostgresStore",
    "PreemptMarked",
    "RangeCheck",
    "ReadModelFactory",
    "RecordedEvent",
    "RunClaimed",
    "RunExited",
    "RunForked",
    "RunInitialized",
    "RunKilled",
    "RunLogError",
    "RunRevived",
    "RunRewound",
    "RunScheduled",
    "RunStopRequested",
    "SQLiteRunner",
    "SQLiteStore",
    "StepLogged",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "StoreLocation",
    "StoreUnavailable",
    "StoredEvent",
    "StoredHead",
    "StreamHead",
    "StreamInfo",
    "Subscription",
    "SummaryUpdated",
    "SweepCancelled",
    "SweepCreated",
    "SweepFinished",
    "SweepPaused",
    "SweepResumed",
    "SweepStopped",
    "UnknownEventType",
    "UnsupportedStore",
    "Upcaster",
    "WrongExpectedVersion",
    "chain_hash",
    "check_log",
    "check_range",
    "default_codec",
    "event_id_bytes",
    "merge_ranges",
    "new_event_id",
    "open_store",
    "parse_location",
    "parse_stream",
    "read_streams",
    "run_stream",
    "sweep_stream",
    "wire",
]
