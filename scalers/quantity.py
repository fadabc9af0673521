"""Kubernetes quantities ("500m", "1.5Gi", "2e3") parsed exactly, and written the way the API server writes them.

Two scalers need them: metrics-api reads a string value as a Quantity (as KEDA does with
`resource.ParseQuantity`), and memory/cpu `AverageValue` targets go into the HPA, where the API
server stores a canonical spelling ("0.5" becomes "500m", "1024Mi" becomes "1Gi"). Writing the
canonical spelling ourselves keeps the HPA we want equal to the HPA we read back, so the
controller does not update it on every pass.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Literal

Format = Literal["DecimalSI", "BinarySI", "DecimalExponent"]

_QUANTITY = re.compile(r"([+-]?)(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?")
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exponent: suffix for suffix, exponent in _DECIMAL.items()}
_BINARY_SUFFIX = {bits // 10: suffix for suffix, bits in _BINARY.items()}
NANO = Fraction(1, 10**9)


class QuantityError(ValueError):
    """Text that is not a Kubernetes quantity."""


def parse_quantity(text: str) -> tuple[Fraction, Format]:
    """The exact value of `text` and the format its suffix chose."""
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        raise QuantityError(f'"{text}" is not a quantity (like 100m, 1.5, 2Gi or 1e3)')
    sign, number, suffix = match.group(1), match.group(2), match.group(3) or ""
    value = Fraction(number if not number.endswith(".") else number[:-1])
    if sign == "-":
        value = -value
    if suffix in _BINARY:
        return value * 2 ** _BINARY[suffix], "BinarySI"
    if suffix in _DECIMAL:
        return value * Fraction(10) ** _DECIMAL[suffix], "DecimalSI"
    return value * Fraction(10) ** int(suffix[1:]), "DecimalExponent"


def quantity_value(text: str) -> float:
    """`text` as a float (KEDA's AsApproximateFloat64)."""
    return float(parse_quantity(text)[0])


def canonical(text: str) -> str:
    """`text` as the API server writes it back."""
    value, form = parse_quantity(text)
    value = _round_up_to_nano(value)
    if form == "BinarySI" and abs(value) >= 1024 and value.denominator == 1:
        return _binary(int(value))
    return _decimal(value, "DecimalExponent" if form == "DecimalExponent" else "DecimalSI")


def _round_up_to_nano(value: Fraction) -> Fraction:
    """Kubernetes keeps nine decimal places, rounding away from zero."""
    scaled = value / NANO
    if scaled.denominator == 1:
        return value
    magnitude = -(-abs(scaled.numerator) // scaled.denominator)
    return Fraction(magnitude if value > 0 else -magnitude) * NANO


def _binary(value: int) -> str:
    power = 0
    while value % 1024 == 0 and power < 6:
        value //= 1024
        power += 1
    return f"{value}{_BINARY_SUFFIX.get(power, '')}"


def _decimal(value: Fraction, form: Format) -> str:
    """The largest exponent (a multiple of 3, -9 to 18) that leaves an integer mantissa."""
    exponent = -9
    mantissa = value * 10**9
    while exponent < 18 and (mantissa / 1000).denominator == 1 and mantissa != 0:
        mantissa /= 1000
        exponent += 3
    if mantissa == 0:
        return "0"
    number = str(int(mantissa))
    if form == "DecimalExponent":
        return number + (f"e{exponent}" if exponent else "")
    return number + _DECIMAL_SUFFIX[exponent]
