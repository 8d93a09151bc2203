"""Batched append throughput of the runlog event store, against raw ``sqlite3``.

What it measures
    ``await store.append("run:bench/r1", batch)`` with batches of 1000 ``StepLogged``
    events (4 float metrics each) into one stream of a fresh SQLite file store (WAL,
    ``synchronous=NORMAL``). The timed part covers everything ``append`` does: type
    checks, msgpack encoding, event ids, the hash chain, the SQL and the commit.

The same appends through a store that keeps run heads (``open_store(...,
inline=run_heads())``, what every store ``api`` opens does) are measured in each round
too: the difference is what keeping each run's head in the append's own transaction
costs (one read and one write of the head row per append, the fold of the batch).

Baselines, measured in the same run on fresh files in the same directory
    raw sqlite3
        (issue 16's baseline) stdlib ``sqlite3``, WAL, ``synchronous=NORMAL``, table
        ``events(position INTEGER PRIMARY KEY, stream TEXT, version INTEGER, data BLOB,
        UNIQUE(stream, version))``: one transaction per 1000 rows ``(stream, version,
        data)``, inserted with ``executemany``. The rows are the same msgpack bytes the
        store writes, encoded *before* timing. This is the headline ratio (store/raw);
        the bar is ``--bar`` (default 0.6).
    raw sqlite3, same schema
        (secondary) the very rows the store wrote (position, stream_id, version, 16-byte
        event id, recorded_at, data, 32-byte hash), read back from the store's file
        before timing and inserted with ``executemany`` into a table with the store's
        columns and its two unique indexes, 1000 rows per transaction. The gap between
        this and the store is the store's own Python overhead (encoding, ids, hashing,
        the head/stream look-ups and the ``streams`` update); the gap between this and
        "raw sqlite3" is the price of the wider rows and the indexes.
    the ladder (``--no-ladder`` skips it)
        the raw baseline's table widened one guarantee at a time, raw ``executemany``
        again, once per round: + a 16-byte event id under a UNIQUE index, time-ordered
        (the store's UUIDv7 ids); the same with random (UUIDv4) ids instead, which is
        what time-ordering saves; + ``recorded_at`` and a 32-byte hash column. Printed
        with each rung's ratio to the raw baseline.
    CPU
        the process's CPU time (all threads) over the same timed parts, per event, for
        raw and store (least of the rounds), and the store's own Python work per event
        on one batch (CPU ns, best of 5: ``encode_batch``, event ids, ``chain_batch``,
        the ``INSERT`` parameters). On a loaded machine these move far less than the
        wall-clock figures.

In every case the event objects are built before timing, one batch at a time, so that
building them is not measured and a million events are never in memory at once; only
the append/insert+commit of each batch is timed (``time.perf_counter``). Closing the
connections (the final WAL checkpoint) is not timed, for any side.

Repeats: best of N, interleaved
    The three sides run ``--repeat N`` times (default 3) in rounds, interleaved: raw,
    store, same schema, raw, store, same schema, ... Every run writes a fresh file (the
    same-schema run of a round copies the rows of that round's store file); a round's
    files are deleted when it ends, unless ``--keep``. For each side the script reports
    the best (highest events/s) and the median of its N runs; the headline ratios are
    best/best, because on a noisy machine interference only ever slows a run down, so
    the best run is the closest to what the code itself can do. Every sample is in the
    JSON line as well (``raw_samples``, ``store_samples``, ``raw_same_schema_samples``),
    with the ratios of the medians next to the headline ones.

Run ``python benchmarks/bench_append.py`` (1,000,000 events, 3 rounds) or
``--events 5000`` for a smoke run. The last line of output is one JSON object with the
figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter, process_time, thread_time

from _shared import RAW_EVENTS_INSERT, best_and_median, metrics, raw_events_connect, remove_db

from eventstore import RunInitialized, StepLogged, default_codec, event_id_bytes, open_store
from eventstore._batch import AppendPlan, encode_batch
from eventstore._chain import chain_batch
from eventstore._sqlite_writes import _rows
from projections import run_heads

STREAM = "run:bench/r1"

STORE_SCHEMA = (
    """CREATE TABLE events (
        position    INTEGER PRIMARY KEY,
        stream_id   INTEGER NOT NULL,
        version     INTEGER NOT NULL,
        event_id    BLOB NOT NULL,
        recorded_at INTEGER NOT NULL,
        data        BLOB NOT NULL,
        hash        BLOB NOT NULL
    )""",
    "CREATE UNIQUE INDEX events_by_stream ON events (stream_id, version)",
    "CREATE UNIQUE INDEX events_by_id ON events (event_id)",
)
STORE_COLUMNS = "position, stream_id, version, event_id, recorded_at, data, hash"


def batches(events: int, batch: int) -> Iterator[list[StepLogged]]:
    """The events ``0 .. events-1`` as lists of at most ``batch``, built lazily."""
    for start in range(0, events, batch):
        stop = min(start + batch, events)
        yield [StepLogged(incarnation=1, step=i, metrics=metrics(i)) for i in range(start, stop)]


def connect_raw(path: Path) -> sqlite3.Connection:
    """A stdlib connection with the store's pragmas: WAL, ``synchronous=NORMAL``."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


CPU_US: dict[str, list[float]] = {"raw": [], "store": [], "heads": []}
"""CPU microseconds per event of the process (all threads) in the timed parts, per side."""


async def store_rate(path: Path, events: int, batch: int, heads: bool = False) -> float:
    """Events/s of ``store.append`` in batches of ``batch``; with ``heads``, through a
    store that keeps run heads in every append (as every store ``api`` opens does)."""
    elapsed = 0.0
    cpu = 0.0
    async with open_store(path, inline=run_heads() if heads else None) as store:
        if heads:  # a started run (untimed), so that every step is folded into its head
            await store.append(
                STREAM,
                [
                    RunInitialized(
                        project="bench", run_id="r1", incarnation=1, resumed=False, starting_step=0
                    )
                ],
            )
        for chunk in batches(events, batch):
            start, start_cpu = perf_counter(), process_time()
            await store.append(STREAM, chunk)
            elapsed += perf_counter() - start
            cpu += process_time() - start_cpu
    CPU_US["heads" if heads else "store"].append(cpu / events * 1e6)
    return events / elapsed


def raw_rate(path: Path, events: int, batch: int) -> tuple[float, float]:
    """Events/s of raw ``executemany`` into the baseline's ``events`` table (a primary key
    and ``UNIQUE(stream, version)``), and the mean payload size."""
    encode = default_codec.encode
    conn = raw_events_connect(path)
    try:
        elapsed = 0.0
        cpu = 0.0
        total_bytes = 0
        version = 0
        for chunk in batches(events, batch):
            rows = []
            for event in chunk:
                rows.append((STREAM, version, encode(event)))
                version += 1
            total_bytes += sum(len(row[2]) for row in rows)
            start, start_cpu = perf_counter(), process_time()
            conn.execute("BEGIN")
            conn.executemany(RAW_EVENTS_INSERT, rows)
            conn.execute("COMMIT")
            elapsed += perf_counter() - start
            cpu += process_time() - start_cpu
    finally:
        conn.close()
    CPU_US["raw"].append(cpu / events * 1e6)
    return events / elapsed, total_bytes / events


def same_schema_rate(store_path: Path, path: Path, batch: int) -> tuple[float, int]:
    """Events/s of raw ``executemany`` of the store's own rows into the store's schema."""
    source = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
    conn = connect_raw(path)
    try:
        for statement in STORE_SCHEMA:
            conn.execute(statement)
        insert = f"INSERT INTO events ({STORE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        cursor = source.execute(f"SELECT {STORE_COLUMNS} FROM events ORDER BY position")
        elapsed = 0.0
        count = 0
        while rows := cursor.fetchmany(batch):
            start = perf_counter()
            conn.execute("BEGIN")
            conn.executemany(insert, rows)
            conn.execute("COMMIT")
            elapsed += perf_counter() - start
            count += len(rows)
    finally:
        conn.close()
        source.close()
    return count / elapsed, count


LADDER = {
    "event_id": "+ event id, UNIQUE, time-ordered (UUIDv7)",
    "random_id": "+ event id, UNIQUE, random (UUIDv4)",
    "chained": "+ recorded_at and a 32-byte hash",
}
"""The rungs from the raw baseline towards the store's row, each a guarantee's storage."""


def ladder_rate(path: Path, events: int, batch: int, rung: str) -> float:
    """Events/s of raw ``executemany`` into the baseline's table widened by ``rung``:
    what the store's idempotency (a unique event id) and chain (a hash per row) cost
    SQLite, without any of the store's Python work."""
    encode = default_codec.encode
    conn = raw_events_connect(path)
    columns = "stream, version, data, event_id"
    conn.execute("ALTER TABLE events ADD COLUMN event_id BLOB")
    if rung == "chained":
        conn.execute("ALTER TABLE events ADD COLUMN recorded_at INTEGER")
        conn.execute("ALTER TABLE events ADD COLUMN hash BLOB")
        columns += ", recorded_at, hash"
    conn.execute("CREATE UNIQUE INDEX events_by_id ON events (event_id)")
    marks = ", ".join("?" * len(columns.split(", ")))
    insert = f"INSERT INTO events ({columns}) VALUES ({marks})"
    try:
        elapsed = 0.0
        version = 0
        for chunk in batches(events, batch):
            if rung == "random_id":
                ids = [os.urandom(16) for _ in chunk]
            else:
                ids = event_id_bytes(len(chunk))
            rows: list[tuple[object, ...]] = []
            for event, event_id in zip(chunk, ids, strict=True):
                row: tuple[object, ...] = (STREAM, version, encode(event), event_id)
                if rung == "chained":
                    row += (1_700_000_000_000_000, os.urandom(32))
                rows.append(row)
                version += 1
            start = perf_counter()
            conn.execute("BEGIN")
            conn.executemany(insert, rows)
            conn.execute("COMMIT")
            elapsed += perf_counter() - start
    finally:
        conn.close()
    return events / elapsed


def python_costs(events: int, batch: int) -> dict[str, float]:
    """CPU nanoseconds per event of the store's own Python work on a batch: encoding
    (with the type checks), ids, the hash chain, the INSERT parameters."""
    chunk = next(batches(min(events, batch), batch))
    ids, datas = encode_batch(default_codec, chunk, 1 << 30)
    plan = AppendPlan(STREAM, "any", (1, 9, 10, 0, bytes(32)), ids, datas, lambda: 1.0)
    work = {
        "encode": lambda: encode_batch(default_codec, chunk, 1 << 30),
        "ids": lambda: event_id_bytes(len(chunk)),
        "chain": lambda: chain_batch(bytes(32), STREAM, 11, 10, 1, ids, datas),
        "parameters": lambda: _rows(plan, 1, ids, datas),
    }
    costs: dict[str, float] = {}
    for name, fn in work.items():
        best = float("inf")
        for _ in range(5):
            began = thread_time()
            for _ in range(20):
                fn()
            best = min(best, (thread_time() - began) / 20 / len(chunk) * 1e9)
        costs[name] = best
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to append")
    parser.add_argument("--batch", type=int, default=1000, help="events per append/transaction")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of (raw, store, same schema), interleaved; best and median reported",
    )
    parser.add_argument(
        "--bar", type=float, default=0.6, help="the store/raw ratio the append must reach"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to make the temporary working directory (default: the system temp dir); "
        "put it on the disk you care about, not on a tmpfs",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database files")
    parser.add_argument(
        "--no-ladder",
        action="store_true",
        help="skip the raw rungs between the baseline and the store's row",
    )
    args = parser.parse_args()
    if min(args.events, args.batch, args.repeat) < 1:
        parser.error("--events, --batch and --repeat must be positive")

    workdir = Path(tempfile.mkdtemp(prefix="runlog-bench-append-", dir=args.dir))
    try:
        run(
            args.events,
            args.batch,
            args.repeat,
            workdir,
            keep=args.keep,
            bar=args.bar,
            ladder=not args.no_ladder,
        )
    finally:
        if args.keep:
            print(f"kept the database files in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(
    events: int,
    batch: int,
    repeat: int,
    workdir: Path,
    *,
    keep: bool,
    bar: float,
    ladder: bool,
) -> None:
    print(
        f"append: {events:,} StepLogged events (4 metrics) in batches of {batch:,}, "
        f"one stream, SQLite {sqlite3.sqlite_version}, WAL, synchronous=NORMAL; "
        f"best of {repeat}, interleaved (raw, store, same schema, raw, ...), fresh files"
    )
    raw_samples: list[float] = []
    store_samples: list[float] = []
    heads_samples: list[float] = []
    same_samples: list[float] = []
    rung_samples: dict[str, list[float]] = {rung: [] for rung in LADDER} if ladder else {}
    event_bytes = 0.0
    for round_number in range(1, repeat + 1):
        raw_path = workdir / f"raw-{round_number}.db"
        store_path = workdir / f"store-{round_number}.db"
        same_path = workdir / f"same_schema-{round_number}.db"
        raw, event_bytes = raw_rate(raw_path, events, batch)
        store = asyncio.run(store_rate(store_path, events, batch))
        heads_path = workdir / f"heads-{round_number}.db"
        heads = asyncio.run(store_rate(heads_path, events, batch, heads=True))
        remove_db(heads_path)
        heads_samples.append(heads)
        same, copied = same_schema_rate(store_path, same_path, batch)
        if copied != events:
            raise SystemExit(f"the store holds {copied} events, expected {events}")
        raw_samples.append(raw)
        store_samples.append(store)
        same_samples.append(same)
        print(
            f"  round {round_number}/{repeat}: raw {raw:,.0f}, store {store:,.0f}, store "
            f"keeping run heads {heads:,.0f}, same schema {same:,.0f} events/s"
        )
        for rung, samples in rung_samples.items():
            rung_path = workdir / f"{rung}-{round_number}.db"
            samples.append(ladder_rate(rung_path, events, batch, rung))
            remove_db(rung_path)
        if not keep:
            for path in (raw_path, store_path, same_path):
                remove_db(path)

    raw_best, raw_median = best_and_median(raw_samples)
    store_best, store_median = best_and_median(store_samples)
    same_best, same_median = best_and_median(same_samples)
    heads_best, heads_median = best_and_median(heads_samples)
    print(f"  {'':43}{'best events/s':>15}{'median events/s':>17}")
    for label, best, median in (
        ("raw sqlite3 (PK + UNIQUE(stream, version))", raw_best, raw_median),
        ("runlog store.append", store_best, store_median),
        ("runlog store.append keeping run heads (api)", heads_best, heads_median),
        ("raw sqlite3, same schema (store's rows)", same_best, same_median),
    ):
        print(f"  {label:43}{best:>15,.0f}{median:>17,.0f}")
    print(f"  payload: {event_bytes:.1f} bytes per event on average (msgpack)")
    rungs = {rung: best_and_median(samples)[0] for rung, samples in rung_samples.items()}
    if rungs:
        print("  what each guarantee costs SQLite (raw executemany, best; ratio to raw):")
        for rung, rate in rungs.items():
            print(f"    {LADDER[rung]:45}{rate:>12,.0f}  {rate / raw_best:.3f}")
    cpu = {side: min(values) for side, values in CPU_US.items()}
    print(
        f"  CPU time (us/event, least of {repeat}): raw {cpu['raw']:.2f}, store "
        f"{cpu['store']:.2f}; raw/store {cpu['raw'] / cpu['store']:.3f}; keeping run heads "
        f"{cpu['heads']:.2f} (+{cpu['heads'] - cpu['store']:.2f}: the inline projection); "
        f"raw/that {cpu['raw'] / cpu['heads']:.3f}"
    )
    costs = python_costs(events, batch)
    print(
        "  the store's Python work per event (CPU ns, best of 5): "
        + ", ".join(f"{name} {ns:.0f}" for name, ns in costs.items())
    )
    print(
        f"  ratio store/raw sqlite3 (best of {repeat}, interleaved):               {store_best / raw_best:.3f}"
    )
    print(
        f"  ratio store/raw sqlite3, same schema (best of {repeat}, interleaved):  {store_best / same_best:.3f}"
    )
    print(
        f"  (ratios of the medians: {store_median / raw_median:.3f} and "
        f"{store_median / same_median:.3f})"
    )
    print(
        f"  ratio store keeping run heads/raw sqlite3 (best of {repeat}):           "
        f"{heads_best / raw_best:.3f}"
    )
    ratio = store_best / raw_best
    print(
        f"  bar {bar:g} of raw sqlite3: store {'met' if ratio >= bar else 'NOT met'}, keeping "
        f"run heads {'met' if heads_best / raw_best >= bar else 'NOT met'}"
    )
    print(
        json.dumps(
            {
                "bench": "append",
                "events": events,
                "batch": batch,
                "repeat": repeat,
                "aggregate": f"best of {repeat}, interleaved",
                "event_bytes": round(event_bytes, 1),
                "store_events_per_s": round(store_best),
                "raw_events_per_s": round(raw_best),
                "ratio": round(store_best / raw_best, 3),
                "heads_events_per_s": round(heads_best),
                "ratio_with_heads": round(heads_best / raw_best, 3),
                "meets_bar_with_heads": heads_best / raw_best >= bar,
                "heads_samples": [round(x) for x in heads_samples],
                "bar": bar,
                "meets_bar": store_best / raw_best >= bar,
                "raw_baseline": "events(position PK, stream, version, data, UNIQUE(stream, version))",
                "raw_same_schema_events_per_s": round(same_best),
                "ratio_same_schema": round(store_best / same_best, 3),
                "store_events_per_s_median": round(store_median),
                "raw_events_per_s_median": round(raw_median),
                "raw_same_schema_events_per_s_median": round(same_median),
                "ratio_of_medians": round(store_median / raw_median, 3),
                "ratio_same_schema_of_medians": round(store_median / same_median, 3),
                "store_samples": [round(x) for x in store_samples],
                "raw_samples": [round(x) for x in raw_samples],
                "raw_same_schema_samples": [round(x) for x in same_samples],
                "ladder_events_per_s": {rung: round(rate) for rung, rate in rungs.items()},
                "cpu_us_per_event": {side: round(us, 3) for side, us in cpu.items()},
                "python_ns_per_event": {name: round(ns) for name, ns in costs.items()},
                "sqlite": sqlite3.sqlite_version,
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
