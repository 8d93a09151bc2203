"""How this process ends: the exit code to record for runs still open at exit.

A run left open (no ``with`` block, no ``finish()``) is finished when the interpreter
exits, with the code the interpreter exits with (contract §6.2): ``sys.exit(n)`` gives
``n`` (0 for ``None``, 1 for anything not an int), an uncaught exception 1, an uncaught
``KeyboardInterrupt`` 255 with ``interrupted``. Python runs ``atexit`` functions without
telling them that code, so it is observed on the way out:

- on Python 3.12 and later, ``sys.monitoring`` reports the exception that unwinds the
  ``__main__`` module's frame, however it was raised (``sys.exit``, ``raise SystemExit``,
  any uncaught exception); it costs nothing until an exception unwinds a frame;
- on every version, ``sys.exit`` is wrapped (as W&B does) and ``sys.excepthook`` is
  chained, which covers ``sys.exit(n)`` (the signal-handler pattern), uncaught exceptions
  and Ctrl-C. On 3.11 a bare ``raise SystemExit(n)`` outside a ``with`` block is not
  seen and is recorded as 0; use ``sys.exit(n)`` or a ``with`` block there.

A ``sys.exit`` whose ``SystemExit`` is caught and swallowed is forgotten as soon as a
run logs again.
"""

from __future__ import annotations

import atexit
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

__all__ = ["exit_code_for", "exit_status", "forget_exit", "install", "on_exit"]

_lock = threading.Lock()
_installed = False
_status: tuple[int, bool] | None = None
_finishers: list[Callable[[int, bool], None]] = []


def exit_code_for(exc: BaseException | None) -> tuple[int, bool]:
    """(exit code, interrupted) for an exception ending a block or the process (§6.2)."""
    import asyncio

    if exc is None:
        return 0, False
    if isinstance(exc, KeyboardInterrupt):
        return 255, True
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0, False
        if isinstance(code, int):
            return int(code), False
        return 1, False
    if isinstance(exc, asyncio.CancelledError):
        return 255, True  # stopped from outside, like an interrupt
    return 1, False


def exit_status() -> tuple[int, bool]:
    """The exit code (and interrupted flag) the process is leaving with, as seen so far."""
    return _status if _status is not None else (0, False)


def forget_exit() -> None:
    """The program went on after a ``sys.exit`` whose ``SystemExit`` it caught."""
    global _status
    _status = None


def _record(exc: BaseException) -> None:
    global _status
    _status = exit_code_for(exc)


def on_exit(finisher: Callable[[int, bool], None]) -> None:
    """Call ``finisher(exit_code, interrupted)`` when the interpreter exits."""
    install()
    with _lock:
        _finishers.append(finisher)


def install() -> None:
    """Start observing how the process ends (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    original_exit = sys.exit

    def exit(status: object = None) -> None:  # the name users call
        _record(SystemExit(status))
        original_exit(status)  # type: ignore[arg-type]  # as permissive as sys.exit

    exit.__doc__ = original_exit.__doc__
    exit.__wrapped__ = original_exit  # type: ignore[attr-defined]
    sys.exit = exit  # type: ignore[assignment]
    previous_hook = sys.excepthook

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: types.TracebackType | None
    ) -> None:
        _record(value)
        previous_hook(kind, value, tb)

    sys.excepthook = excepthook
    _watch_main_frame()
    # threading's exit hooks run before the interpreter joins non-daemon threads (a
    # store's connection threads among them) and before atexit: the last moment the
    # runs' event loops and stores are all still usable.
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError
        register(_at_exit)
    except RuntimeError:  # already shutting down, or an interpreter without the hook
        atexit.register(_at_exit)


def _watch_main_frame() -> None:
    monitoring: Any = getattr(sys, "monitoring", None)
    main = sys.modules.get("__main__")
    if monitoring is None or main is None:
        return
    code = _main_code(main)
    if code is None:
        return
    for tool in range(5, 0, -1):  # leave 0 (debuggers) and the profilers' ids alone
        if monitoring.get_tool(tool) is None:
            break
    else:
        return
    monitoring.use_tool_id(tool, "runlog")

    def unwound(frame_code: types.CodeType, offset: int, exc: BaseException) -> object:
        if frame_code is code:
            _record(exc)
        return None

    monitoring.register_callback(tool, monitoring.events.PY_UNWIND, unwound)
    monitoring.set_events(tool, monitoring.events.PY_UNWIND)


def _main_code(main: types.ModuleType) -> types.CodeType | None:
    """The code object of the ``__main__`` module's frame, if it is on the main thread's
    stack (runs may be created on another thread, such as the blocking facade's)."""
    ident = threading.main_thread().ident
    frame: types.FrameType | None = (
        sys._getframe() if ident == threading.get_ident() else sys._current_frames().get(ident or 0)
    )
    found = None
    while frame is not None:
        if frame.f_globals is main.__dict__ and frame.f_code.co_name == "<module>":
            found = frame.f_code
        frame = frame.f_back
    return found


def _at_exit() -> None:
    code, interrupted = exit_status()
    with _lock:
        finishers = list(_finishers)
    for finisher in reversed(finishers):
        try:
            finisher(code, interrupted)
        except Exception as exc:  # one run's trouble must not keep the others open
            print(f"runlog: finishing a run at exit failed: {exc}", file=sys.stderr)
