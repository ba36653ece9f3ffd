"""The licence part of the catalog: billing rules, product groups and campuses.

Read from the ``licence_billing``, ``licence_groups`` and ``campuses``
sections (``parse_licences``; format in ``docs/licences.md``). Prices are not
here: licence fees are priced by ordinary rate tables of the licence service
item type, through the same engine as metered usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from processors.catalog.errors import SourceRef

# What the licence item type must declare: the rate tables look licence fees up by
# product and price them per month (quantity = months billed, prorated or 12).
PRODUCT_ATTRIBUTE = "licence_product"
MONTHS_ATTRIBUTE = "months"


class Proration(StrEnum):
    MONTH = "month"  # whole months from the provisioning month to the fiscal year end
    DAY = "day"  # 12 x days from the provisioning day to the year end / days in the year


class RunKind(StrEnum):
    ANNUAL = "annual"  # every active licence, 12 months
    TRUE_UP = "true-up"  # net new licences of the fiscal year, prorated

    @property
    def operation(self) -> str:
        """The licence item type's operation this kind of run bills as."""
        return "AnnualFee" if self is RunKind.ANNUAL else "TrueUp"


@dataclass(frozen=True, slots=True)
class BillingRunSpec:
    """One kind of billing run: when it bills and which provisioning dates it covers.

    ``month`` is the calendar month the run bills in (its charges' billing
    period); ``through_month`` the last calendar month of provisioning dates
    it covers, inside the same fiscal year and not after ``month``.
    """

    name: str
    kind: RunKind
    month: int
    through_month: int
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class LicenceProduct:
    id: str
    name: str
    group: str
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class LicenceGroup:
    """Products invoiced together: one spreadsheet per group (the seed's two)."""

    name: str
    title: str
    products: Mapping[str, LicenceProduct]
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Campus:
    """A customer of the licence program, charged to exactly one billing target."""

    id: str
    name: str
    account: str  # the catalog account whose rate group prices its licences
    billing_target: str  # the campus speedtype every charge of the campus goes to
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class LicenceCatalog:
    service_item_type: str
    fiscal_year_start_month: int
    proration: Proration
    runs: Mapping[str, BillingRunSpec]
    groups: Mapping[str, LicenceGroup]
    products: Mapping[str, LicenceProduct]
    campuses: Mapping[str, Campus]
    ref: SourceRef = field(compare=False, repr=False)
