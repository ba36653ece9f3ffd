from decimal import Decimal
from pathlib import Path

import pytest

from processors.catalog import CatalogError, Pricing, load_catalog_dir, load_catalog_sources
from tests.unit.processors.factories import BASE, RATES, catalog

EXAMPLE = Path(__file__).parents[4] / "config" / "catalog"


def test_the_example_catalog_loads() -> None:
    example = load_catalog_dir(EXAMPLE)
    assert example.version == "2026.11-demo.1"
    assert {"standard", "enterprise"} <= set(example.rate_groups)
    assert {"VirtualMachine", "Storage", "HardDisk", "SaaSSeat"} <= set(example.service_item_types)
    assert len(example.providers) >= 2
    pricings = {table.pricing for table in example.rate_tables.values()}
    assert pricings == {Pricing.FLAT, Pricing.UNIT, Pricing.GRADUATED, Pricing.VOLUME}


def test_sources_and_directory_give_the_same_catalog(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yml").write_text(RATES)
    (tmp_path / "notes.txt").write_text("not: [a catalog")
    from_dir = load_catalog_dir(tmp_path)
    from_sources = catalog()
    assert from_dir.version == from_sources.version == "test-1"
    assert from_dir.rate_tables == from_sources.rate_tables
    assert from_dir.accounts == from_sources.accounts


def test_sections_merge_across_files() -> None:
    half = RATES.index("  - name: vm-std\n")
    split = load_catalog_sources(
        {"1.yaml": BASE, "2.yaml": RATES[:half], "3.yaml": "rate_tables:\n" + RATES[half:]}
    )
    assert split.rate_tables == catalog().rate_tables


def test_numbers_never_pass_through_a_float() -> None:
    rates = RATES.replace('rate: "10"', "rate: 0.1").replace(
        'rate: "8"', "rate: 0.30000000000000001"
    )
    loaded = catalog(rates)
    assert loaded.rate_tables["disk-std"].rows.rows[0].rate == Decimal("0.1")
    assert loaded.rate_tables["disk-ent"].rows.rows[0].rate == Decimal("0.30000000000000001")


def test_rates_keep_their_own_scale() -> None:
    loaded = load_catalog_dir(EXAMPLE)
    row = loaded.rate_tables["storage-standard"].rows.find(["hdd"])
    assert row is not None
    assert str(row.rate) == "0.045"


def test_version_without_a_version_key_is_a_content_hash() -> None:
    base = BASE.replace("version: test-1\n", "")
    hashed = catalog(base=base).version
    assert hashed.startswith("sha256:")
    assert len(hashed) == len("sha256:") + 12
    # Comments and layout do not change the content, a rate does.
    relaid = RATES.replace("rate_tables:\n", "# priced by finance\nrate_tables:  \n")
    assert catalog(relaid, base=base).version == hashed
    assert catalog(RATES.replace('"25.00"', '"26.00"'), base=base).version != hashed


def test_version_set_twice_is_an_error() -> None:
    with pytest.raises(CatalogError) as raised:
        load_catalog_sources({"a.yaml": BASE, "b.yaml": "version: other\n" + RATES})
    assert raised.value.file == "b.yaml"
    assert raised.value.line == 1
    assert "already set in a.yaml:2" in raised.value.message


def test_empty_files_are_ignored_and_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    assert load_catalog_sources({"a.yaml": BASE, "b.yaml": RATES, "c.yaml": "# empty\n"})
    with pytest.raises(CatalogError, match=r"no \.yaml files"):
        load_catalog_dir(tmp_path)


@pytest.mark.parametrize("problem", ["missing", "a file", "not UTF-8"])
def test_an_unreadable_catalog_is_a_catalog_error_naming_it(problem: str, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yaml").write_bytes(RATES.encode() + "# Zürich\n".encode("latin-1"))
    folder, named, line = {"missing": (tmp_path / "nope", tmp_path / "nope", 0),
                           "a file": (tmp_path / "a.yaml", tmp_path / "a.yaml", 0),
                           "not UTF-8": (tmp_path, tmp_path / "b.yaml",
                                         RATES.count("\n") + 1)}[problem]
    with pytest.raises(CatalogError) as raised:
        load_catalog_dir(folder)
    assert (raised.value.file, raised.value.line) == (str(named), line)


def test_fiscal_periods_run_to_the_next_start() -> None:
    periods = catalog().fiscal_periods
    assert [p.name for p in periods] == ["P1", "P2"]
    assert periods[0].end == periods[1].start
    assert periods[1].end is None


def test_a_union_row_settles_two_equally_specific_rows() -> None:
    rates = RATES.replace(
        "{match: {region: eu-west, os: linux}, rate_code: VM-EU-LNX,",
        "{match: {region: eu-west}, rate_code: VM-EU,",
    ).replace(
        "      - {match: {os: windows}",
        "      - {match: {region: eu-west, os: windows}, rate_code: VM-EU-WIN, unit: u, rate: 34}"
        "\n      - {match: {os: windows}",
    )
    table = catalog(rates).rate_tables["vm-std"]
    assert _code(table.rows.find(["eu-west", "windows"])) == "VM-EU-WIN"
    assert _code(table.rows.find(["eu-west", "linux"])) == "VM-EU"
    assert _code(table.rows.find(["us-east", "windows"])) == "VM-WIN"
    assert _code(table.rows.find(["us-east", "linux"])) == "VM-ANY"


def _code(row: object) -> str:
    return str(getattr(row, "rate_code", None))
