"""Timing primitives: per-call latencies, throughput, and contenders measured in turns.

The machine is shared, so a contender and its baseline are never measured one whole run
after the other: :func:`rates_in_turns` and :func:`latencies_in_turns` alternate them in
short rounds (rotating who goes first), and the report reads medians, not means.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

#: One unit of work; returns how many events it handled (1, or a batch's size).
Work = Callable[[], Awaitable[int]]


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``samples`` (``fraction`` 0.5 is the median)."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class Latencies:
    """Seconds per call."""

    samples: list[float] = field(default_factory=list)

    @property
    def p50_ms(self) -> float:
        return percentile(self.samples, 0.5) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.samples, 0.99) * 1000


@dataclass
class Rates:
    """Events per second, one figure per round."""

    rounds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)


async def measure_rate(work: Work, seconds: float) -> float:
    """Call ``work`` back to back for about ``seconds``; events per second."""
    events = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        events += await work()
        now = time.perf_counter()
        if now >= deadline:
            return events / (now - start)


async def rates_in_turns(
    contenders: Mapping[str, Work], *, rounds: int, seconds: float, warmup: int = 3
) -> dict[str, Rates]:
    """Each contender's rate in ``rounds`` alternating turns of ``seconds`` each."""
    names = list(contenders)
    for name in names:
        for _ in range(warmup):
            await contenders[name]()
    result = {name: Rates() for name in names}
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            result[name].rounds.append(await measure_rate(contenders[name], seconds))
    return result


async def latencies_in_turns(
    contenders: Mapping[str, Callable[[int], Awaitable[object]]],
    *,
    rounds: int,
    calls: int,
    warmup: int = 20,
) -> dict[str, Latencies]:
    """Per-call latencies: ``calls`` calls per contender per round, in alternating turns.

    A contender takes the call number, so every contender can be given the same
    sequence of (random) arguments.
    """
    names = list(contenders)
    for name in names:
        for i in range(warmup):
            await contenders[name](i)
    result = {name: Latencies() for name in names}
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            call = contenders[name]
            samples = result[name].samples
            for i in range(round_no * calls, (round_no + 1) * calls):
                start = time.perf_counter()
                await call(i)
                samples.append(time.perf_counter() - start)
    return result
