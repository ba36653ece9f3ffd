from decimal import Decimal, Inexact, InvalidOperation

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.money import (
    CURRENCIES,
    MAX_FRACTION_DIGITS,
    MAX_INTEGER_DIGITS,
    add,
    currency,
    fits_minor_unit,
    multiply,
    round_money,
    subtract,
    too_fine,
    too_large,
)


@pytest.mark.parametrize(
    ("amount", "code", "expected"),
    [
        ("0.125", "USD", "0.12"),  # half to even: 2 stays
        ("0.135", "USD", "0.14"),  # half to even: 3 goes up to 4
        ("2.675", "EUR", "2.68"),
        ("0.124999", "GBP", "0.12"),
        ("2.5", "JPY", "2"),
        ("3.5", "JPY", "4"),
        ("1234.4999", "JPY", "1234"),
        ("0.0005", "KWD", "0.000"),
        ("0.0015", "KWD", "0.002"),
        ("20", "USD", "20.00"),
    ],
)
def test_round_money_is_half_even_at_the_minor_unit(amount: str, code: str, expected: str) -> None:
    cur = currency(code)
    assert cur is not None
    rounded = round_money(Decimal(amount), cur)
    assert rounded == Decimal(expected)
    assert str(rounded) == expected  # the scale is the currency's


def test_known_minor_units() -> None:
    assert {code: CURRENCIES[code].minor_units for code in ("USD", "EUR", "GBP", "JPY", "KWD")} == {
        "USD": 2,
        "EUR": 2,
        "GBP": 2,
        "JPY": 0,
        "KWD": 3,
    }
    assert currency("XYZ") is None


def test_multiply_keeps_full_precision() -> None:
    big = Decimal("123456789012345678901234567890.123456789")
    assert multiply(big, Decimal("0.0001")) == Decimal("12345678901234567890123456.7890123456789")


def test_fits_minor_unit() -> None:
    jpy, usd = CURRENCIES["JPY"], CURRENCIES["USD"]
    assert fits_minor_unit(Decimal("15"), jpy)
    assert not fits_minor_unit(Decimal("1.5"), jpy)
    assert fits_minor_unit(Decimal("1.50"), usd)
    assert not fits_minor_unit(Decimal("1.505"), usd)


def test_arithmetic_that_would_round_raises_instead() -> None:
    # Only round_money rounds: a product or sum beyond 60 digits is an error the engine
    # turns into a rejection (processors/rating.py: inexact), never a silent rounding.
    tiny = Decimal("0." + "0" * 58 + "1")  # 59 decimals
    assert add(Decimal(1), tiny) == Decimal("1." + "0" * 58 + "1")  # 60 digits: exact
    with pytest.raises(Inexact):
        add(Decimal(10), tiny)  # 61 digits
    with pytest.raises(Inexact):
        subtract(Decimal(100), tiny)  # 99.99...9: 61 digits
    with pytest.raises(Inexact):
        multiply(Decimal("0.5" + "0" * 59 + "1"), Decimal("0.01"))


def test_rounding_an_amount_beyond_the_precision_is_an_error_not_a_guess() -> None:
    with pytest.raises(InvalidOperation):
        round_money(Decimal("1E+70"), CURRENCIES["USD"])


def test_too_large_is_eighteen_digits_before_the_point() -> None:
    assert MAX_INTEGER_DIGITS == 18
    assert not too_large(Decimal("999999999999999999.999"))
    assert too_large(Decimal("1000000000000000000"))
    assert too_large(Decimal("1E+18"))
    assert too_large(Decimal("-1E+18"))
    assert not too_large(Decimal("0E+50"))  # zero, however it is written
    assert not too_large(Decimal("1E-40"))


def test_too_fine_is_more_than_eighteen_digits_after_the_point() -> None:
    assert MAX_FRACTION_DIGITS == 18
    assert not too_fine(Decimal("0.000000000000000001"))
    assert too_fine(Decimal("0.0000000000000000001"))
    assert too_fine(Decimal("1E-46"))
    assert too_fine(Decimal("1234E-20"))
    assert not too_fine(Decimal("1.5000000000000000000000"))  # trailing zeros do not count
    assert not too_fine(Decimal("1E+5"))


# Any number an event or the catalog may carry (at most 18 digits either side of the
# point): sums of millions of them, and of amounts rounded to a minor unit, stay exact,
# so the sums downstream of the rater (aggregates, billing history, reports), which
# trap Inexact like the rater's, never fail on accepted data (found by review).
accepted = st.decimals(min_value=Decimal(-(10**18) + 1), max_value=Decimal(10**18 - 1),
                       places=MAX_FRACTION_DIGITS, allow_nan=False, allow_infinity=False)


@given(accepted, accepted)
def test_sums_of_accepted_numbers_are_exact(a: Decimal, b: Decimal) -> None:
    total = add(multiply(a, Decimal(10**7)), b)  # as if a were summed ten million times
    assert subtract(total, b) == multiply(a, Decimal(10**7))
