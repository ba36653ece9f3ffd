"""A billing run over one partition's campuses: which licences it bills, and their charges.

Which licences a run covers (``covered``), for fiscal year *Y* and the run's
provisioning window ending with its ``through_month``:

- annual: every active licence provisioned before the window ends (the whole
  year, 12 months, whatever its provisioning date);
- true-up: every active *net new* licence: provisioned inside *Y* before the
  window ends, and not from a transfer. Prorated from its provisioning date.
  The window nominally starts after the previous run's (August for the
  January run, January for the June run); starting it at the beginning of *Y*
  also catches a licence provisioned after the previous run went out.

Every licence is billed at most once per fiscal year: a covered licence that
is already marked paid for *Y* is skipped, and a billed one is marked paid
in the same state change. That makes a run idempotent and lets runs overlap
safely. Charges are priced by the rating engine (``processors.rating.estimate``)
as usage events of the catalog's licence item type: the rate group of the
campus's account at the billing date, the rate table row of the product,
quantity = the months billed, one half-even rounding per line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time

from processors.catalog import Catalog
from processors.catalog.licence_model import (
    MONTHS_ATTRIBUTE,
    PRODUCT_ATTRIBUTE,
    BillingRunSpec,
    LicenceCatalog,
    RunKind,
)
from processors.errors import EventRejected, ReasonCode
from processors.events import Origin, RatedUsage, UsageEvent
from processors.licences.fiscal import FULL_YEAR, FiscalYear, Prorated, prorate
from processors.licences.model import BillingRunRequest, Licence, PaidMark
from processors.licences.state import SubscriptionState
from processors.rating import NotBillableError, estimate
from processors.state import RatingState


@dataclass(frozen=True, slots=True)
class ChargeFailure:
    """A covered licence the engine could not price (left unpaid: a re-run retries it)."""

    event_id: str
    campus: str
    record_number: str
    rejection: EventRejected


@dataclass(frozen=True, slots=True)
class RunOutcome:
    year: FiscalYear
    spec: BillingRunSpec
    charges: tuple[RatedUsage, ...]
    failures: tuple[ChargeFailure, ...]
    already_paid: int  # covered licences some run had billed for this year already


def charge_id(year: FiscalYear, run: str, campus: str, record_number: str) -> str:
    """Deterministic: the same licence, year and run always give the same event id."""
    return f"licence:{year.label}:{run}:{campus}:{record_number}"


def run_source(year: FiscalYear, run: str) -> str:
    """The ``source`` of every charge of one run: how reports find them in the history."""
    return f"licences:{year.label}:{run}"


def resolve_run(request: BillingRunRequest, catalog: Catalog) -> tuple[LicenceCatalog,
                                                                        BillingRunSpec]:
    licences = catalog.licences
    if licences is None:
        raise EventRejected(ReasonCode.UNKNOWN_SERVICE_ITEM,
                            f"billing run {request.request_id}: catalog {catalog.version} "
                            "bills no licences (no licence_billing section)")
    spec = licences.runs.get(request.run)
    if spec is None:
        raise EventRejected(ReasonCode.INVALID_EVENT,
                            f"billing run {request.request_id}: unknown run {request.run!r} "
                            f"(catalog {catalog.version} has {', '.join(licences.runs)})",
                            {"run": request.run})
    return licences, spec


def run_billing(request: BillingRunRequest, catalog: Catalog, state: SubscriptionState,
                origin: Origin, rated_at: datetime) -> RunOutcome:
    """Bill every covered, unpaid licence in ``state`` and mark it paid.

    Raises EventRejected (nothing changed) when the run itself is unknown, or is for a
    fiscal year whose paid marks may have been dropped (``closed_year``).
    """
    licences, spec = resolve_run(request, catalog)
    year = FiscalYear(request.fiscal_year, licences.fiscal_year_start_month)
    closed_year(request, state.newest_billed_year())
    charges: list[RatedUsage] = []
    failures: list[ChargeFailure] = []
    already_paid = 0
    for campus in state.campuses():
        campus_licences = state.licences_of(campus)
        held = held_by_user(campus_licences, licences, billing_date(year, spec))
        for licence in campus_licences:
            if not covered(licence, spec, year):
                continue
            if state.paid(year.number, campus, licence.record_number) is not None:
                already_paid += 1
                continue
            event_id = charge_id(year, spec.name, campus, licence.record_number)
            try:
                record = price_licence(licence, spec, year, catalog, origin, rated_at,
                                       held.get(licence.user, {}))
            except EventRejected as rejection:
                failures.append(ChargeFailure(event_id, campus, licence.record_number,
                                              rejection))
                continue
            charges.append(record)
            state.mark_paid(PaidMark(year.number, campus, licence.record_number, spec.name,
                                     event_id))
    state.note_billed(year.number)
    # Marks are kept for the newest year billed and the one before it (whose late
    # true-ups may still run), not relative to this run's year: a run for an older
    # year must never drop the marks of a newer one.
    newest = state.newest_billed_year()
    previous = FiscalYear((year.number if newest is None else newest) - 1, year.start_month)
    state.forget_before(previous.number, previous.start)
    return RunOutcome(year, spec, tuple(charges), tuple(failures), already_paid)


def closed_year(request: BillingRunRequest, newest_billed: int | None) -> None:
    """Refuse a run for a fiscal year before the one before the newest billed: its paid
    marks are dropped (SubscriptionState.forget_before), so it could bill licences twice."""
    if newest_billed is not None and request.fiscal_year < newest_billed - 1:
        raise EventRejected(
            ReasonCode.INVALID_EVENT,
            f"billing run {request.request_id}: fiscal year {request.fiscal_year} is closed: "
            f"{newest_billed} has been billed, and only {newest_billed - 1} and later can "
            "still be billed without billing a licence twice",
            {"run": request.run, "fiscal_year": str(request.fiscal_year)})


def billing_date(year: FiscalYear, spec: BillingRunSpec) -> date:
    """The run's billing date, the first day of its month: the charges' billing period
    and rate group, and the day a licence must be held on to be billed."""
    return year.month_start(spec.month)


def covered(licence: Licence, spec: BillingRunSpec, year: FiscalYear) -> bool:
    # Active on the run's billing date, whenever the run is processed: a deprovisioning
    # dated later has not happened yet (the licence is billed), one dated before has.
    if (not licence.active_on(billing_date(year, spec))
            or licence.provisioned_on >= year.month_end(spec.through_month)):
        return False
    if spec.kind is RunKind.ANNUAL:
        return True
    return year.contains(licence.provisioned_on) and not licence.from_transfer  # net new


def held_by_user(campus_licences: list[Licence], licences: LicenceCatalog,
                 on: date) -> dict[str, dict[str, list[str]]]:
    """user -> product group -> names of the licences the user holds ``on`` the run's
    billing date (the seed's invoices list "the active licenses held by the user")."""
    held: dict[str, dict[str, list[str]]] = {}
    for licence in campus_licences:
        product = licences.products.get(licence.product)
        if licence.active_on(on) and product is not None:
            held.setdefault(licence.user, {}).setdefault(product.group, []).append(product.name)
    return held


def price_licence(licence: Licence, spec: BillingRunSpec, year: FiscalYear, catalog: Catalog,
                  origin: Origin, rated_at: datetime,
                  held: dict[str, list[str]] | None = None) -> RatedUsage:
    """The charge for one licence, priced by the rating engine; EventRejected when it cannot.

    ``held``: product group -> the active licences its user holds (for the invoice).
    """
    licences = catalog.licences
    event_id = charge_id(year, spec.name, licence.campus, licence.record_number)
    campus = licences.campuses.get(licence.campus) if licences is not None else None
    product = licences.products.get(licence.product) if licences is not None else None
    if licences is None or campus is None or product is None:
        reason = ReasonCode.NO_ACCOUNT if campus is None else ReasonCode.UNKNOWN_PRODUCT
        raise EventRejected(reason, f"licence charge {event_id}: campus {licence.campus!r} "
                            f"or product {licence.product!r} is not in catalog "
                            f"{catalog.version}", {"campus": licence.campus,
                                                   "product": licence.product})
    months = (prorate(licence.provisioned_on, year, licences.proration)
              if spec.kind is RunKind.TRUE_UP else Prorated(FULL_YEAR, "full year"))
    account = catalog.accounts.get(campus.account)
    event = UsageEvent(
        event_id=event_id,
        # The run's billing date: its month is the charge's billing period, and it picks
        # the rate group in force (the same for every licence of the run).
        event_time=datetime.combine(billing_date(year, spec), time(0), UTC),
        service_item_type=licences.service_item_type,
        service_item_id=licence.record_number,
        operation=spec.kind.operation,
        attributes={PRODUCT_ATTRIBUTE: licence.product, MONTHS_ATTRIBUTE: months.months},
        requester=licence.user,
        home_ou=(account.ou if account is not None and account.ou else campus.id),
        source=run_source(year, spec.name),
        account_id=campus.account,
        product=licence.product,
    )
    try:
        # A fresh RatingState: the catalog check guarantees unit pricing and no credit plan,
        # so no running total of the rater's is involved.
        record = estimate(event, catalog, RatingState(), rated_at)
    except NotBillableError as exc:
        raise EventRejected(ReasonCode.UNKNOWN_OPERATION, str(exc)) from None
    memo = {
        "campus": campus.id,
        "campus_name": campus.name,
        "billing_target": campus.billing_target,
        "product_group": product.group,
        "licence": product.name,
        "active_licences": ", ".join(sorted(set((held or {}).get(product.group, [product.name])))),
        "fiscal_year": year.label,
        "billing_run": spec.name,
        "provisioned_on": licence.provisioned_on.isoformat(),
        "holder_since": licence.holder_since.isoformat(),
        "transferred": "yes" if licence.transferred else "no",
        "proration": months.explanation,
    }
    if licence.unit_billing_target:
        memo["unit_billing_target"] = licence.unit_billing_target
    return replace(record, origin=origin, memo={**record.memo, **memo})
