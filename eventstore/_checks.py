"""Argument checks every store makes, written once: stream names, expected versions,
position ranges, page sizes. The HTTP client makes them too, before a round trip."""

from __future__ import annotations

from collections.abc import Sequence

from ._errors import InvalidArgument, InvalidStreamName

__all__ = [
    "MAX_STREAM_NAME",
    "check_expected",
    "check_positions",
    "check_range",
    "check_size",
    "check_stream",
    "check_stream_window",
    "satisfies",
]

MAX_STREAM_NAME = 1024


def check_stream(stream: object) -> None:
    """Raise ``InvalidStreamName`` unless ``stream`` is 1 to 1024 characters without NUL."""
    if not isinstance(stream, str):
        raise InvalidStreamName(f"a stream name is a string, not {type(stream).__name__}")
    if not stream or len(stream) > MAX_STREAM_NAME or "\x00" in stream:
        raise InvalidStreamName(
            f"stream names are 1 to {MAX_STREAM_NAME} characters without NUL; got {stream!r:.80}"
        )


def check_expected(expected: object) -> int | str:
    """``expected_version`` checked: 'any', 'no_stream', 'exists' or a version >= -1."""
    if isinstance(expected, bool) or not isinstance(expected, (int, str)):
        raise InvalidArgument(
            f"expected_version is 'any', 'no_stream', 'exists' or a version number, not {expected!r}"
        )
    if isinstance(expected, str):
        if expected not in ("any", "no_stream", "exists"):
            raise InvalidArgument(
                f"expected_version {expected!r} is unknown; use 'any', 'no_stream', 'exists' or "
                "a version number"
            )
        return expected
    if expected < -1:
        raise InvalidArgument(f"expected_version must be >= -1, got {expected}")
    return expected


def satisfies(expected: int | str, current: int) -> bool:
    """True if a stream at version ``current`` (-1: no stream) meets ``expected``."""
    if expected == "any":
        return True
    if expected == "no_stream":
        return current == -1
    if expected == "exists":
        return current >= 0
    return expected == current


def check_range(from_position: int, to_position: int | None) -> tuple[int, int | None]:
    """The first position to read (at least 1) and the last (None: the head)."""
    if from_position < 0:
        raise InvalidArgument(f"from_position must be >= 0, got {from_position}")
    if to_position is not None and to_position < 0:
        raise InvalidArgument(f"to_position must be >= 0, got {to_position}")
    return max(from_position, 1), to_position


def check_size(size: int) -> int:
    """A page size checked: a positive int."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise InvalidArgument(f"size must be a positive int, got {size!r}")
    return size


def check_stream_window(stream: str, from_version: int, limit: int | None) -> None:
    """The arguments of ``read_stream`` checked."""
    check_stream(stream)
    if from_version < 0:
        raise InvalidArgument(f"from_version must be >= 0, got {from_version}")
    if limit is not None and limit < 0:
        raise InvalidArgument(f"limit must be >= 0, got {limit}")


def check_positions(positions: Sequence[int]) -> list[int]:
    """The positions of ``read_positions`` as a list, each an int >= 1."""
    wanted = list(positions)
    # Checked by type in C: a full history reads back a position per step.
    if (
        wanted
        and (not set(map(type, wanted)) <= {int} or min(wanted) < 1)
        and any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in wanted)
    ):
        raise InvalidArgument("positions are integers >= 1")
    return wanted
