"""``runlog rebuild-heads``: recompute the run heads a store keeps inline from its log.

Run heads are derived data (``projections.run_heads``): each is the fold of one run's
events, kept current by every append. ``verify`` compares them with the log; when one
differs (the file was edited outside runlog, a disk flipped a bit in that table), this
recomputes every head from the log. Writers may go on meanwhile: each head is written
with whatever was appended to its run since the log was read folded in.
"""

from __future__ import annotations

from eventstore import InvalidArgument

from .._library._stores import StoreArg, existing_store, keep_heads

__all__ = ["rebuild_heads"]


async def rebuild_heads(*, store: StoreArg = None) -> int:
    """Recompute every run head of ``store`` from its log; return how many were written.

    Raises:
        InvalidArgument: the store keeps no heads (an ``http(s)://`` store: rebuild
            them on the server's store).
    """
    async with existing_store(store) as opened:
        if not await keep_heads(opened):
            raise InvalidArgument(
                f"{opened.url} is served by a runlog server, which keeps the heads: run "
                "`runlog rebuild-heads` against the server's own store"
            )
        return int(await opened.rebuild_heads())  # type: ignore[attr-defined]
