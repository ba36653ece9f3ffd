"""argparse types that refuse what a command could only do nothing with (a negative event
count, a share above 1, fiscal year -5): argparse then prints the usage line and exits 2."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def whole(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is above {maximum}")
        return value
    return parse


def real_in(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if math.isnan(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not between {low:g} and {high:g}")
        return value
    return parse


def fiscal_year(text: str) -> int:
    """A fiscal year as its four-digit number (FY2027 is 2027)."""
    if len(text) == 4 and text.isdigit() and text[0] != "0":
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a fiscal year (four digits, e.g. 2027)")
