"""Canonical DecimalSI quantity strings, as resource.Quantity prints them."""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.kube.wire import MAX_MILLI, format_quantity

SUFFIX = {"m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


@pytest.mark.parametrize("value, expected", [
    (1.5, "1500m"), (10, "10"), (1500, "1500"), (2000, "2k"), (1_500_000, "1500k"), (0, "0"),
    (1.08, "1080m"), (1.005, "1005m"), (0.001, "1m"), (0.0004, "0"), (0.0005, "0"), (0.0015, "2m"),
    (1e6, "1M"), (2.5e9, "2500M"), (1e15, "1P"), (1e18, "9223372036854775807m"), (123.456, "123456m"), (5, "5"),
    (-3, "0"), (math.nan, "0"), (-math.inf, "0"), (math.inf, "9223372036854775807m"), (1e30, "9223372036854775807m"),
])
def test_format(value: float, expected: str) -> None:
    assert format_quantity(value) == expected


def parse(quantity: str) -> Decimal:
    match = re.fullmatch(r"(\d+)([mkMGTPE]?)", quantity)
    assert match, quantity
    return Decimal(match.group(1)).scaleb(SUFFIX[match.group(2)])


@given(st.floats(min_value=0, max_value=9e15, allow_nan=False))
def test_round_trip_within_half_a_milli(value: float) -> None:
    assert abs(parse(format_quantity(value)) - Decimal(repr(value))) <= Decimal("0.0005")


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_always_canonical(value: float) -> None:
    text = format_quantity(value)
    match = re.fullmatch(r"(\d+)([mkMGTPE]?)", text)
    assert match is not None
    mantissa, suffix = int(match.group(1)), match.group(2)
    assert text == "0" or (mantissa > 0 and not (mantissa % 1000 == 0 and suffix != "E"))
    assert parse(text) * 1000 <= MAX_MILLI
