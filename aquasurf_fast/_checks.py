"""Checks of the numbers a user passes: each refuses a bad value with one error that names the
argument, the value and what is allowed, before any work is done."""
from __future__ import annotations

import math
import numbers
from typing import Any, Type


def check_int(name: str, value: Any, minimum: int, error: Type[Exception] = ValueError) -> int:
    """``value`` as an int when it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise error(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive(name: str, value: Any, unit: str, error: Type[Exception] = ValueError) -> float:
    """``value`` as a float when it is a finite number > 0 (in ``unit``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):
        raise error(f"{name} must be a number > 0 ({unit}), got {value!r}")
    return float(value)


__all__ = ["check_int", "check_positive"]
