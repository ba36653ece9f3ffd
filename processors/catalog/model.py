"""The catalog as the rating engine sees it: immutable, validated, indexed.

Every entity keeps the ``SourceRef`` it was read from, so a later validation
step (or an operator reading a rated record) can point back at the YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from processors.catalog.errors import SourceRef
from processors.catalog.licence_model import LicenceCatalog
from processors.catalog.matching import RowIndex
from processors.events import AttributeValue
from processors.money import Currency

# Event fields a marketplace rate table may look up by, besides attributes.
MARKETPLACE_FIELDS = ("provider", "product")


class AttributeType(StrEnum):
    NUMBER = "number"
    STRING = "string"


class QuotaEffect(StrEnum):
    """What an operation does to the quota of an item type with quota-managed attributes."""

    ACQUIRE = "acquire"  # a new instance takes quota
    RESIZE = "resize"  # an instance's quota-managed attributes change
    RELEASE = "release"  # the instance gives back everything it held


class AccountKind(StrEnum):
    TENANT = "tenant"
    PROJECT = "project"


class Pricing(StrEnum):
    FLAT = "flat"  # the rate per operation
    UNIT = "unit"  # rate x the quantity attribute
    GRADUATED = "graduated"  # each tier's slice of the period's quantity at its own rate
    VOLUME = "volume"  # the whole quantity at the rate of the tier the period reached

    @property
    def tiered(self) -> bool:
        return self in (Pricing.GRADUATED, Pricing.VOLUME)


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    type: AttributeType
    quota_managed: bool
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    billable: bool
    quota: QuotaEffect | None  # None: leaves quota alone (Start, Snapshot, Meter ...)
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ServiceItemType:
    name: str
    attributes: Mapping[str, Attribute]
    operations: Mapping[str, Operation]
    marketplace: bool
    ref: SourceRef = field(compare=False, repr=False)

    def lookup_fields(self) -> set[str]:
        """Names a rate table of this type may look up by."""
        extra = set(MARKETPLACE_FIELDS) if self.marketplace else set()
        return set(self.attributes) | extra


@dataclass(frozen=True, slots=True)
class RateGroup:
    name: str
    description: str
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FiscalPeriod:
    """``[start, end)``. Without an explicit end a period runs until the next one
    starts; the last such period is open-ended (``end`` None)."""

    name: str
    start: datetime
    end: datetime | None
    ref: SourceRef = field(compare=False, repr=False)

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment and (self.end is None or moment < self.end)


@dataclass(frozen=True, slots=True)
class GroupAssignment:
    """An account uses ``rate_group`` from the start of ``from_period`` on."""

    rate_group: str
    from_period: str
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    kind: AccountKind
    ou: str | None  # tenant: the top OU of the sub-tree it covers
    ous: tuple[str, ...]  # project: the OUs grouped under it (informational)
    rate_groups: tuple[GroupAssignment, ...]
    credit_plan: str | None
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CreditPlan:
    """A monthly usage allowance drawn down before anything is charged."""

    name: str
    amount: Decimal
    currency: Currency
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    provider: str
    service_item_type: str
    markup: Decimal | None  # overrides the provider's markup when set
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Provider:
    id: str
    name: str
    markup: Decimal  # fraction of net: 0.15 = 15 %
    products: Mapping[str, Product]
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Tier:
    """Quantities above ``start`` up to and including ``end`` (None: no end)."""

    start: Decimal
    end: Decimal | None
    rate: Decimal
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RateRow:
    match: tuple[AttributeValue | None, ...]  # aligned with the table's lookup; None = "*"
    rate_code: str
    unit_of_measure: str
    rate: Decimal | None  # flat and unit pricing
    tiers: tuple[Tier, ...]  # graduated and volume pricing
    minimum_charge: Decimal | None
    ref: SourceRef = field(compare=False, repr=False)

    @property
    def specificity(self) -> int:
        return sum(value is not None for value in self.match)


@dataclass(frozen=True, slots=True)
class RateTable:
    name: str
    rate_groups: tuple[str, ...]
    service_item_type: str
    operations: tuple[str, ...]
    lookup: tuple[str, ...]
    memo: tuple[str, ...]
    currency: Currency
    pricing: Pricing
    quantity_attribute: str | None
    rows: RowIndex[RateRow]
    ref: SourceRef = field(compare=False, repr=False)


class Aggregate(StrEnum):
    COUNT = "count"  # the number of instances
    SUM = "sum"  # the total of one quota-managed attribute over the instances


class ThresholdAction(StrEnum):
    NOTIFY = "notify"  # alert, let the operation proceed
    BLOCK = "block"  # reject an operation that would take usage above the threshold


class MissingPolicy(StrEnum):
    REJECT = "reject"
    ALLOW = "allow"  # let the event through, count it, and say why on the decision


@dataclass(frozen=True, slots=True)
class Quota:
    """At most ``limit`` instances (count) or attribute total (sum) of one item type."""

    service_item_type: str
    aggregate: Aggregate
    attribute: str | None  # sum only: the quota-managed attribute totalled
    limit: Decimal
    ref: SourceRef = field(compare=False, repr=False)

    @property
    def id(self) -> str:
        """``VirtualMachine:count`` or ``VirtualMachine:sum:vcpu`` (the alert's quota_id)."""
        return quota_id(self.service_item_type, self.aggregate, self.attribute)


def quota_id(item_type: str, aggregate: Aggregate, attribute: str | None) -> str:
    if aggregate is Aggregate.COUNT:
        return f"{item_type}:{aggregate}"
    return f"{item_type}:{aggregate}:{attribute}"


@dataclass(frozen=True, slots=True)
class Threshold:
    percent: int
    action: ThresholdAction
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    """Thresholds in increasing order, each with its action."""

    thresholds: tuple[Threshold, ...]


@dataclass(frozen=True, slots=True)
class AgreementTemplate:
    name: str
    description: str
    quotas: Mapping[str, Quota]  # by quota id
    policy: QuotaPolicy | None
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Agreement:
    """The quotas an account may consume; a sub-agreement shares its parent's with OUs.

    ``template`` names the template that prefilled it, or None once the
    agreement adds a quota the template does not have (it is then detached).
    """

    id: str
    account: str
    parent: str | None  # sub-agreement: the master agreement it takes a share of
    ous: tuple[str, ...]  # sub-agreement: the sub-OUs it covers
    template: str | None
    quotas: Mapping[str, Quota]  # by quota id
    policy: QuotaPolicy
    on_missing_quota: MissingPolicy
    ref: SourceRef = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Catalog:
    version: str
    # SHA-256 (hex) of what the catalog says, blind to comments, layout and file names:
    # two loads with the same version and a different content_hash price differently.
    content_hash: str
    service_item_types: Mapping[str, ServiceItemType]
    rate_groups: Mapping[str, RateGroup]
    fiscal_periods: tuple[FiscalPeriod, ...]  # sorted by start
    org_units: frozenset[str]
    accounts: Mapping[str, Account]
    credit_plans: Mapping[str, CreditPlan]
    providers: Mapping[str, Provider]
    rate_tables: Mapping[str, RateTable]
    # Derived indexes, built once by the loader.
    tenant_by_ou: Mapping[str, str] = field(repr=False)
    products: Mapping[str, Product] = field(repr=False)
    table_for: Mapping[tuple[str, str, str], str] = field(repr=False)
    agreement_templates: Mapping[str, AgreementTemplate] = field(
        default_factory=lambda: MappingProxyType({})
    )
    agreements: Mapping[str, Agreement] = field(default_factory=lambda: MappingProxyType({}))
    # account -> its master agreement; (master agreement, OU) -> sub-agreement
    master_agreement_for: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )
    sub_agreement_for: Mapping[tuple[str, str], str] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )
    licences: LicenceCatalog | None = None  # None: this catalog bills no licences

    def fiscal_period_at(self, moment: datetime) -> FiscalPeriod | None:
        for period in self.fiscal_periods:
            if period.contains(moment):
                return period
        return None

    def rate_group_for(self, account: Account, period: FiscalPeriod) -> str | None:
        """The group of the latest assignment that started at or before ``period``."""
        chosen: tuple[datetime, str] | None = None
        for assignment in account.rate_groups:
            starts = self._period(assignment.from_period).start
            if starts <= period.start and (chosen is None or starts > chosen[0]):
                chosen = (starts, assignment.rate_group)
        return None if chosen is None else chosen[1]

    def rate_table_for(self, group: str, item_type: str, operation: str) -> RateTable | None:
        name = self.table_for.get((group, item_type, operation))
        return None if name is None else self.rate_tables[name]

    def markup_for(self, product: Product) -> Decimal:
        if product.markup is not None:
            return product.markup
        return self.providers[product.provider].markup

    def _period(self, name: str) -> FiscalPeriod:
        return next(period for period in self.fiscal_periods if period.name == name)
