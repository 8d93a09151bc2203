"""The store protocol over HTTP: a client of ``runlog serve``, opened by ``open_store("http://...")``.

Everything the training library does through a store (appends with expected versions
and event ids, stream reads, files, subscriptions) goes through the server's
``/api/store/*`` endpoints, so a remote run keeps the library's semantics unchanged:
the same group commit, the same fencing, idempotent retries. Events travel as the
codec's msgpack bytes. Writes carry ``Authorization: Bearer $RUNLOG_TOKEN``.

Errors are translated at one place (``_raise_for``): the server names the library
error it raised, and the client raises the same class; a server that cannot be
reached is ``StoreUnavailable`` (which the library's writer retries).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

import anyio
import msgspec

from . import wire
from ._batch import encode_batch
from ._checks import (
    check_expected,
    check_positions,
    check_range,
    check_size,
    check_stream,
    check_stream_window,
)
from ._codec import EventCodec
from ._errors import (
    ConcurrencyError,
    EventIdConflict,
    EventTooLarge,
    FencedWriter,
    InvalidArgument,
    InvalidEvent,
    InvalidStreamName,
    MalformedEvent,
    RunLogError,
    StoreBusy,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    UnknownEventType,
    WrongExpectedVersion,
)
from ._events import Event
from ._hosting import ReadModelFactory
from ._store_base import StoreBase
from ._subscription import Subscription
from ._types import (
    AppendResult,
    ExpectedVersion,
    ImportResult,
    NewEvent,
    RecordedEvent,
    StoredEvent,
    StreamInfo,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["TOKEN_ENV", "HTTPStore"]

TOKEN_ENV = "RUNLOG_TOKEN"
"""The environment variable holding the bearer token a client sends with writes."""
_M = TypeVar("_M")
_PAGE = 1000
_MAX_PAGE = 10_000  # the server's largest page
_CHUNK = 1 << 20


_ERRORS: dict[str, type[RunLogError]] = {
    cls.__name__: cls
    for cls in (
        ConcurrencyError, EventIdConflict, EventTooLarge, FencedWriter, InvalidArgument,
        InvalidEvent, InvalidStreamName, MalformedEvent, StoreBusy, StoreUnavailable,
        UnknownEventType,
    )
}  # fmt: skip
_records = msgspec.msgpack.Decoder(list[wire.WireRecord])
_stored = msgspec.msgpack.Decoder(list[StoredEvent])
_info = msgspec.msgpack.Decoder(StreamInfo | None)
_infos = msgspec.msgpack.Decoder(list[StreamInfo])
_appended = msgspec.msgpack.Decoder(wire.AppendOut)
_imported = msgspec.msgpack.Decoder(ImportResult)
_error = msgspec.json.Decoder(wire.ErrorOut)
_encoder = msgspec.msgpack.Encoder()


class HTTPStore(StoreBase):
    """A store served by ``runlog serve`` at ``url``; open it with ``open_store(url)``.

    The token for writes comes from ``token`` or ``RUNLOG_TOKEN``; reads need none.
    """

    def __init__(
        self,
        url: str,
        *,
        codec: EventCodec,
        token: str | None = None,
        poll_interval: float = 0.1,
        timeout: float = 60.0,
        max_event_bytes: int = 1 << 20,
    ) -> None:
        self._url = url.rstrip("/")
        super().__init__(self._url)
        self._max_event_bytes = max_event_bytes
        self._codec = codec
        self._token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self._poll_interval = poll_interval
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    # --- lifetime -----------------------------------------------------------------------

    @property
    def max_event_bytes(self) -> int:
        """The largest encoded event this client sends (the server may allow less)."""
        return self._max_event_bytes

    @property
    def url(self) -> str:
        """The server's URL."""
        return self._url

    async def _open(self) -> Self:
        if self._state != "new":
            raise StoreError("a store object is opened once; call open_store() again")
        import httpx  # only remote stores need it: keep `import eventstore` light

        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        self._client = httpx.AsyncClient(base_url=self._url, headers=headers, timeout=self._timeout)
        self._state = "open"
        try:
            await self.head()  # fail now, with a clear message, if nothing serves there
        except BaseException:
            await self.aclose()
            raise
        return self

    async def aclose(self) -> None:
        """Close the connection pool; idempotent."""
        if self._state == "closed":
            return
        self._state = "closed"
        self._wake()
        client, self._client = self._client, None
        if client is not None:
            with anyio.CancelScope(shield=True):
                await client.aclose()

    # --- the one place requests are made and errors translated ----------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: bytes | AsyncIterator[bytes] | None = None,
        media: str = wire.MSGPACK,
        context: dict[str, Any] | None = None,
    ) -> bytes:
        """Send a request to the server; the response body, or the matching runlog error.

        Raises:
            StoreUnavailable: the server cannot be reached.
            StoreClosed: the store was closed.
        """
        if self._client is None:
            raise StoreClosed(f"the store {self._url} is closed; open it with open_store()")
        import httpx

        headers = {"content-type": media} if body is not None else None
        try:
            response = await self._client.request(
                method, path, params=params, content=body, headers=headers
            )
        except httpx.TransportError as exc:
            raise StoreUnavailable(
                f"cannot reach the runlog server at {self._url}: {exc!r}; is 'runlog serve' "
                "running there?"
            ) from exc
        if response.status_code >= 400:
            self._raise_for(response, context or {})
        return response.content

    def _raise_for(self, response: httpx.Response, context: dict[str, Any]) -> None:
        try:
            problem = _error.decode(response.content)
        except msgspec.MsgspecError:
            problem = wire.ErrorOut(response.status_code, "", response.text[:200])
        detail = problem.detail or f"HTTP {response.status_code}"
        if problem.error == "WrongExpectedVersion":
            stream = context.get("stream", problem.stream)
            if stream is None:  # a server that does not name the stream
                raise ConcurrencyError(detail)
            actual = problem.actual_version if problem.actual_version is not None else -1
            raise WrongExpectedVersion(
                stream, context.get("expected", problem.expected_version), actual
            )
        known = _ERRORS.get(problem.error)
        if known is not None:
            raise known(detail)
        status = response.status_code
        if status in (401, 403):
            raise StoreError(
                f"the runlog server at {self._url} refused the write ({detail}); set {TOKEN_ENV} "
                "to the server's token"
            )
        if status in (502, 503, 504):
            raise StoreUnavailable(f"the runlog server at {self._url} is unavailable: {detail}")
        if 400 <= status < 500:
            raise InvalidArgument(detail)
        raise StoreError(f"the runlog server at {self._url} failed: {detail}")

    def _decode(self, records: list[wire.WireRecord]) -> list[RecordedEvent]:
        decode = self._codec.decode
        return [
            RecordedEvent(
                w.position, w.stream, w.version, w.recorded_at_us, decode(w.data, w.position)
            )
            for w in records
        ]

    # --- writing ------------------------------------------------------------------------

    async def append(
        self,
        stream: str,
        events: Sequence[Event | NewEvent],
        expected_version: ExpectedVersion = "any",
    ) -> AppendResult:
        """Append through the server (see ``EventStore.append``).

        Raises:
            WrongExpectedVersion, EventIdConflict, InvalidEvent, StoreBusy: as the
                server's store raised them.
            StoreUnavailable: the server cannot be reached; retrying the same
                ``NewEvent`` objects is safe.
        """
        check_stream(stream)
        check_expected(expected_version)
        ids, datas = encode_batch(self._codec, events, self._max_event_bytes)
        batch = [wire.WireNew(i, d) for i, d in zip(ids, datas, strict=True)]
        body = _encoder.encode(wire.AppendIn(stream, expected_version, batch))
        raw = await self.request(
            "POST",
            wire.APPEND,
            body=body,
            context={"stream": stream, "expected": expected_version},
        )
        out = _appended.decode(raw)
        if out.positions and not out.deduplicated:
            self._wake()
        return AppendResult(out.stream, tuple(out.positions), out.version, out.deduplicated)

    async def put_file(self, path: str | os.PathLike[str]) -> tuple[str, int]:
        """Upload a file to the server's content-addressed store, a chunk at a time;
        its digest and size."""
        source = Path(path)
        try:
            file = await anyio.open_file(source, "rb")
        except OSError as exc:
            raise InvalidArgument(f"cannot read {source}: {exc}") from exc

        async def chunks() -> AsyncIterator[bytes]:
            async with file:
                while chunk := await file.read(_CHUNK):
                    yield chunk

        raw = await self.request("PUT", wire.FILES, body=chunks(), media="application/octet-stream")
        digest, size = msgspec.msgpack.decode(raw, type=tuple[str, int])
        return digest, size

    async def get_file(self, digest: str, path: str | os.PathLike[str]) -> int:
        """Download the stored file ``digest`` to ``path`` (atomically); its size.

        Raises:
            InvalidArgument: nothing is stored under ``digest``.
        """
        import httpx

        if self._client is None:
            raise StoreClosed(f"the store {self._url} is closed; open it with open_store()")
        target = Path(path)
        partial = target.with_name(f".{target.name}.runlog-partial")
        await anyio.Path(target.parent).mkdir(parents=True, exist_ok=True)
        size = 0
        try:
            async with self._client.stream("GET", f"{wire.FILES}/{digest}") as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._raise_for(response, {})
                async with await anyio.open_file(partial, "wb") as out:
                    async for chunk in response.aiter_bytes(_CHUNK):
                        size += len(chunk)
                        await out.write(chunk)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await anyio.Path(partial).unlink(missing_ok=True)
            if isinstance(exc, httpx.TransportError):
                raise StoreUnavailable(
                    f"cannot reach the runlog server at {self._url}: {exc!r}"
                ) from exc
            raise
        os.replace(partial, target)
        return size

    # --- reading ------------------------------------------------------------------------

    async def head(self) -> int:
        """The position of the last event, 0 when the log is empty."""
        raw = await self.request("GET", wire.HEAD)
        return int(msgspec.json.decode(raw)["head"])

    async def stream_info(self, stream: str) -> StreamInfo | None:
        """The stream's version and positions, None if it holds no event."""
        info: StreamInfo | None = _info.decode(
            await self.request("GET", wire.INFO, params={"name": stream})
        )
        return info

    async def stream_version(self, stream: str) -> int:
        """The version of ``stream``'s last event, -1 when it has none."""
        info = await self.stream_info(stream)
        return info.version if info is not None else -1

    async def streams(self, prefix: str = "") -> list[StreamInfo]:
        """The streams whose names start with ``prefix``, in order of creation."""
        return _infos.decode(await self.request("GET", wire.STREAMS, params={"prefix": prefix}))

    async def read_stream(
        self, stream: str, from_version: int = 0, *, limit: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """The events of ``stream`` from ``from_version`` on, page by page."""
        check_stream_window(stream, from_version, limit)
        remaining = limit
        while remaining is None or remaining > 0:
            size = _PAGE if remaining is None else min(_PAGE, remaining)
            raw = await self.request(
                "GET",
                wire.STREAM,
                params={"name": stream, "from_version": from_version, "limit": size},
            )
            page = self._decode(_records.decode(raw))
            for record in page:
                yield record
            if len(page) < size:
                return
            from_version = page[-1].version + 1
            if remaining is not None:
                remaining -= len(page)

    async def _read_page(self, from_position: int, limit: int) -> list[RecordedEvent]:
        params = {"from": from_position, "limit": min(limit, 10_000)}
        return self._decode(_records.decode(await self.request("GET", wire.EVENTS, params=params)))

    async def read_all_pages(
        self, from_position: int = 0, *, to_position: int | None = None, size: int = _PAGE
    ) -> AsyncIterator[list[RecordedEvent]]:
        """``read_all`` a page of up to ``size`` events (at most 10,000) at a time."""
        async for page in self._pages(wire.EVENTS, from_position, to_position, size):
            yield self._decode(_records.decode(page))

    async def read_stored_pages(
        self, from_position: int = 0, *, to_position: int | None = None, size: int = _PAGE
    ) -> AsyncIterator[list[StoredEvent]]:
        """``read_stored`` a page of up to ``size`` events (at most 10,000) at a time."""
        async for page in self._pages(wire.STORED, from_position, to_position, size):
            yield _stored.decode(page)

    async def _pages(
        self, path: str, from_position: int, to_position: int | None, size: int
    ) -> AsyncIterator[bytes]:
        position, to_position = check_range(from_position, to_position)
        size = min(check_size(size), _MAX_PAGE)
        while to_position is None or position <= to_position:
            limit = size if to_position is None else min(size, to_position - position + 1)
            raw = await self.request("GET", path, params={"from": position, "limit": limit})
            count = len(msgspec.msgpack.decode(raw, type=list[msgspec.Raw]))
            if count:
                yield raw
            if count < limit:
                return
            position += count

    async def import_events(self, events: Sequence[StoredEvent]) -> ImportResult:
        """``import_events`` on the server's store (see ``EventStore.import_events``).

        Raises:
            EventIdConflict, ConcurrencyError: the server's log diverged from the events.
        """
        batch = list(events)
        if not all(isinstance(stored, StoredEvent) for stored in batch):
            raise InvalidArgument("import_events takes StoredEvent items (from read_stored)")
        raw = await self.request("POST", wire.IMPORT, body=_encoder.encode(batch))
        result = _imported.decode(raw)
        if result.added:
            self._wake()
        return result

    async def read_positions(self, positions: Sequence[int]) -> list[RecordedEvent]:
        """The events at ``positions``, in the order given."""
        wanted = check_positions(positions)
        out: list[RecordedEvent] = []
        for begin in range(0, len(wanted), 10_000):
            raw = await self.request(
                "POST", wire.POSITIONS, body=_encoder.encode(wanted[begin : begin + 10_000])
            )
            out += self._decode(_records.decode(raw))
        return out

    async def position_at(self, recorded_at_us: int) -> int:
        """The last position recorded at or before ``recorded_at_us`` (0 if none)."""
        raw = await self.request("GET", wire.POSITION_AT, params={"us": recorded_at_us})
        return int(msgspec.msgpack.decode(raw))

    def host_read_model(self, factory: ReadModelFactory[_M]) -> _M:
        """The server's own read model, asked over HTTP: a local one would replay the
        whole log over the network."""
        return factory.remote(self)

    def subscribe(
        self, from_position: int = 0, *, poll_interval: float | None = None
    ) -> Subscription:
        """Catch up from ``from_position``, then poll the server for new events."""
        return Subscription(self, from_position, poll_interval or self._poll_interval)
