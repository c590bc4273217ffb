"""One row of the benchmark table, and how a row is judged."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    """`ours` and `baseline` are in `unit`; `ratio` is what the target is stated in (None when the
    target is absolute, e.g. peak RSS). `details` carries the numbers that explain the row."""

    number: int
    name: str
    unit: str
    ours: float | None
    baseline: float | None
    baseline_name: str
    ratio: float | None
    target: str
    passed: bool | None
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    # The file storage the row ran on (rows 1-3 run once per provider: aws, azure, gcp); None = not per provider.
    provider: str | None = None

    @property
    def label(self) -> str:
        """The row's number as the table prints it: `1 aws`, `1 azure`, ... or just `4`."""
        return f"{self.number} {self.provider}" if self.provider else str(self.number)

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        return "-" if self.passed is None else ("pass" if self.passed else "FAIL")


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "MB":
        return f"{value:.0f} MB"
    if abs(value) >= 100:
        return f"{value:.0f} {unit}".strip()
    if abs(value) >= 10:
        return f"{value:.1f} {unit}".strip()
    return f"{value:.2f} {unit}".strip()
