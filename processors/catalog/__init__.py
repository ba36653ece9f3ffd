"""The rating catalog: service items, rate groups and tables, accounts, providers, credits.

Loaded from YAML (``config/catalog/``, format in ``docs/catalog.md``) and
validated as a whole; a bad catalog raises ``CatalogError`` naming the file,
the line and what is wrong.
"""

from processors.catalog.errors import CatalogError, SourceRef
from processors.catalog.loader import (
    CatalogFolder,
    load_catalog_dir,
    load_catalog_sources,
    read_catalog_folder,
)
from processors.catalog.model import (
    Account,
    AccountKind,
    Attribute,
    AttributeType,
    Catalog,
    CreditPlan,
    FiscalPeriod,
    GroupAssignment,
    Operation,
    Pricing,
    Product,
    Provider,
    RateGroup,
    RateRow,
    RateTable,
    ServiceItemType,
    Tier,
)

__all__ = [
    "Account",
    "AccountKind",
    "Attribute",
    "AttributeType",
    "Catalog",
    "CatalogError",
    "CatalogFolder",
    "CreditPlan",
    "FiscalPeriod",
    "GroupAssignment",
    "Operation",
    "Pricing",
    "Product",
    "Provider",
    "RateGroup",
    "RateRow",
    "RateTable",
    "ServiceItemType",
    "SourceRef",
    "Tier",
    "load_catalog_dir",
    "load_catalog_sources",
    "read_catalog_folder",
]
