"""A tamper campaign against ``runlog verify``: count tracebacks and silent passes.

Not collected by pytest (its name does not start with ``test_``); the suite runs a
small seeded share of the same trials in tests/auditing/test_tamper_fuzz.py. Run it
from the repository root::

    .venv/bin/python -m tests.tamper_campaign            # 300 row changes, 50 file flips
    .venv/bin/python -m tests.tamper_campaign --rows 30 --flips 10 --seed 7

On a small store holding a story (a preempted and resumed run with a saved file, a
sweep whose first run waits in its queue), each trial changes one byte of a fresh
copy (see tests/_tamper.py) and runs ``runlog verify`` as a real process, once
checking in this process (``--workers 0``) and once with two worker processes
(``--modes alternate``: one of the two, in turn, for half the time). A
*traceback* is a crash, a hang or an error that is not one line; a *silent pass* is
exit 0 although the events' rows changed. The bar is 0 and 0. The last line is one
JSON object of the counts.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections import Counter
from pathlib import Path

import anyio

from tests._tamper import Verdict, trial
from tests.auditing.conftest import write_story


def main() -> int:
    """Run the campaign; exit 1 if any trial crashed or passed silently."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300, help="single-byte row changes")
    parser.add_argument("--flips", type=int, default=50, help="random file byte flips")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--show", action="store_true", help="print a bad trial's whole output")
    parser.add_argument(
        "--modes",
        choices=("both", "alternate", "flipped"),
        default="both",
        help="verify each change here and with workers (both), or one of them in turn "
        "(alternate; flipped is the other one for each change)",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    verdicts: list[Verdict] = []
    with tempfile.TemporaryDirectory(prefix="runlog-tamper-") as tmp:
        root = Path(tmp)
        original = root / "story" / "log.db"
        original.parent.mkdir()
        anyio.run(write_story, original, original.parent)
        plan = ["row"] * args.rows + ["file"] * args.flips
        for number, kind in enumerate(plan, 1):
            here = number % 2 == (1 if args.modes == "alternate" else 0)
            modes = (0, 2) if args.modes == "both" else ((0,) if here else (2,))
            found = trial(original, root / "scratch", kind, rng, workers=modes)
            verdicts += found
            for verdict in found:
                if verdict.traceback or verdict.silent_pass:
                    print("BAD", verdict.describe(), flush=True)
                    if args.show:
                        print(verdict.stdout + verdict.stderr, flush=True)
            if number % 25 == 0:
                print(f"{number}/{len(plan)} trials", flush=True)
    outcomes: Counter[str] = Counter()
    for verdict in verdicts:
        if verdict.traceback:
            outcomes["traceback"] += 1
        elif verdict.silent_pass:
            outcomes["silent_pass"] += 1
        elif verdict.exit_code == 0:
            outcomes["ok_log_untouched"] += 1
        else:
            outcomes[f"reported_exit_{verdict.exit_code}"] += 1
    figures = {
        "seed": args.seed,
        "row_changes": args.rows,
        "file_flips": args.flips,
        "verify_runs": len(verdicts),
        "log_touched": sum(v.touched_log for v in verdicts),
        "tracebacks": outcomes["traceback"],
        "silent_passes": outcomes["silent_pass"],
        **{k: v for k, v in sorted(outcomes.items()) if k not in ("traceback", "silent_pass")},
    }
    for name, value in figures.items():
        print(f"{name}: {value}")
    print(json.dumps(figures))
    return 1 if outcomes["traceback"] or outcomes["silent_pass"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
