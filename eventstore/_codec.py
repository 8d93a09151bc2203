"""Encoding events to msgpack and back, with upcasting of payloads from older schemas.

The fast path is one typed msgspec decode of the whole tagged union. Only a payload
whose tag the union does not know (an older ``Name`` after ``Name.v2`` replaced it, or
a type from elsewhere) takes the slow path: an untyped decode, the registered
upcasters, then a typed conversion.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Any, Union

import msgspec

from ._errors import (
    DecodeError,
    InvalidArgument,
    InvalidEvent,
    MalformedEvent,
    UnknownEventType,
)
from ._events import CATALOGUE, Event

__all__ = ["EventCodec", "Upcaster", "default_codec", "new_event_id"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns a payload of schema version N (a plain dict) into version N + 1."""

_TAG = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\.v(?P<version>[0-9]+))?$")
_MASK61 = (1 << 61) - 1


def _tag_parts(tag: str) -> tuple[str, int] | None:
    match = _TAG.match(tag)
    if match is None:
        return None
    version = match.group("version")
    return match.group("name"), int(version) if version else 1


def _enc_hook(obj: Any) -> Any:
    # NumPy and PyTorch scalars are what training code logs most; `.item()` turns
    # them into plain Python numbers without importing either library.
    item = getattr(obj, "item", None)
    if callable(item):
        try:
            value = item()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{type(obj).__name__} holds more than one value: {exc}") from exc
        if isinstance(value, (bool, int, float, complex, str)):
            return value
    raise TypeError(f"objects of type {type(obj).__name__} cannot be stored in an event")


_last_id = [0]  # the last id this process generated, as an int
_last_id_lock = threading.Lock()


def _forget_last_id() -> None:
    # A forked child must not count on from its parent's last id, or both would hand
    # out the same ids; it starts again from random bits.
    global _last_id_lock
    _last_id[0] = 0
    _last_id_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_last_id)


def event_id_bytes(count: int) -> list[bytes]:
    """``count`` fresh UUIDv7 ids as bytes, each greater than every id this process
    generated before (within a millisecond, and if the clock steps back, the count
    goes on from the last id instead of starting at a random point).

    Time-ordered ids keep the store's unique index appending at its right edge: at a
    million events, random ids make SQLite's appends about 5x slower (issue 16,
    ``benchmarks/bench_append.py``). A fresh millisecond's 62 random bits start below
    2**61, so counting up never carries into the variant bits.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    first = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62)
    first |= rand & _MASK61
    with _last_id_lock:
        first = max(first, _last_id[0] + 1)
        _last_id[0] = first + count - 1
    return list(map(int.to_bytes, range(first, first + count), repeat(16, count)))


def new_event_id() -> uuid.UUID:
    """A fresh event id (UUIDv7). Reuse it when retrying an append to make the retry idempotent."""
    return uuid.UUID(bytes=event_id_bytes(1)[0])


def _unreadable(data: bytes, error: BaseException) -> str:
    """Why ``data`` is not a payload: the stored bytes are damaged or were never runlog's."""
    if isinstance(error, UnicodeDecodeError):
        why = f"a string in it is not valid UTF-8 (byte {error.start} of that string)"
    elif isinstance(error, RecursionError):
        why = "it is nested too deeply to parse"
    else:
        why = f"it is not valid msgpack ({error})"
    return (
        f"the stored payload ({len(data)} bytes) cannot be decoded: {why}; the row was "
        "damaged or written by something other than runlog. `runlog verify` checks the log"
    )


class EventCodec:
    """Encodes events of a fixed set of types and decodes them, upcasting old payloads.

    Args:
        types: the event classes this codec knows; each appears at its current version.
    """

    def __init__(self, types: Iterable[type[Event]] = CATALOGUE) -> None:
        self.types: tuple[type[Event], ...] = tuple(types)
        if not self.types:
            raise InvalidArgument("an EventCodec needs at least one event type")
        self._current: dict[str, type[Event]] = {}
        for cls in self.types:
            tag = cls.__struct_config__.tag
            parts = _tag_parts(tag) if isinstance(tag, str) else None
            if parts is None or parts[1] != cls.schema_version:
                name = parts[0] if parts else cls.__name__
                wanted = name if cls.schema_version == 1 else f"{name}.v{cls.schema_version}"
                raise InvalidArgument(
                    f"{cls.__name__} has schema_version {cls.schema_version}, so its tag must be "
                    f"{wanted!r}, not {tag!r}"
                )
            if parts[0] in self._current:
                raise InvalidArgument(f"two event types share the name {parts[0]!r}")
            self._current[parts[0]] = cls
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        union = self.types[0] if len(self.types) == 1 else Union[self.types]  # noqa: UP007
        self._decoder: msgspec.msgpack.Decoder[Event] = msgspec.msgpack.Decoder(union)
        self._encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
        self._known = frozenset(self.types)

    def register_upcaster(
        self, type_name: str, from_version: int
    ) -> Callable[[Upcaster], Upcaster]:
        """Register a function that turns a ``type_name`` payload of ``from_version`` into the next.

        The function receives the payload as a plain dict (its ``"type"`` key holds the old
        tag) and returns the dict of the next version; chains run until the current one.
        """
        if type_name not in self._current:
            raise InvalidArgument(f"no event type named {type_name!r} in this codec")
        if not 1 <= from_version < self._current[type_name].schema_version:
            raise InvalidArgument(
                f"{type_name} is at schema version {self._current[type_name].schema_version}; "
                f"an upcaster from version {from_version} would never run"
            )

        def register(fn: Upcaster) -> Upcaster:
            self._upcasters[(type_name, from_version)] = fn
            return fn

        return register

    def check(self, event: object, index: int = 0) -> None:
        """Raise ``InvalidEvent`` unless ``event`` is an instance of one of this codec's types."""
        if type(event) not in self._known:
            raise InvalidEvent(
                f"event #{index} is a {type(event).__name__}, not a runlog event type; "
                f"use one of the classes exported by eventstore (StepLogged, RunExited, ...)"
            )

    def encode(self, event: Event) -> bytes:
        """The stored bytes of ``event``; raises ``InvalidEvent`` if it cannot be serialised."""
        try:
            return self._encoder.encode(event)
        except (TypeError, OverflowError, ValueError) as exc:
            raise InvalidEvent(
                f"{type(event).__name__} cannot be serialised: {exc}. Events hold str, int, "
                "float, bool, None, bytes, and lists and str-keyed dicts of those."
            ) from exc

    def decode(self, data: bytes, position: int | None = None) -> Event:
        """The event stored as ``data``; raises a ``DecodeError`` naming ``position``.

        Every way a stored payload can fail to decode ends here as a ``DecodeError``:
        invalid msgpack, a string that is not UTF-8 (msgspec raises ``UnicodeDecodeError``
        for it), nesting too deep to parse, a failing upcaster.
        """
        try:
            return self._decoder.decode(data)
        except msgspec.ValidationError as exc:
            return self._upcast(data, position, exc)
        except (msgspec.DecodeError, ValueError, RecursionError, TypeError) as exc:
            raise MalformedEvent(_unreadable(data, exc), position=position) from exc

    def _upcast(self, data: bytes, position: int | None, error: msgspec.ValidationError) -> Event:
        try:
            return self._upcast_raw(data, position, error)
        except DecodeError:
            raise
        except Exception as exc:  # an upcaster is user code; its failure is still a decode failure
            raise MalformedEvent(
                f"payload cannot be upcast: {type(exc).__name__}: {exc}", position=position
            ) from exc

    def _upcast_raw(
        self, data: bytes, position: int | None, error: msgspec.ValidationError
    ) -> Event:
        try:
            raw = msgspec.msgpack.decode(data)
        except (msgspec.DecodeError, ValueError, RecursionError) as exc:
            raise MalformedEvent(_unreadable(data, exc), position=position) from exc
        tag = raw.get("type") if isinstance(raw, dict) else None
        parts = _tag_parts(tag) if isinstance(tag, str) else None
        if parts is None:
            raise MalformedEvent(f"payload has no valid 'type' tag ({error})", position=position)
        name, version = parts
        cls = self._current.get(name)
        if cls is None:
            raise UnknownEventType(
                f"unknown event type {tag!r}: it was written by a newer runlog or by a plugin "
                "this process has not loaded; upgrade runlog to read it",
                position=position,
            )
        if version == cls.schema_version:
            raise MalformedEvent(
                f"{tag} payload does not match its schema: {error}", position=position
            )
        if version > cls.schema_version:
            raise UnknownEventType(
                f"{name} schema version {version} was written by a newer runlog; this one reads "
                f"up to version {cls.schema_version}. Upgrade runlog to read it",
                position=position,
            )
        for step in range(version, cls.schema_version):
            upcaster = self._upcasters.get((name, step))
            if upcaster is None:
                raise UnknownEventType(
                    f"{name} schema version {step} has no upcaster to version {step + 1}",
                    position=position,
                )
            raw = upcaster(raw)
        raw["type"] = cls.__struct_config__.tag
        try:
            return msgspec.convert(raw, cls)
        except msgspec.ValidationError as exc:
            raise MalformedEvent(
                f"{name} payload upcast from version {version} does not match version "
                f"{cls.schema_version}: {exc}",
                position=position,
            ) from exc


default_codec = EventCodec()
"""The codec for the built-in catalogue; stores use it unless given another."""
