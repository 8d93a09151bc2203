"""Bayes search against random search with the same budget, on standard test functions.

What it measures
    For each test function (Branin, 2 parameters, minimum 0.397887; Hartmann-6, 6
    parameters in 0..1, minimum -3.32237) and each of ``--seeds`` sweep seeds, two
    sweeps run in a fresh SQLite file through the real path: ``api.create_sweep`` with
    ``method: bayes`` (then the same config with ``method: random``) and the same seed,
    ``api.register_agent``, then ``--budget`` times: ``api.claim``, the run started as
    an agent's child starts it (``RUNLOG_SWEEP_ID`` set, ``api.init(id=run_id,
    resume="allow")``), the function's value at the claimed parameters logged as the
    metric ``y``, the run finished. So bayes learns from what the log holds, exactly as
    a real sweep does.
    Reported per function and method: the best value reached, averaged over the seeds,
    and its gap to the known minimum (the regret). ``ratio`` = random's mean regret /
    bayes' mean regret (above 1: bayes got closer with the same budget), per function
    and as the geometric mean over both.
    Also the time of each ``api.claim`` call (``time.perf_counter``), median and p99,
    per method: the bayes claim includes reading the sweep's runs and fitting the
    Gaussian process; the random claim is the baseline (``claim_ratio`` = random
    median / bayes median, as in the scripts that time single operations). And one
    long bayes sweep on Hartmann-6 of ``--long`` runs (default 400, the most recent runs
    a claim reads): the median and p99 of its last 20 claims, when the model is fitted
    at its cap of points (``claim_long_*``). The first
    fit in a process imports scikit-learn; that one-time cost is timed on its own
    beforehand (``sklearn_import_ms``) so it does not land in one claim's time.

Size
    ``--budget`` runs per sweep (default 40), ``--seeds`` seeds (default 5). ``--events
    N``, which the suite's smoke run passes to every benchmark, has no meaning here; it
    selects a smoke run (budget 10, 2 seeds, a long sweep of 15 runs) that finishes in
    seconds.

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from typing import Any

import api

BRANIN_MIN = 0.397887
HARTMANN6_MIN = -3.32237
_A = [
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
]
_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]
_ALPHA = [1.0, 1.2, 3.0, 3.2]


def branin(p: dict[str, float]) -> float:
    """Branin-Hoo on x1 in -5..10, x2 in 0..15; three global minima of 0.397887."""
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(p: dict[str, float]) -> float:
    """Hartmann-6 on 0..1 in each coordinate; global minimum -3.32237."""
    x = [p[f"x{i + 1}"] for i in range(6)]
    return -sum(
        alpha * math.exp(-sum(a * (xi - pi) ** 2 for a, xi, pi in zip(row, x, prow, strict=True)))
        for alpha, row, prow in zip(_ALPHA, _A, _P, strict=True)
    )


FUNCTIONS: dict[str, tuple[Callable[[dict[str, float]], float], dict[str, Any], float]] = {
    "branin": (
        branin,
        {"x1": {"min": -5.0, "max": 10.0}, "x2": {"min": 0.0, "max": 15.0}},
        BRANIN_MIN,
    ),
    "hartmann6": (
        hartmann6,
        {f"x{i + 1}": {"min": 0.0, "max": 1.0} for i in range(6)},
        HARTMANN6_MIN,
    ),
}


async def one_sweep(
    path: Path, method: str, name: str, seed: int, budget: int
) -> tuple[float, list[float]]:
    """Run one sweep of ``budget`` runs; the best value and the claim times (s)."""
    f, parameters, _ = FUNCTIONS[name]
    config = {
        "method": method,
        "metric": {"name": "y", "goal": "minimize"},
        "parameters": parameters,
    }
    store = str(path)
    sweep_id = await api.create_sweep(config, project="bench", store=store, seed=seed)
    await api.register_agent(sweep_id, store=store, agent_id="agent-1")
    best = math.inf
    claims: list[float] = []
    for _ in range(budget):
        began = perf_counter()
        work = await api.claim(sweep_id, "agent-1", store=store)
        claims.append(perf_counter() - began)
        assert work is not None, "a bayes or random sweep never runs out of suggestions"
        os.environ["RUNLOG_SWEEP_ID"] = sweep_id
        try:
            async with api.init(
                project="bench", id=work.run_id, resume="allow", store=store
            ) as run:
                value = f(work.params)
                await run.log({"y": value})
        finally:
            del os.environ["RUNLOG_SWEEP_ID"]
        best = min(best, value)
    return best, claims


def nearest_rank(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-percent * len(ordered) // 100) - 1)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--long", type=int, default=400, help="runs of the long bayes sweep")
    parser.add_argument("--events", type=int, default=None, help="smoke run (see the docstring)")
    args = parser.parse_args()
    smoke = args.events is not None
    budget, seeds, long = (10, 2, 15) if smoke else (args.budget, args.seeds, args.long)
    print(f"bayes vs random, {budget} runs per sweep, {seeds} seeds per function")
    figures: dict[str, Any] = {"budget": budget, "seeds": seeds, "smoke": smoke}
    began = perf_counter()
    import sklearn.gaussian_process  # noqa: F401  (the one-time cost, timed on its own)

    figures["sklearn_import_ms"] = round((perf_counter() - began) * 1e3, 1)
    print(f"one-time import of scikit-learn: {figures['sklearn_import_ms']:.0f} ms")
    claim_times: dict[str, list[float]] = {"bayes": [], "random": []}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (_, _, minimum) in FUNCTIONS.items():
            best: dict[str, list[float]] = {"bayes": [], "random": []}
            for seed in range(seeds):
                for method in ("bayes", "random"):
                    path = Path(tmp) / f"{name}-{method}-{seed}.db"
                    value, claims = await one_sweep(path, method, name, seed, budget)
                    best[method].append(value)
                    claim_times[method].extend(claims)
            regret = {m: statistics.mean(v) - minimum for m, v in best.items()}
            ratio = regret["random"] / max(regret["bayes"], 1e-9)
            ratios.append(ratio)
            for method in ("bayes", "random"):
                print(
                    f"{name:10s} {method:6s} best {statistics.mean(best[method]):9.4f} "
                    f"(regret {regret[method]:.4f}; per seed "
                    + ", ".join(f"{v:.3f}" for v in best[method])
                    + ")"
                )
            print(f"{name:10s} ratio (random regret / bayes regret) {ratio:.2f}")
            figures[name] = {
                "minimum": minimum,
                "bayes_best_mean": round(statistics.mean(best["bayes"]), 5),
                "random_best_mean": round(statistics.mean(best["random"]), 5),
                "bayes_regret": round(regret["bayes"], 5),
                "random_regret": round(regret["random"], 5),
                "ratio": round(ratio, 3),
                "bayes_best_samples": [round(v, 5) for v in best["bayes"]],
                "random_best_samples": [round(v, 5) for v in best["random"]],
            }
        _, long_claims = await one_sweep(Path(tmp) / "long.db", "bayes", "hartmann6", 0, long)
    tail = long_claims[-20:]
    figures["claim_long_runs"] = long
    figures["claim_long_median_ms"] = round(statistics.median(tail) * 1e3, 2)
    figures["claim_long_p99_ms"] = round(nearest_rank(tail, 99) * 1e3, 2)
    print(
        f"claim bayes after {long} runs: median {figures['claim_long_median_ms']:.1f} ms, "
        f"p99 {figures['claim_long_p99_ms']:.1f} ms (last 20 claims)"
    )
    for method, times in claim_times.items():
        median_ms, p99_ms = statistics.median(times) * 1e3, nearest_rank(times, 99) * 1e3
        print(f"claim {method:6s} median {median_ms:.1f} ms, p99 {p99_ms:.1f} ms")
        figures[f"claim_{method}_median_ms"] = round(median_ms, 2)
        figures[f"claim_{method}_p99_ms"] = round(p99_ms, 2)
    figures["claim_ratio"] = round(
        figures["claim_random_median_ms"] / figures["claim_bayes_median_ms"], 4
    )
    figures["ratio"] = round(math.exp(statistics.mean(math.log(r) for r in ratios)), 3)
    print(f"ratio (geometric mean over the functions) {figures['ratio']:.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
