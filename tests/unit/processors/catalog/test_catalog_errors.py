"""A bad catalog fails at load, naming the file, the line and what is wrong.

Each case breaks a valid catalog in one place and marks the line the error
must point at with ``# <-``.
"""

from __future__ import annotations

import pytest

from processors.catalog import CatalogError, load_catalog_sources
from tests.unit.processors.factories import BASE, RATES

MARK = "# <-"


def _table(body: str, *, name: str = "extra", item: str = "Disk") -> str:
    return (
        f"rate_tables:\n  - name: {name}\n    service_item_type: {item}\n    currency: USD\n" + body
    )


DISK_UNIT = (
    "    rate_groups: [enterprise]\n"
    "    operations: [Order]\n"
    "    pricing: unit\n"
    "    quantity_attribute: quantity\n"
)

# (case id, extra file text, replacement in BASE or None, expected message fragment)
CASES: list[tuple[str, str, tuple[str, str] | None, str]] = [
    ("yaml syntax", "rate_groups:\n  - name: a\n\t- name: b  # <-\n", None, "not valid YAML"),
    ("unknown section", "rate_tabels: []  # <-\n", None, "unknown key 'rate_tabels'"),
    ("top level is a list", "- a  # <-\n", None, "expected a mapping"),
    (
        "nested past the recursion limit",
        "rate_tables: " + "[" * 5000 + "]" * 5000 + "  # <-\n",
        None,
        "nested too deeply",
    ),
    (
        "unknown key in entry",
        _table(
            "    rate_group: [standard]  # <-\n"
            + DISK_UNIT.replace("    rate_groups: [enterprise]\n", "")
        ),
        None,
        "unknown key 'rate_group'",
    ),
    (
        "missing key",
        "rate_groups:\n  - {description: no name}  # <-\n",
        None,
        "missing required key 'name'",
    ),
    (
        "duplicate key",
        "rate_groups:\n  - name: a\n    name: b  # <-\n",
        None,
        "duplicate key 'name'",
    ),
    (
        "unknown service item type",
        _table(DISK_UNIT + "    rows: []\n", item="Dsk  # <-"),
        None,
        "unknown service item type 'Dsk'",
    ),
    (
        "unknown operation",
        _table(DISK_UNIT.replace("[Order]", "[Order, Sell]  # <-") + "    rows: []\n"),
        None,
        "unknown operation of Disk 'Sell'",
    ),
    (
        "operation not billable",
        _table(
            DISK_UNIT.replace("    operations: [Order]\n", "    operations: [Return]  # <-\n")
            + "    rows: [{rate_code: X, unit: u, rate: '1'}]\n"
        ),
        None,
        "'Return' of Disk is not billable",
    ),
    (
        "unknown lookup attribute",
        _table(DISK_UNIT + "    lookup: [colour]  # <-\n    rows: []\n"),
        None,
        "unknown lookup attribute 'colour'",
    ),
    (
        "unknown memo attribute",
        _table(DISK_UNIT + "    memo: [model, serial]  # <-\n    rows: []\n"),
        None,
        "unknown memo attribute 'serial'",
    ),
    (
        "quantity attribute is text",
        _table(
            DISK_UNIT.replace("quantity_attribute: quantity", "quantity_attribute: model  # <-")
            + "    rows: [{rate_code: X, unit: u, rate: '1'}]\n"
        ),
        None,
        "must be a number",
    ),
    (
        "unit pricing without quantity",
        _table(
            "    rate_groups: [enterprise]\n    operations: [Order]\n    pricing: unit\n"
            "    rows: [{rate_code: X, unit: u, rate: '1'}]\n",
            name="extra  # <-",
        ),
        None,
        "unit pricing needs a quantity_attribute",
    ),
    (
        "unknown pricing",
        _table(DISK_UNIT.replace("pricing: unit", "pricing: tiered  # <-") + "    rows: []\n"),
        None,
        "pricing must be one of",
    ),
    (
        "unknown currency",
        _table(DISK_UNIT + "    rows: []\n").replace("currency: USD", "currency: USX  # <-"),
        None,
        "unknown currency 'USX'",
    ),
    (
        "negative rate",
        _table(DISK_UNIT + "    rows:\n      - {rate_code: X, unit: u, rate: '-1'}  # <-\n"),
        None,
        "rate must not be negative",
    ),
    (
        "rate not a number",
        _table(DISK_UNIT + "    rows:\n      - {rate_code: X, unit: u, rate: ten}  # <-\n"),
        None,
        "rate: expected a decimal number, got 'ten'",  # the key, not only the entry
    ),
    (
        "rate infinite",
        _table(DISK_UNIT + "    rows:\n      - {rate_code: X, unit: u, rate: Infinity}  # <-\n"),
        None,
        "expected a finite decimal number",
    ),
    (
        "rate out of range",
        _table(DISK_UNIT + "    rows:\n      - {rate_code: X, unit: u, rate: 1E+18}  # <-\n"),
        None,
        "'1E+18' is out of range: at most 18 digits before the decimal point and 18 after",
    ),
    (
        "rate too fine",
        _table(DISK_UNIT + "    rows:\n      - {rate_code: X, unit: u, rate: 1E-19}  # <-\n"),
        None,
        "'1E-19' is out of range: at most 18 digits before the decimal point and 18 after",
    ),
    (
        "duplicate rate code",
        _table(
            DISK_UNIT + "    lookup: [model]\n    rows:\n"
            "      - {match: {model: a}, rate_code: X, unit: u, rate: '1'}\n"
            "      - {match: {model: b}, rate_code: X, unit: u, rate: '2'}  # <-\n"
        ),
        None,
        "duplicate rate code 'X'",
    ),
    (
        "duplicate row",
        _table(
            DISK_UNIT + "    lookup: [model]\n    rows:\n"
            "      - {match: {model: a}, rate_code: X, unit: u, rate: '1'}\n"
            "      - {match: {model: a}, rate_code: Y, unit: u, rate: '2'}  # <-\n"
        ),
        None,
        "same match as row 'X'",
    ),
    (
        "ambiguous rows",
        _table(
            "    rate_groups: [enterprise]\n    operations: [Create]\n    pricing: unit\n"
            "    quantity_attribute: vcpu\n    lookup: [region, os]\n    rows:\n"
            "      - {match: {region: us-east}, rate_code: A, unit: u, rate: '1'}\n"
            "      - {match: {os: linux}, rate_code: B, unit: u, rate: '2'}  # <-\n",
            item="VM",
        ),
        None,
        "ambiguous with row 'A' (line 11)",
    ),
    (
        "match key not looked up",
        _table(
            DISK_UNIT + "    rows:\n      - match:\n          model: a  # <-\n"
            "        rate_code: X\n        unit: u\n        rate: '1'\n"
        ),
        None,
        "'model' is not a lookup attribute",
    ),
    (
        "numeric match value is text",
        _table(
            "    rate_groups: [enterprise]\n    operations: [Create]\n    pricing: flat\n"
            "    lookup: [vcpu]\n    rows:\n"
            "      - {match: {vcpu: four}, rate_code: A, unit: u, rate: '1'}  # <-\n",
            item="VM",
        ),
        None,
        "expected a decimal number, got 'four'",
    ),
    (
        "flat with quantity",
        _table(
            DISK_UNIT.replace("pricing: unit", "pricing: flat").replace(
                "quantity_attribute: quantity", "quantity_attribute: quantity  # <-"
            )
            + "    rows: [{rate_code: X, unit: u, rate: '1'}]\n"
        ),
        None,
        "flat pricing charges per operation",
    ),
    (
        "tiers do not start at 0",
        _table(
            DISK_UNIT.replace("unit", "graduated") + "    rows:\n      - rate_code: X\n"
            "        unit: u\n        tiers:\n          - {from: 1, rate: '1'}  # <-\n"
        ),
        None,
        "tier starts at 1, expected 0",
    ),
    (
        "tiers with a gap",
        _table(
            DISK_UNIT.replace("unit", "volume") + "    rows:\n      - rate_code: X\n"
            "        unit: u\n        tiers:\n          - {from: 0, to: 10, rate: '1'}\n"
            "          - {from: 20, rate: '1'}  # <-\n"
        ),
        None,
        "tier starts at 20, expected 10",
    ),
    (
        "tier ends before it starts",
        _table(
            DISK_UNIT.replace("unit", "volume") + "    rows:\n      - rate_code: X\n"
            "        unit: u\n        tiers:\n          - {from: 0, to: 10, rate: '1'}\n"
            "          - {from: 10, to: 5, rate: '1'}  # <-\n          - {from: 5, rate: '1'}\n"
        ),
        None,
        "must be greater than 'from'",
    ),
    (
        "last tier bounded",
        _table(
            DISK_UNIT.replace("unit", "graduated") + "    rows:\n      - rate_code: X\n"
            "        unit: u\n        tiers:\n          - {from: 0, to: 10, rate: '1'}  # <-\n"
        ),
        None,
        "last tier must be open-ended",
    ),
    (
        "open tier in the middle",
        _table(
            DISK_UNIT.replace("unit", "graduated") + "    rows:\n      - rate_code: X\n"
            "        unit: u\n        tiers:\n          - {from: 0, rate: '1'}\n"
            "          - {from: 10, rate: '1'}  # <-\n"
        ),
        None,
        "only the last tier may be open-ended",
    ),
    (
        "rate on a tiered row",
        _table(
            DISK_UNIT.replace("unit", "graduated") + "    rows:\n      - rate_code: X\n"
            "        unit: u\n        rate: '1'  # <-\n"
        ),
        None,
        "takes its rates from 'tiers'",
    ),
    (
        "minimum charge finer than the currency",
        _table(
            DISK_UNIT + "    rows:\n      - {rate_code: X, unit: u, rate: '1', "
            "minimum_charge: '0.5'}  # <-\n"
        ).replace("currency: USD", "currency: JPY"),
        None,
        "more decimals than JPY allows",
    ),
    (
        "unknown rate group in table",
        _table(
            DISK_UNIT.replace("[enterprise]", "[premium]  # <-")
            + "    rows: [{rate_code: X, unit: u, rate: '1'}]\n"
        ),
        None,
        "unknown rate group 'premium'",
    ),
    (
        "two tables price the same operation",
        _table(
            DISK_UNIT.replace("[enterprise]", "[standard]").replace(
                "operations: [Order]", "operations: [Order]  # <-"
            )
            + "    rows: [{rate_code: X, unit: u, rate: '1'}]\n"
        ),
        None,
        "rate table 'disk-std' already prices Disk Order in rate group 'standard'",
    ),
    (
        "duplicate table across files",
        _table(
            DISK_UNIT + "    rows: [{rate_code: X, unit: u, rate: '1'}]\n", name="disk-std"
        ).replace("  - name: disk-std\n", "  - name: disk-std  # <-\n"),
        None,
        "duplicate rate table 'disk-std' (first at rates.yaml:",
    ),
    (
        "unknown rate group in account",
        "",
        ("{rate_group: standard, from: P1}]}", "{rate_group: gold, from: P1}]}  # <-"),
        "unknown rate group 'gold'",
    ),
    (
        "unknown fiscal period in account",
        "",
        (
            "      - {rate_group: enterprise, from: P2}",
            "      - {rate_group: enterprise, from: P3}  # <-",
        ),
        "unknown fiscal period 'P3'",
    ),
    (
        "two groups from one period",
        "",
        (
            "      - {rate_group: enterprise, from: P2}",
            "      - {rate_group: enterprise, from: P1}  # <-",
        ),
        "two rate groups from fiscal period 'P1'",
    ),
    (
        "unknown OU",
        "",
        ("    ou: eng/data\n", "    ou: eng/dta  # <-\n"),
        "unknown OU 'eng/dta'",
    ),
    (
        "OU without its parent",
        "org_units:\n  - ops/sre  # <-\n",
        None,
        "parent OU 'ops' of 'ops/sre' is not defined",
    ),
    (
        "two tenant accounts on one OU",
        "accounts:\n  - id: acct-eng-2\n    kind: tenant\n    ou: eng  # <-\n"
        "    rate_groups: [{rate_group: standard, from: P1}]\n",
        None,
        "OU 'eng' already has tenant account 'acct-eng'",
    ),
    (
        "duplicate account",
        "accounts:\n  - id: acct-eng  # <-\n    kind: project\n"
        "    rate_groups: [{rate_group: standard, from: P1}]\n",
        None,
        "duplicate account 'acct-eng' (first at base.yaml:",
    ),
    (
        "tenant without an OU",
        "accounts:\n  - id: acct-new  # <-\n    kind: tenant\n"
        "    rate_groups: [{rate_group: standard, from: P1}]\n",
        None,
        "a tenant account names exactly one OU",
    ),
    (
        "unknown credit plan",
        "",
        ("    credit_plan: small\n", "    credit_plan: tiny  # <-\n"),
        "unknown credit plan 'tiny'",
    ),
    (
        "bad account id",
        "accounts:\n  - id: 'acct|x'  # <-\n    kind: project\n"
        "    rate_groups: [{rate_group: standard, from: P1}]\n",
        None,
        "is not a valid name",
    ),
    (
        "overlapping fiscal periods",
        "",
        (
            "  - {name: P2, start: 2026-07-01}",
            "  - {name: P2, start: 2026-07-01}\n"
            "  - {name: P1b, start: 2026-03-01, end: 2026-08-01}  # <-",
        ),
        "ends after fiscal period 'P2' starts",
    ),
    (
        "fiscal period ending before it starts",
        "fiscal_periods:\n  - {name: P0, start: 2025-01-01, end: 2024-01-01}  # <-\n",
        None,
        "must end after it starts",
    ),
    (
        "fiscal period without a timezone",
        "fiscal_periods:\n  - {name: P0, start: '2025-01-01T00:00:00'}  # <-\n",
        None,
        "needs a timezone offset",
    ),
    (
        "fiscal period with a bad date",
        "fiscal_periods:\n  - {name: P0, start: 2025-13-01}  # <-\n",
        None,
        "expected a date or date-time",
    ),
    (
        "product of a non-marketplace item",
        "",
        (
            "      - {sku: acme-basic, name: Acme Basic, service_item_type: App}",
            "      - {sku: acme-basic, name: Acme Basic, service_item_type: Disk}  # <-",
        ),
        "'Disk' is not a marketplace service item type",
    ),
    (
        "marketplace row for an unknown product",
        _table(
            "    rate_groups: [enterprise]\n    operations: [Meter]\n    pricing: flat\n"
            "    lookup: [product]\n    rows:\n"
            "      - {match: {product: acme-ultra}, rate_code: A, unit: u, rate: '1'}  # <-\n",
            item="App",
        ).replace("  - name: extra\n", "  - name: extra\n"),
        None,
        "'acme-ultra' is not a product of App",
    ),
    (
        # Events must name one of the provider's own products: the row can never match, and
        # its events would be priced by another row (a provider-wide one), silently.
        "marketplace row for a product its provider does not sell",
        "providers:\n  - id: nimbus\n    name: Nimbus\n    markup: '0.10'\n    products:\n"
        "      - {sku: nimbus-db, name: Nimbus DB, service_item_type: App}\n"
        + _table(
            "    rate_groups: [enterprise]\n    operations: [Meter]\n    pricing: flat\n"
            "    lookup: [provider, product]\n    rows:\n"
            "      - {match: {provider: nimbus}, rate_code: N, unit: u, rate: '1'}\n"
            "      - {match: {provider: nimbus, product: acme-pro}, rate_code: A, unit: u,"
            " rate: '2'}  # <-\n",
            item="App",
        ),
        None,
        "provider 'nimbus' does not sell 'acme-pro' (a product of 'acme')",
    ),
    ("empty version", "", ("version: test-1", "version: ''  # <-"),
     "the catalog version is empty"),
    (
        # 18 meant as 18 % would bill 19 times the net price.
        "markup above 100 %",
        "",
        ('    markup: "0.15"\n', '    markup: "18"  # <-\n'),
        "markup is a fraction of net (0.18 for 18 %), at most 1 (100 %), got 18",
    ),
    (
        "fiscal period with no time in UTC",
        "fiscal_periods:\n  - {name: P0, start: 2025-01-01, end: '9999-12-31T23:59:59-05:00'}"
        "  # <-\n",
        None,
        "outside the supported range once in UTC",
    ),
    (
        "attribute type unknown",
        "service_item_types:\n  - name: Gpu\n    attributes:\n      - {name: n, type: int}  # <-\n"
        "    operations: [{name: Use, billable: true}]\n",
        None,
        "attribute type must be number or string",
    ),
    (
        "billable not a boolean",
        "service_item_types:\n  - name: Gpu\n    operations:\n"
        "      - {name: Use, billable: maybe}  # <-\n",
        None,
        "billable: expected true or false",
    ),
    (
        "duplicate operation",
        "service_item_types:\n  - name: Gpu\n    operations:\n      - {name: Use, billable: true}\n"
        "      - {name: Use, billable: false}  # <-\n",
        None,
        "duplicate operation 'Use'",
    ),
]


@pytest.mark.parametrize(
    ("extra", "replace", "fragment"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_catalog_names_file_line_and_problem(
    extra: str, replace: tuple[str, str] | None, fragment: str
) -> None:
    base = BASE
    if replace is not None:
        assert replace[0] in base, "the test must break something that exists"
        base = base.replace(replace[0], replace[1], 1)
    sources = {"base.yaml": base, "rates.yaml": RATES, "zz-extra.yaml": extra}
    expected_file, expected_line = _marked(sources)
    with pytest.raises(CatalogError) as raised:
        load_catalog_sources(sources)
    error = raised.value
    assert fragment in error.message
    assert (error.file, error.line) == (expected_file, expected_line), str(error)
    assert str(error).startswith(f"{expected_file}:{expected_line}: ")


def _marked(sources: dict[str, str]) -> tuple[str, int]:
    found = [
        (name, number)
        for name, text in sources.items()
        for number, line in enumerate(text.splitlines(), start=1)
        if MARK in line
    ]
    assert len(found) == 1, f"exactly one {MARK} marker expected, got {found}"
    return found[0]


def test_error_carries_the_entry() -> None:
    with pytest.raises(CatalogError) as raised:
        load_catalog_sources(
            {"base.yaml": BASE, "rates.yaml": RATES.replace('rate: "25.00"', 'rate: "-25.00"')}
        )
    assert raised.value.entry == "rate_table 'vm-std' row 'VM-ANY'"
    assert str(raised.value) == (
        f"rates.yaml:{raised.value.line}: rate_table 'vm-std' row 'VM-ANY': "
        "rate must not be negative, got -25.00"
    )
