"""The gzip level rule (gziplevel.choose_level) on a table of uplinks and cores, with this project's own
measured costs, and the measuring half (gzipauto) on a real sample."""

from __future__ import annotations

import pytest

from keboola_sync.gzipauto import AutoLevel, measure_machine
from keboola_sync.gziplevel import (
    FIRST_LEVEL,
    MB,
    MIN_SHARE,
    TIE,
    CpuShare,
    LevelCost,
    Machine,
    UplinkEstimate,
    choose_level,
    compress_rate,
    predicted_rate,
)

# `benchmarks/gzip_levels.py --size-mb 300 --libraries` (2026-11-30, 2 CPUs): the compress-only CPU seconds
# for 301 MB and the ratio per level, and the pass's own CPU (level-1 pass minus level-1 compression).
MEASURED = {0: (4.29, 0.42), 1: (5.10, 0.40), 2: (5.21, 0.41), 3: (5.52, 0.82), 4: (5.64, 3.33)}
MEASURED |= {5: (5.97, 4.23), 6: (6.05, 4.95), 7: (6.16, 5.76), 8: (6.18, 7.48), 9: (6.18, 7.57)}
SOURCE_MB = 301.0
BASE_CPU_PER_MB = 0.22 / SOURCE_MB


def machine(cores: float) -> Machine:
    costs = tuple(LevelCost(level, ratio, cpu / SOURCE_MB) for level, (ratio, cpu) in MEASURED.items())
    return Machine(cores, BASE_CPU_PER_MB, costs)


def mbit(rate: float) -> float:
    return rate / 8  # Mbit/s -> MB/s


@pytest.mark.parametrize(
    ("uplink_mbit", "cores", "level"),
    [
        # 20 Mbit/s: the uplink is the limit at every level; 5 sends 16% fewer bytes than 1, and 6-9 save
        # under 5% more for far more CPU (a tie, the cheaper wins).
        (20, 2, 5),
        (20, 1, 5),
        # 100 Mbit/s: two cores keep zlib level 5 ahead of the uplink (6 and 7: a tie); one core only ISA-L's 3.
        (100, 2, 5),
        (100, 1, 3),
        # 1000 Mbit/s: only ISA-L keeps up; level 2's predicted 2% over level 1 is a tie, and 3 would make
        # the CPU the limit.
        (1000, 2, 1),
        (1000, 1, 1),
    ],
)
def test_level_per_uplink_and_cores(uplink_mbit: float, cores: int, level: int) -> None:
    choice = choose_level(machine(cores), mbit(uplink_mbit))
    assert choice.level == level, choice.reason
    rates = {c.level: predicted_rate(c, machine(cores), mbit(uplink_mbit)) for c in machine(cores).levels}
    assert choice.rate == pytest.approx(rates[level])
    assert max(rates.values()) * (1 - TIE) <= choice.rate  # never more than a tie below the best


def test_slow_uplink_is_limited_by_the_uplink_and_fast_by_the_cpu() -> None:
    assert "limited by the uplink" in choose_level(machine(2), mbit(20)).reason
    fast = choose_level(machine(1), mbit(10_000))
    assert "limited by the CPU" in fast.reason
    assert fast.level in (0, 1, 2)  # ISA-L only


def test_no_measured_uplink_keeps_the_first_level_or_the_current_one() -> None:
    assert choose_level(machine(2), None).level == FIRST_LEVEL
    assert choose_level(machine(2), None, current=6).level == 6
    assert choose_level(Machine(2, 0.0, ()), mbit(100)).level == FIRST_LEVEL


def test_hysteresis_keeps_a_level_that_is_nearly_as_good() -> None:
    # At 100 Mbit/s on two cores 5 is best (6 and 7 tie with it), but 4 is within 10% of it: a load at 4
    # stays at 4.
    assert choose_level(machine(2), mbit(100), current=4).level == 4
    # Level 1 is 15% slower than 5 there: it moves.
    assert choose_level(machine(2), mbit(100), current=1).level == 5
    # A level the machine does not list (never measured) is simply replaced.
    assert choose_level(machine(2), mbit(100), current=42).level == 5


def test_the_level_does_not_flap_as_the_uplink_wobbles() -> None:
    level = None
    levels = []
    for rate in (100, 92, 108, 95, 105, 90, 110):  # +-10% around 100 Mbit/s
        level = choose_level(machine(2), mbit(rate), current=level).level
        levels.append(level)
    assert len(set(levels[1:])) == 1, levels


def test_two_passes_at_once_share_the_cores() -> None:
    assert compress_rate(machine(1).levels[6], machine(1)) == pytest.approx(
        compress_rate(machine(2).levels[6], machine(2)) / 2
    )
    assert choose_level(machine(2 / 2), mbit(100)).level == choose_level(machine(1), mbit(100)).level


def test_uplink_estimate_believes_a_faster_uplink_at_once_and_a_slower_one_after_three_uploads() -> None:
    estimate = UplinkEstimate(kept=3)
    assert estimate.mb_per_second() is None
    estimate.observe(1 * MB, 0.001)  # small: latency, not rate; ignored
    assert estimate.mb_per_second() is None
    for seconds in (40.0, 40.0, 8.0):  # 100 MB each: 2.5 MB/s, then the uplink jumps to 12.5 MB/s
        estimate.observe(100 * MB, seconds)
    assert estimate.mb_per_second() == pytest.approx(12.5)  # believed at once: a faster level, never a CPU-bound one
    estimate.observe(100 * MB, 40.0)
    estimate.observe(100 * MB, 40.0)
    assert estimate.mb_per_second() == pytest.approx(12.5)  # still among the last three
    estimate.observe(100 * MB, 40.0)
    assert estimate.mb_per_second() == pytest.approx(2.5)  # three slow uploads: the uplink is slow now
    estimate.observe(100 * MB, 0.0)  # no time: ignored
    assert estimate.mb_per_second() == pytest.approx(2.5)


def csv_sample(size: int = 1 << 20) -> bytes:
    import random

    rng = random.Random(3)
    rows = [
        f"{i},2026-11-{rng.randrange(1, 30):02d},{rng.choice(['Jana', 'Petr', 'Olivia', 'Ravi'])},"
        f"{rng.randrange(1, 10**6)},{rng.random():.4f},{rng.choice(['paid', 'open', 'refunded'])}\n"
        for i in range(size // 40)
    ]
    return "".join(rows).encode()[:size]


def test_measure_machine_on_a_sample_gives_every_level() -> None:
    measured = measure_machine(csv_sample(), threads=2)
    assert [c.level for c in measured.levels] == [0, 1, 2, 3, 4, 5, 6, 7, 9]
    assert all(c.ratio > 1 and c.cpu_per_mb > 0 for c in measured.levels)
    by_level = {c.level: c for c in measured.levels}
    assert by_level[9].ratio > by_level[1].ratio  # zlib's best beats ISA-L's fastest
    assert by_level[9].cpu_per_mb > by_level[1].cpu_per_mb
    assert measured.cores >= 1


def test_auto_level_starts_at_the_first_level_then_follows_the_uplink() -> None:
    auto = AutoLevel()
    sample = csv_sample()
    assert auto.begin(sample, 2) == FIRST_LEVEL  # nothing uploaded yet
    auto.end()
    for _ in range(3):
        auto.uplink.observe(100 * MB, 100.0)  # 1 MB/s: every level's CPU outruns it
    slow = auto.begin(sample, 2)
    auto.end()
    assert slow >= 4  # zlib's smaller output


def test_a_small_first_file_is_no_sample_and_keeps_the_level() -> None:
    auto = AutoLevel()
    auto.uplink.observe(100 * MB, 100.0)
    assert auto.begin(b"id\n1\n", 2) == FIRST_LEVEL  # nothing measured on a few bytes
    auto.end()
    assert auto.begin(csv_sample(), 2) >= 4  # the first big file is measured, the slow uplink is used
    auto.end()


def test_cpu_share_is_the_median_of_recent_passes_and_never_zero() -> None:
    share = CpuShare(kept=3)
    assert share.value() == 1.0  # nothing measured: an idle machine
    share.observe(0.001, 0.001)  # too short to say anything
    assert share.value() == 1.0
    for cpu, wall in ((1.0, 1.0), (0.5, 2.0), (0.2, 1.0), (0.3, 1.0)):  # the first drops out of three kept
        share.observe(cpu, wall)
    assert share.value() == pytest.approx(0.25)
    share.observe(2.0, 1.0)  # rounding: more CPU than wall counts as one whole core
    share.observe(0.001, 10.0)
    share.observe(0.001, 10.0)
    assert share.value() == MIN_SHARE


def test_a_busy_machine_gets_a_faster_level() -> None:
    """Other work holds the CPU (the gzip workers got a fifth of a core): at 100 Mbit/s zlib's level 6
    would make the pass the limit, so an ISA-L level is chosen."""
    levels = {}
    for name, share in (("idle", 1.0), ("busy", 0.2)):
        auto = AutoLevel(machine(2))
        for _ in range(3):
            auto.uplink.observe(100 * MB, 8.0)  # 12.5 MB/s
            auto.end(cpu_seconds=share * 10, wall_seconds=10.0)
        levels[name] = auto.begin(b"", 2)
        auto.end()
    assert levels == {"idle": 5, "busy": 3}  # 0.4 of a core: ISA-L 3 still outruns 12.5 MB/s x 5.5
