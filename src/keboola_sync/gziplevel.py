"""Which gzip level moves a file from "saved" to "uploaded" fastest, given the uplink and this machine.

Why: the upload overlaps the pass (overlap.py), so a load goes at the pace of the slower of the two:
the pass compressing at level L (this machine's CPU cost of L) and the uplink carrying the compressed
bytes (the uplink times L's ratio, in source bytes per second). On a slow uplink a higher level sends
fewer bytes and wins; on a fast one the compressor becomes the limit and a fast level wins. The choice
is `argmax_L min(compress rate_L, uplink x ratio_L)`. Pure: the numbers come in, a level goes out
(measuring them is gzipauto.py's job), so the rule is tested on a table of cases.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

MB = 1_000_000
# Before any upload is measured: level 1, the old fixed default. It keeps a 1000 Mbit/s uplink busy at a
# fraction of a core; on a 20 Mbit/s one it costs ~20% more time than the best level (docs/benchmarks.md,
# "gzip level per uplink"), while a high level guessed for a fast uplink would cost 3-4x. The first
# big upload measures the uplink and the next load chooses.
FIRST_LEVEL = 1
# Leave the current level only for a predicted gain above 10%: the measured rates wobble by that much
# from one upload to the next, and a level that flips every load helps nobody.
SWITCH_GAIN = 1.10
# Levels whose predicted rates are this close count as equal; the one using less CPU is taken. 5 %: the
# prediction is that good at best (the pass also hashes and checks, the upload itself costs CPU, and other
# work shares the cores), and a level costing more CPU for a predicted 2 % lost 23 % at 1000 Mbit/s in
# the uplink grid (docs/benchmarks.md).
TIE = 0.05
# Uploads this small say more about request latency than about the uplink's rate.
MIN_OBSERVED_BYTES = 8 * MB
MIN_OBSERVED_SECONDS = 0.02  # compression shorter than this is timer noise
MIN_SHARE = 0.05  # a starved machine still compresses; never count on less than 1/20 of a core
KEPT_OBSERVATIONS = 5  # the median of the last few passes: one slow pass does not move the level
# The uplink is the fastest of the last few uploads: a faster uplink is believed at once, a slower one
# after this many big uploads. The errors cost unequally: taking the uplink for faster than it is picks a
# faster level and sends at most ~20% more bytes; taking it for slower picks a level whose CPU, not the
# uplink, sets the pace, up to 3x slower (docs/benchmarks.md, "gzip level per uplink").
KEPT_UPLOADS = 3
# The share of the cores a pass counts on, besides what other work is seen to hold (CpuShare): a level's
# cost measured on 512 KiB can be off by that much. Too low a guess costs a few percent of bytes; too high
# a guess makes the CPU, not the uplink, set the pace, which costs far more.
CPU_HEADROOM = 0.75


@dataclass(frozen=True)
class LevelCost:
    """What one level does to this machine's data: the ratio (source / compressed bytes) and the CPU
    seconds one core spends compressing one MB of source."""

    level: int
    ratio: float
    cpu_per_mb: float


@dataclass(frozen=True)
class Machine:
    """This machine as the pass sees it: cores the pass and its gzip workers can use, the CPU per MB
    the pass spends besides compressing (hash, CRC, CSV check), and every level's cost."""

    cores: float
    base_cpu_per_mb: float
    levels: tuple[LevelCost, ...]

    def cost(self, level: int) -> LevelCost | None:
        return next((c for c in self.levels if c.level == level), None)


@dataclass(frozen=True)
class Choice:
    level: int
    rate: float  # predicted source MB/s from saved to uploaded
    reason: str


def compress_rate(cost: LevelCost, machine: Machine) -> float:
    """Source MB/s the pass reaches at this level when the uplink is not the limit: the pass and the
    compressor share the cores (pgzip spreads the compression over them), less CPU_HEADROOM."""
    return CPU_HEADROOM * machine.cores / max(machine.base_cpu_per_mb + cost.cpu_per_mb, 1e-9)


def predicted_rate(cost: LevelCost, machine: Machine, uplink_mb_s: float) -> float:
    """Source MB/s from saved to uploaded: the slower of the compressor and the uplink."""
    return min(compress_rate(cost, machine), uplink_mb_s * cost.ratio)


def choose_level(machine: Machine, uplink_mb_s: float | None, current: int | None = None) -> Choice:
    """The level for the next load. No measured uplink yet: FIRST_LEVEL (or the current one). Otherwise
    the fastest predicted level (on a tie, the cheaper one), unless the current level is within
    SWITCH_GAIN of it."""
    if uplink_mb_s is None or uplink_mb_s <= 0 or not machine.levels:
        level = FIRST_LEVEL if current is None else current
        return Choice(level, 0.0, "no upload measured yet")
    rates = {c.level: predicted_rate(c, machine, uplink_mb_s) for c in machine.levels}
    top = max(rates.values())
    close = [c for c in machine.levels if rates[c.level] >= top * (1 - TIE)]
    best = min(close, key=lambda c: (c.cpu_per_mb, -c.ratio))
    kept = machine.cost(current) if current is not None else None
    if kept is not None and kept.level != best.level and rates[kept.level] * SWITCH_GAIN >= rates[best.level]:
        best = kept
    limit = "the uplink" if uplink_mb_s * best.ratio <= compress_rate(best, machine) else "the CPU"
    reason = (
        f"uplink {uplink_mb_s:.1f} MB/s, {machine.cores:.2g} core(s): level {best.level} predicts"
        f" {rates[best.level]:.0f} MB/s (ratio {best.ratio:.2f}, limited by {limit})"
    )
    return Choice(best.level, rates[best.level], reason)


def _median(values: deque[float]) -> float:
    """(Not `statistics.median`: that module pulls in `fractions` and `decimal`, start-up time for five
    numbers.)"""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


class CpuShare:
    """How much of a core a gzip worker really gets on this machine now: its CPU time over its wall time
    while it compresses, the median of the last few passes. 1.0 on an idle machine; on a shared one it
    scales the cores the level rule counts on, so a level is not chosen for CPU that other work holds.
    Thread-safe."""

    def __init__(self, kept: int = KEPT_OBSERVATIONS) -> None:
        self._shares: deque[float] = deque(maxlen=kept)
        self._lock = threading.Lock()

    def observe(self, cpu_seconds: float, wall_seconds: float) -> None:
        if wall_seconds < MIN_OBSERVED_SECONDS or cpu_seconds <= 0:
            return  # too short to say anything
        with self._lock:
            self._shares.append(min(1.0, cpu_seconds / wall_seconds))

    def value(self) -> float:
        with self._lock:
            return max(MIN_SHARE, _median(self._shares)) if self._shares else 1.0


class UplinkEstimate:
    """The uplink's rate from the last few uploads: the fastest of their bytes per second of sending
    (KEPT_UPLOADS says why the fastest). Thread-safe: uploads finish on several threads."""

    def __init__(self, kept: int = KEPT_UPLOADS) -> None:
        self._rates: deque[float] = deque(maxlen=kept)
        self._lock = threading.Lock()

    def observe(self, nbytes: int, seconds: float) -> None:
        """One upload: `nbytes` sent in `seconds` of sending (time spent waiting for the compressor
        left out). Small uploads are ignored."""
        if nbytes < MIN_OBSERVED_BYTES or seconds <= 0:
            return
        with self._lock:
            self._rates.append(nbytes / MB / seconds)

    def mb_per_second(self) -> float | None:
        with self._lock:
            return max(self._rates) if self._rates else None
