"""What a resume's settling of a tracker's runs against the records shares (MLflow,
TensorBoard): the first step where a run and the trial's kept history part."""

from __future__ import annotations

from typing import Iterable, Mapping


def same(a: float, b: float) -> bool:
    """Whether two logged values are the same point (NaN, as a diverged trial reports it, is
    the same as NaN)."""
    return a == b or (a != a and b != b)


def parted(shown: Mapping[int, Mapping[str, Iterable[float]]], kept: Mapping[int, Mapping[str, float]]) -> int | None:
    """The first step at which a run shows a point the records do not keep: one at a step
    the kept history lacks, or another value than the kept row's (a lost attempt's, or one
    logged before the write a crash cut). ``shown``: step -> {key: every value logged there};
    ``kept``: step -> {key: value}, as the tracker stores it. None: the run shows only kept
    points (it may lack some)."""

    def agrees(step: int, points: Mapping[str, Iterable[float]]) -> bool:
        row = kept.get(step)
        return row is not None and all(key in row and all(same(row[key], v) for v in values)
                                       for key, values in points.items())

    return min((step for step, points in shown.items() if not agrees(step, points)), default=None)
