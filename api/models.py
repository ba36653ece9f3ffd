"""Response and request bodies (pydantic): the OpenAPI document's schemas.

Money, rates and quantities are decimal strings exactly as stored (``"20.00"``,
``"0.045"``), never JSON numbers: a float would not round-trip them.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

DecimalText = str  # a decimal string ("20.00"): documents intent in the models below


class Health(BaseModel):
    status: str = Field(examples=["ok"])


# -- billing history --------------------------------------------------------------

class HistoryTierOut(BaseModel):
    tier_from: DecimalText
    tier_to: DecimalText | None
    quantity: DecimalText
    rate: DecimalText
    amount: DecimalText


class HistoryItem(BaseModel):
    """One billing-history row: the fields of schemas/rated_usage.avsc plus where it was
    read from (rated_*)."""

    event_id: str
    event_time: str = Field(description="ISO 8601, UTC")
    rated_at: str = Field(description="ISO 8601, UTC")
    service_item_type: str
    service_item_id: str
    operation: str
    account_id: str
    account_kind: str
    requester: str
    home_ou: str
    provider: str | None
    product: str | None
    source: str
    billing_period: str
    fiscal_period: str
    rate_group: str
    rate_table: str
    rate_code: str
    unit_of_measure: str
    pricing: str
    rate: DecimalText
    quantity: DecimalText
    currency: str
    net_amount: DecimalText
    markup_rate: DecimalText
    markup_amount: DecimalText
    gross_amount: DecimalText
    credit_applied: DecimalText
    credit_remaining: DecimalText
    charged_amount: DecimalText
    catalog_version: str
    origin_topic: str
    origin_partition: int
    origin_offset: int
    rated_topic: str
    rated_partition: int
    rated_offset: int
    tiers: list[HistoryTierOut]
    minimum_charge_applied: bool
    memo: dict[str, str]
    quota_note: str | None


class HistoryPageOut(BaseModel):
    items: list[HistoryItem]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page.")


# -- aggregates ---------------------------------------------------------------------

class Amounts(BaseModel):
    count: int
    quantity: DecimalText
    units: list[str] = Field(description="Units of measure summed into quantity; "
                                         "quantity means something only with one unit.")
    net_amount: DecimalText
    markup_amount: DecimalText
    gross_amount: DecimalText
    credit_applied: DecimalText
    charged_amount: DecimalText


class AggregateOut(Amounts):
    billing_period: str
    provider: str | None = Field(description="null for platform services")
    product: str | None = Field(description="null for platform services")
    account: str
    currency: str
    updated_from: str = Field(description="topic:partition:offset of the last record added")


class CurrencyTotal(Amounts):
    currency: str


class AggregatesOut(BaseModel):
    billing_period: str
    items: list[AggregateOut]
    totals: list[CurrencyTotal] = Field(description="Sum of the listed items per currency")


class PeriodsOut(BaseModel):
    periods: list[str]


# -- quota ----------------------------------------------------------------------------

class Threshold(BaseModel):
    percent: int
    action: str


class LastAlert(BaseModel):
    percent: str
    action: str
    raised_at: str
    event_id: str


class QuotaOut(BaseModel):
    agreement: str
    quota: str = Field(examples=["VirtualMachine:sum:vcpu"])
    used: DecimalText
    limit: DecimalText | None = Field(description="null when the catalog has no such quota")
    percent: DecimalText | None = Field(description="used / limit x 100, 2 decimals; null "
                                                "without a limit")
    thresholds: list[Threshold]
    thresholds_fired: list[int]
    last_alert: LastAlert | None
    catalog_version: str
    updated_from: str


class QuotaStatusOut(BaseModel):
    account: str
    quotas: list[QuotaOut]


# -- estimates ------------------------------------------------------------------------

class EstimateRequest(BaseModel):
    """An operation to price, as a platform service would report it."""

    # A misspelt field (`acount_id`) is refused, not ignored: ignored, the price would be
    # the one of another account, with nothing to say so.
    model_config = ConfigDict(extra="forbid")

    service_item_type: str = Field(min_length=1, max_length=200, examples=["HardDisk"])
    operation: str = Field(min_length=1, max_length=200, examples=["Order"])
    attributes: dict[str, StrictInt | str] = Field(
        default_factory=dict, examples=[{"quantity": 2, "model": "hgst-8tb"}],
        description="Numbers as integers or decimal strings (\"0.045\"); JSON floats are "
                    "refused (not exact).")
    requester: str = Field(min_length=1, max_length=200, examples=["alice"])
    home_ou: str = Field(min_length=1, max_length=500, examples=["eng/platform"])
    account_id: str | None = Field(default=None, max_length=200,
                                   description="A project account (overrides the OU walk-up)")
    provider: str | None = Field(default=None, max_length=200)
    product: str | None = Field(default=None, max_length=200)
    service_item_id: str = Field(default="estimate", min_length=1, max_length=200)
    event_time: AwareDatetime | None = Field(
        default=None, description="When the operation would happen (default: now)")


class EstimateBasis(BaseModel):
    """What the account had used this month before the estimated operation, from the
    billing history (tiers and credits depend on it)."""

    history_rows: int
    accumulated_quantity: DecimalText = Field(description="of this rate table and code")
    credit_used: DecimalText


class EstimateOut(BaseModel):
    account_id: str
    account_kind: str
    billing_period: str
    fiscal_period: str
    rate_group: str
    rate_table: str
    rate_code: str
    unit_of_measure: str
    pricing: str
    rate: DecimalText
    quantity: DecimalText
    tiers: list[HistoryTierOut]
    minimum_charge_applied: bool
    currency: str
    net_amount: DecimalText
    markup_rate: DecimalText
    markup_amount: DecimalText
    gross_amount: DecimalText
    credit_applied: DecimalText
    credit_remaining: DecimalText
    charged_amount: DecimalText
    memo: dict[str, str]
    catalog_version: str
    estimated_at: datetime
    basis: EstimateBasis
