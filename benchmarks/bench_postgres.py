"""Batched append and replay on PostgreSQL, beside SQLite and raw asyncpg.

What it measures
    append: ``await store.append("run:bench/r1", batch)`` with batches of 1000
    ``StepLogged`` events (4 float metrics each) into one stream of a fresh PostgreSQL
    database, covering everything ``append`` does (type checks, msgpack encoding, ids,
    the hash chain, the append lock, the SQL, the commit and its NOTIFY).
    replay: ``async for r in store.read_all()`` over that log, decoding every event.

Compared with, in the same run, on the same server
    raw asyncpg ``copy_records_to_table``
        the very rows the store wrote (position, stream_id, version, 16-byte event id,
        recorded_at, data, 32-byte hash), read back before timing, copied into a table
        with the store's columns and its primary key and two unique indexes, one
        transaction per 1000 rows. This is the headline: ``ratio`` = store / copy.
    raw asyncpg ``executemany``
        the same rows, the same table, ``INSERT ... VALUES ($1..$7)`` per row.
    raw asyncpg replay
        ``SELECT data FROM events WHERE position >= $1 AND position < $2`` in pages of
        1000 and the codec's msgspec decoder: the least a replay can do.
    SQLite
        the same appends and replay through a SQLiteStore file (WAL,
        ``synchronous=NORMAL``), for scale.

The server is ``RUNLOG_TEST_POSTGRES_URL`` if set (as in CI), else a throwaway one
started like the tests' (see ``tests/_postgres.py``), which runs with ``fsync=off``:
figures on it show the CPU and protocol costs, not a disk's. Each side runs
``--repeat`` times (default 3), interleaved; best and median are reported, ratios are
best/best. The last line of output is one JSON object with the figures.

Run ``python benchmarks/bench_postgres.py`` (1,000,000 events) or ``--events 5000`` for
a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter

import asyncpg
from _shared import best_and_median, metrics, remove_db

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests._postgres

from eventstore import StepLogged, default_codec, open_store

STREAM = "run:bench/r1"
COLUMNS = ("position", "stream_id", "version", "event_id", "recorded_at", "data", "hash")
RAW_SCHEMA = (
    """CREATE TABLE events (
        position    bigint PRIMARY KEY,
        stream_id   bigint NOT NULL,
        version     bigint NOT NULL,
        event_id    bytea NOT NULL,
        recorded_at bigint NOT NULL,
        data        bytea NOT NULL,
        hash        bytea NOT NULL
    )""",
    "CREATE UNIQUE INDEX events_by_stream ON events (stream_id, version)",
    "CREATE UNIQUE INDEX events_by_id ON events (event_id)",
)


def batches(events: int, batch: int) -> Iterator[list[StepLogged]]:
    """The events ``0 .. events-1`` as lists of at most ``batch``, built lazily."""
    for start in range(0, events, batch):
        stop = min(start + batch, events)
        yield [StepLogged(incarnation=1, step=i, metrics=metrics(i)) for i in range(start, stop)]


async def store_append_rate(target: str, events: int, batch: int) -> float:
    elapsed = 0.0
    async with open_store(target) as store:
        for chunk in batches(events, batch):
            start = perf_counter()
            await store.append(STREAM, chunk)
            elapsed += perf_counter() - start
    return events / elapsed


async def store_replay_rate(target: str, events: int) -> float:
    async with open_store(target) as store:
        count = 0
        start = perf_counter()
        async for _ in store.read_all():
            count += 1
        elapsed = perf_counter() - start
    if count != events:
        raise SystemExit(f"{target} replayed {count} events, expected {events}")
    return events / elapsed


async def stored_rows(url: str, start: int, batch: int) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            f"SELECT {', '.join(COLUMNS)} FROM events "
            "WHERE position >= $1 AND position < $2 ORDER BY position",
            start,
            start + batch,
        )
    finally:
        await conn.close()
    return [tuple(row) for row in rows]


async def raw_rate(source: str, url: str, events: int, batch: int, how: str) -> float:
    """Events/s of copying (or inserting) the store's rows into the same schema."""
    reader = await asyncpg.connect(source)
    conn = await asyncpg.connect(url)
    insert = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    try:
        for statement in RAW_SCHEMA:
            await conn.execute(statement)
        elapsed = 0.0
        for first in range(1, events + 1, batch):
            rows = [
                tuple(row)
                for row in await reader.fetch(
                    f"SELECT {', '.join(COLUMNS)} FROM events "
                    "WHERE position >= $1 AND position < $2 ORDER BY position",
                    first,
                    first + batch,
                )
            ]
            start = perf_counter()
            async with conn.transaction():
                if how == "copy":
                    await conn.copy_records_to_table("events", records=rows, columns=COLUMNS)
                else:
                    await conn.executemany(insert, rows)
            elapsed += perf_counter() - start
    finally:
        await conn.close()
        await reader.close()
    return events / elapsed


async def raw_replay_rate(url: str, events: int, page: int = 1000) -> float:
    decode = default_codec._decoder.decode
    conn = await asyncpg.connect(url)
    try:
        count = 0
        start = perf_counter()
        position = 1
        while True:
            rows = await conn.fetch(
                "SELECT data FROM events WHERE position >= $1 AND position < $2 ORDER BY position",
                position,
                position + page,
            )
            for row in rows:
                decode(row[0])
            count += len(rows)
            if len(rows) < page:
                break
            position += page
        elapsed = perf_counter() - start
    finally:
        await conn.close()
    if count != events:
        raise SystemExit(f"raw replay read {count} events, expected {events}")
    return events / elapsed


async def admin(server_url: str, statement: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def one_round(
    server: object, number: int, events: int, batch: int, workdir: Path
) -> dict[str, float]:
    stem = f"runlog_bench_{number}"
    store_url = server.database(stem)  # type: ignore[attr-defined]
    copy_url = server.database(stem + "_copy")  # type: ignore[attr-defined]
    many_url = server.database(stem + "_many")  # type: ignore[attr-defined]
    for name in (stem + "_copy", stem + "_many"):
        await admin(server.url, f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    sqlite_path = workdir / f"store-{number}.db"
    try:
        out = {
            "pg_append": await store_append_rate(store_url, events, batch),
            "copy": await raw_rate(store_url, copy_url, events, batch, "copy"),
            "executemany": await raw_rate(store_url, many_url, events, batch, "executemany"),
            "sqlite_append": await store_append_rate(str(sqlite_path), events, batch),
            "pg_replay": await store_replay_rate(store_url, events),
            "raw_replay": await raw_replay_rate(store_url, events),
            "sqlite_replay": await store_replay_rate(str(sqlite_path), events),
        }
    finally:
        for name in (stem, stem + "_copy", stem + "_many"):
            await admin(server.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        remove_db(sqlite_path)
    return out


LABELS = {
    "pg_append": "runlog PostgresStore.append",
    "copy": "raw asyncpg copy_records_to_table",
    "executemany": "raw asyncpg executemany",
    "sqlite_append": "runlog SQLiteStore.append",
    "pg_replay": "runlog PostgresStore.read_all",
    "raw_replay": "raw asyncpg SELECT data + decode",
    "sqlite_replay": "runlog SQLiteStore.read_all",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to append")
    parser.add_argument("--batch", type=int, default=1000, help="events per append/transaction")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--bar", type=float, default=0.30, help="required store/copy ratio")
    args = parser.parse_args()
    if min(args.events, args.batch, args.repeat) < 1:
        parser.error("--events, --batch and --repeat must be positive")

    from tests._postgres import require_server, stop_server

    server = require_server()
    workdir = Path(tempfile.mkdtemp(prefix="runlog-bench-postgres-"))
    try:
        asyncio.run(run(server, args.events, args.batch, args.repeat, args.bar, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        stop_server()


async def run(
    server: object, events: int, batch: int, repeat: int, bar: float, workdir: Path
) -> None:
    conn = await asyncpg.connect(server.url)  # type: ignore[attr-defined]
    version = await conn.fetchval("SHOW server_version")
    fsync = await conn.fetchval("SHOW fsync")
    synchronous_commit = await conn.fetchval("SHOW synchronous_commit")
    await conn.close()
    print(
        f"postgres: {events:,} StepLogged events (4 metrics) in batches of {batch:,}, one "
        f"stream; PostgreSQL {version} (fsync={fsync}, synchronous_commit="
        f"{synchronous_commit}); best of {repeat}, interleaved, fresh databases"
    )
    samples: dict[str, list[float]] = {key: [] for key in LABELS}
    for number in range(1, repeat + 1):
        figures = await one_round(server, number, events, batch, workdir)
        for key, value in figures.items():
            samples[key].append(value)
        print(
            f"  round {number}/{repeat}: "
            + ", ".join(f"{key} {value:,.0f}" for key, value in figures.items())
            + " events/s"
        )
    best = {key: best_and_median(values)[0] for key, values in samples.items()}
    median = {key: best_and_median(values)[1] for key, values in samples.items()}
    print(f"  {'':40}{'best events/s':>15}{'median events/s':>17}")
    for key, label in LABELS.items():
        print(f"  {label:40}{best[key]:>15,.0f}{median[key]:>17,.0f}")
    ratio = best["pg_append"] / best["copy"]
    ratios = {
        "ratio": round(ratio, 3),
        "ratio_executemany": round(best["pg_append"] / best["executemany"], 3),
        "ratio_sqlite_append": round(best["pg_append"] / best["sqlite_append"], 3),
        "ratio_replay": round(best["pg_replay"] / best["raw_replay"], 3),
        "ratio_sqlite_replay": round(best["pg_replay"] / best["sqlite_replay"], 3),
    }
    print(f"  append: store / raw copy_records_to_table {ratios['ratio']:.3f} (bar {bar:.2f})")
    print(f"  append: store / raw executemany           {ratios['ratio_executemany']:.3f}")
    print(f"  append: PostgreSQL / SQLite store         {ratios['ratio_sqlite_append']:.3f}")
    print(f"  replay: store / raw SELECT + decode       {ratios['ratio_replay']:.3f}")
    print(f"  replay: PostgreSQL / SQLite store         {ratios['ratio_sqlite_replay']:.3f}")
    print(
        json.dumps(
            {
                "bench": "postgres",
                "events": events,
                "batch": batch,
                "repeat": repeat,
                "aggregate": f"best of {repeat}, interleaved",
                "postgres": version,
                "fsync": fsync,
                **{f"{key}_events_per_s": round(value) for key, value in best.items()},
                **{f"{key}_events_per_s_median": round(value) for key, value in median.items()},
                **ratios,
                "bar": bar,
                "meets_bar": ratio >= bar,
                **{f"{key}_samples": [round(v) for v in values] for key, values in samples.items()},
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
