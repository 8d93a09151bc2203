"""Opening the store a library call or a command names: the one place it is done.

Every public function of ``api`` that touches a store takes ``store=`` as a path, a URL,
an open store, or nothing (``$RUNLOG_STORE``, else ``runlog/runlog.db`` under the
working directory). ``opened_store`` opens (and creates) it for writers; commands that
only read or act on existing runs use ``existing_store``, which refuses a path where no
runlog database is, so a mistyped ``--store`` never leaves an empty database behind.
A store passed in open is used as it is and left open.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from eventstore import EventStore, Opening, StoreUnavailable, open_store
from projections import run_heads

from ._settings import root_dir, store_target

__all__ = ["StoreArg", "existing_store", "keep_heads", "opened_store", "runlog_store"]

StoreArg = EventStore | str | os.PathLike[str] | None
"""What ``store=`` accepts: an open store, a path or URL, or None for the default."""


def runlog_store(target: str | os.PathLike[str], **options: Any) -> Opening[Any]:
    """``open_store`` keeping run heads current in every append (every store ``api``
    opens is opened here, so ``init`` decides from one row however far the read model
    lags)."""
    return open_store(target, inline=run_heads(), **options)


async def keep_heads(store: EventStore) -> bool:
    """Have a store the caller opened keep run heads from now on; False if it cannot
    (an ``http(s)://`` store, whose server keeps its own)."""
    keep = getattr(store, "keep_inline", None)
    if keep is None:
        return False
    if getattr(store, "inline", None) is None:
        await keep(run_heads())
    return True


@asynccontextmanager
async def opened_store(store: StoreArg) -> AsyncIterator[EventStore]:
    """The store at ``store``, created if it is a path where none is yet."""
    if store is None or isinstance(store, (str, os.PathLike)):
        async with runlog_store(store_target(store, root_dir())) as opened:
            yield opened
    else:
        yield store


@asynccontextmanager
async def existing_store(store: StoreArg) -> AsyncIterator[EventStore]:
    """The store at ``store`` (path, URL, or an open store), which must already exist."""
    if store is not None and not isinstance(store, (str, os.PathLike)):
        yield store
        return
    target = store_target(store, root_dir())
    try:
        opening = runlog_store(target, create=False)
        opened = await opening
    except StoreUnavailable as exc:
        if isinstance(target, (str, os.PathLike)) and "no runlog database" in str(exc):
            raise StoreUnavailable(
                f"there is no runlog database at {target}; check --store (or RUNLOG_STORE) "
                "or run from the directory whose runlog/ holds it"
            ) from None
        raise
    try:
        yield opened
    finally:
        await opened.aclose()
