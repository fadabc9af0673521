"""Kubernetes Quantity strings for metric values, in canonical DecimalSI form.

The HPA parses `value` with resource.ParseQuantity and sums milli-values, so we send milli
precision in the canonical spelling: an integer mantissa with the largest exponent (a multiple of
three) that loses nothing. The decimal is built from the float's shortest repr, never from
`int(v * 1000)`, which turns 1.005 into 1004m.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal

_SUFFIXES = {-3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
MAX_MILLI = 2**63 - 1  # a Quantity's milli-value is an int64


def format_quantity(value: float) -> str:
    """`1.5 -> "1500m"`, `2000 -> "2k"`; NaN, infinities and negatives become "0" (as KEDA does)."""
    if math.isnan(value) or value <= 0:
        return "0"
    milli = MAX_MILLI if math.isinf(value) else _to_milli(value)
    if milli == 0:
        return "0"
    exponent = -3
    while milli % 1000 == 0 and exponent < 18:
        milli //= 1000
        exponent += 3
    return f"{milli}{_SUFFIXES[exponent]}"


def _to_milli(value: float) -> int:
    if value >= MAX_MILLI / 1000:
        return MAX_MILLI
    milli = int((Decimal(repr(value)) * 1000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    return min(milli, MAX_MILLI)
