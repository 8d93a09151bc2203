"""Small event builders for the conformance tests."""

from __future__ import annotations

from eventstore import RecordedEvent, StepLogged


def steps(start: int, count: int, incarnation: int = 1) -> list[StepLogged]:
    return [
        StepLogged(incarnation=incarnation, step=s, metrics={"loss": 1.0 / (s + 1), "acc": s / 10})
        for s in range(start, start + count)
    ]


def step_numbers(records: list[RecordedEvent]) -> list[int]:
    out = []
    for record in records:
        assert isinstance(record.event, StepLogged)
        out.append(record.event.step)
    return out
