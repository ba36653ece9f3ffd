"""Loading a catalog: a folder of YAML files, or their texts as published on Kafka.

Files are read in name order and their sections merged, so a catalog can be
split by concern (``rates.yaml``, ``accounts.yaml`` ...). Everything is read
and checked before a ``Catalog`` exists: a bad catalog raises
``CatalogError`` and nothing of it is half-loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import yaml

from processors.catalog.errors import CatalogError
from processors.catalog.model import Catalog
from processors.catalog.parse import (
    parse_account,
    parse_credit_plan,
    parse_fiscal_period,
    parse_item_type,
    parse_named,
    parse_org_unit,
    parse_provider,
    parse_rate_group,
)
from processors.catalog.parse_agreements import (
    build_agreements,
    check_templates,
    parse_agreement,
    parse_template,
)
from processors.catalog.parse_licences import (
    build_licences,
    parse_campus,
    parse_licence_billing,
    parse_licence_group,
)
from processors.catalog.parse_rates import parse_rate_table
from processors.catalog.source import Value, compose
from processors.catalog.validation import (
    check_accounts,
    check_fiscal_periods,
    check_org_units,
    check_products,
    check_rate_tables,
)

SECTIONS = (
    "service_item_types",
    "rate_groups",
    "fiscal_periods",
    "org_units",
    "credit_plans",
    "accounts",
    "providers",
    "rate_tables",
    "agreement_templates",
    "agreements",
    "licence_groups",
    "campuses",
)
LICENCE_SECTIONS = ("licence_groups", "campuses")
# Sections written once, as a mapping (not a list merged across files).
SINGLE_SECTIONS = ("licence_billing",)
# Sections a later catalog version will add. Named so the error says "not yet"
# instead of "typo"; a new section is one more parser in ``_build``.
RESERVED_SECTIONS: dict[str, str] = {}
VERSION_KEY = "version"
TOP_LEVEL_KEYS = frozenset({*SECTIONS, *SINGLE_SECTIONS, VERSION_KEY, *RESERVED_SECTIONS})
CATALOG_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class CatalogFolder:
    """A catalog folder read once: its texts by file name, and the catalog they make.

    ``sources`` is exactly what ``catalog`` was validated from, so publishing
    ``sources`` publishes the catalog that was checked, not a second reading of the folder.
    """

    path: Path
    sources: Mapping[str, str]
    catalog: Catalog


def catalog_files(path: Path) -> list[Path]:
    """The files of a catalog folder, in load order: every ``*.yaml`` / ``*.yml`` directly in
    ``path``. The one listing of a folder, for validating and for publishing alike."""
    try:
        files = sorted(p for p in path.iterdir() if p.suffix in CATALOG_SUFFIXES and p.is_file())
    except OSError as exc:  # missing, not a folder, not readable
        raise CatalogError(str(path), 0, "catalog",
                           f"cannot read the catalog folder: {_reason(exc)}") from None
    if not files:
        raise CatalogError(str(path), 0, "catalog", "no .yaml files in the catalog folder")
    return files


def read_catalog_folder(path: Path) -> CatalogFolder:
    """Read and validate the catalog in ``path`` (a bad one raises ``CatalogError``)."""
    sources = {file.name: _read_source(file) for file in catalog_files(path)}
    # Validated under their paths so an error names the file on disk; the texts and their
    # order (one folder: same prefix) are those processors load by file name.
    catalog = load_catalog_sources({str(path / name): text for name, text in sources.items()})
    return CatalogFolder(path, MappingProxyType(sources), catalog)


def load_catalog_dir(path: Path) -> Catalog:
    """Every ``*.yaml`` / ``*.yml`` file directly in ``path``, loaded as one catalog."""
    return read_catalog_folder(path).catalog


def _read_source(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise CatalogError(str(file), line, "catalog",
                           f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x}): save the "
                           "file as UTF-8") from None
    except OSError as exc:
        raise CatalogError(str(file), 0, "catalog", f"cannot read the file: {_reason(exc)}"
                           ) from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def load_catalog_sources(sources: Mapping[str, str]) -> Catalog:
    """A catalog from its files' texts (file name -> YAML text)."""
    sections: dict[str, list[Value]] = {name: [] for name in SECTIONS}
    version: tuple[str, Value] | None = None
    singles: dict[str, Value] = {}
    for file in sorted(sources):
        root = compose(file, sources[file])
        if root is None:
            continue
        top = Value(file, root, "catalog").mapping(
            optional=TOP_LEVEL_KEYS
        )
        for key in top.names():
            value = top.req(key).renamed(key)
            if key in RESERVED_SECTIONS:
                raise value.fail(f"section {key!r}: {RESERVED_SECTIONS[key]}")
            if key == VERSION_KEY:
                version = _one_version(version, value)
            elif key in SINGLE_SECTIONS:
                if key in singles:
                    where = singles[key].ref
                    raise value.fail(f"section {key!r} is already set in {where.file}:"
                                     f"{where.line}")
                singles[key] = value
            else:
                sections[key].extend(value.items())
    declared = version[0] if version is not None else None
    # Empty licence sections stay out of the hash: catalogs without licences keep the
    # content version they had before licences existed.
    content = {**{name: values for name, values in sections.items()
                  if values or name not in LICENCE_SECTIONS},
               **{key: [value] for key, value in singles.items()}}
    content_hash = _content_hash(content)
    return _build(sections, singles, declared or f"sha256:{content_hash[:12]}", content_hash)


def _one_version(previous: tuple[str, Value] | None, value: Value) -> tuple[str, Value]:
    if previous is not None:
        where = previous[1].ref
        raise value.fail(f"the catalog version is already set in {where.file}:{where.line}")
    text = value.text()
    if not text.strip():
        # Left empty, it silently became the content hash: leave the key out for that.
        raise value.fail("the catalog version is empty: name it, or leave `version` out to "
                         "version the catalog by its content hash")
    return text, value


def _content_hash(sections: Mapping[str, list[Value]]) -> str:
    """SHA-256 (hex) of the catalog's content, blind to comments, layout and file names.

    Without a ``version:`` its first 12 digits are the version. With one, it tells two
    contents published under the same version apart (``rating catalog load`` refuses the
    second one, and a running processor does not take it): a version names one content.
    """
    content = {name: [_plain(value.node) for value in values] for name, values in sections.items()}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _plain(node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return {str(_plain(key)): _plain(value) for key, value in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item) for item in node.value]
    return node.value


def _build(sections: Mapping[str, list[Value]], singles: Mapping[str, Value],
           version: str, content_hash: str) -> Catalog:
    item_types = parse_named(
        sections["service_item_types"], parse_item_type, lambda t: t.name, "service item type"
    )
    groups = parse_named(sections["rate_groups"], parse_rate_group, lambda g: g.name, "rate group")
    periods = parse_named(
        sections["fiscal_periods"], parse_fiscal_period, lambda p: p.name, "fiscal period"
    )
    units = parse_named(sections["org_units"], lambda v: (parse_org_unit(v), v), _first, "OU")
    plans = parse_named(
        sections["credit_plans"], parse_credit_plan, lambda p: p.name, "credit plan"
    )
    accounts = parse_named(sections["accounts"], parse_account, lambda a: a.id, "account")
    providers = parse_named(sections["providers"], parse_provider, lambda p: p.id, "provider")
    tables = parse_named(
        sections["rate_tables"],
        lambda v: parse_rate_table(v, item_types),
        lambda t: t.name,
        "rate table",
    )
    templates = parse_named(
        sections["agreement_templates"], parse_template, lambda t: t.name, "agreement template"
    )
    raw_agreements = parse_named(
        sections["agreements"], parse_agreement, lambda a: a.id, "agreement"
    )
    org_units = check_org_units(dict(units.values()))
    products = check_products(providers, item_types)
    tenant_by_ou = check_accounts(accounts, org_units, groups, periods, plans)
    check_templates(templates, item_types)
    agreements = build_agreements(
        raw_agreements, templates, item_types, accounts, org_units, tenant_by_ou
    )
    table_for = check_rate_tables(tables, groups, providers, products)
    licence_groups = parse_named(
        sections["licence_groups"], parse_licence_group, lambda g: g.name, "licence group"
    )
    billing = singles.get("licence_billing")
    licences = build_licences(
        parse_licence_billing(billing) if billing is not None else None,
        licence_groups,
        parse_named(sections["campuses"], parse_campus, lambda c: c.id, "campus"),
        [product for group in licence_groups.values() for product in group.products.values()],
        item_types,
        accounts,
        tables,
        table_for,
    )
    return Catalog(
        version=version,
        content_hash=content_hash,
        service_item_types=MappingProxyType(item_types),
        rate_groups=MappingProxyType(groups),
        fiscal_periods=check_fiscal_periods(periods),
        org_units=org_units,
        accounts=MappingProxyType(accounts),
        credit_plans=MappingProxyType(plans),
        providers=MappingProxyType(providers),
        rate_tables=MappingProxyType(tables),
        tenant_by_ou=MappingProxyType(tenant_by_ou),
        products=MappingProxyType(products),
        table_for=MappingProxyType(table_for),
        agreement_templates=MappingProxyType(templates),
        agreements=agreements.agreements,
        master_agreement_for=agreements.master_for,
        sub_agreement_for=agreements.sub_for,
        licences=licences,
    )


def _first(pair: tuple[str, Value]) -> str:
    return pair[0]
