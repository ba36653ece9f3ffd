"""The ``agreement_templates`` and ``agreements`` sections: quotas per account.

Entries are read one at a time (``parse_template``, ``parse_agreement``), then
``build_agreements`` resolves templates, parents and OUs once every section
is read, so a reference can point anywhere in any file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from types import MappingProxyType

from processors.catalog.errors import CatalogError, SourceRef
from processors.catalog.model import (
    Account,
    AccountKind,
    Aggregate,
    Agreement,
    AgreementTemplate,
    AttributeType,
    MissingPolicy,
    Quota,
    QuotaEffect,
    QuotaPolicy,
    ServiceItemType,
    Threshold,
    ThresholdAction,
)
from processors.catalog.parse import optional_text, parse_named
from processors.catalog.source import Fields, Value

# The seed's example policy: notify the account manager at 80 %, stop ordering at 100 %.
DEFAULT_POLICY = QuotaPolicy(
    (
        Threshold(80, ThresholdAction.NOTIFY, SourceRef("<default>", 0, "default quota policy")),
        Threshold(100, ThresholdAction.BLOCK, SourceRef("<default>", 0, "default quota policy")),
    )
)


@dataclass(frozen=True, slots=True)
class RawAgreement:
    """An agreement as written, before its template and parent are applied."""

    id: str
    account: str | None
    parent: str | None
    ous: tuple[tuple[str, Value], ...]
    template: str | None
    quotas: Mapping[str, Quota]
    policy: QuotaPolicy | None
    on_missing_quota: MissingPolicy | None
    ref: SourceRef


def parse_template(value: Value) -> AgreementTemplate:
    fields = value.mapping({"name", "quotas"}, {"description", "quota_policy"})
    name = fields.req("name").identifier()
    fields = fields.renamed(f"agreement_template {name!r}")
    quotas = _quotas(fields)
    if not quotas:
        raise fields.fail("quotas", "an agreement template needs at least one quota")
    return AgreementTemplate(
        name=name,
        description=optional_text(fields, "description"),
        quotas=MappingProxyType(quotas),
        policy=_policy(fields),
        ref=fields.ref,
    )


def parse_agreement(value: Value) -> RawAgreement:
    fields = value.mapping(
        {"id"},
        {
            "account",
            "parent",
            "ous",
            "template",
            "quotas",
            "quota_policy",
            "on_missing_quota",
            "description",
        },
    )
    agreement_id = fields.req("id").identifier()
    fields = fields.renamed(f"agreement {agreement_id!r}")
    account, parent = fields.get("account"), fields.get("parent")
    if parent is None and account is None:
        raise fields.owner.fail("a master agreement names its 'account'")
    if parent is None and fields.get("ous") is not None:
        raise fields.fail("ous", "only a sub-agreement (with 'parent') lists OUs")
    if parent is not None and fields.get("template") is not None:
        raise fields.fail("template", "a sub-agreement takes its quotas from its parent")
    if parent is not None and fields.get("on_missing_quota") is not None:
        raise fields.fail("on_missing_quota", "a sub-agreement follows its parent's")
    ous = tuple((item.text(), item) for item in fields.each("ous"))
    if parent is not None and not ous:
        raise fields.owner.fail("a sub-agreement lists the sub-OUs it covers in 'ous'")
    template, missing = fields.get("template"), fields.get("on_missing_quota")
    return RawAgreement(
        id=agreement_id,
        account=account.identifier() if account is not None else None,
        parent=parent.identifier() if parent is not None else None,
        ous=ous,
        template=template.identifier() if template is not None else None,
        quotas=MappingProxyType(_quotas(fields)),
        policy=_policy(fields),
        on_missing_quota=_missing_policy(missing) if missing is not None else None,
        ref=fields.ref,
    )


def _quotas(fields: Fields) -> dict[str, Quota]:
    return parse_named(fields.each("quotas"), _parse_quota, lambda q: q.id, "quota")


def _parse_quota(value: Value) -> Quota:
    fields = value.mapping({"service_item_type", "aggregate", "quota"}, {"attribute"})
    aggregate_value = fields.req("aggregate")
    text = aggregate_value.text()
    if text not in {member.value for member in Aggregate}:
        raise aggregate_value.fail(f"aggregate must be count or sum, got {text!r}")
    aggregate = Aggregate(text)
    attribute = fields.get("attribute")
    if aggregate is Aggregate.SUM and attribute is None:
        raise fields.owner.fail("a sum quota names the quota-managed 'attribute' it totals")
    if aggregate is Aggregate.COUNT and attribute is not None:
        raise attribute.fail("a count quota counts instances; it takes no attribute")
    limit_value = fields.req("quota")
    limit = limit_value.decimal()
    if limit < 0:
        raise limit_value.fail(f"quota must not be negative, got {limit}")
    if aggregate is Aggregate.COUNT and limit != limit.to_integral_value():
        raise limit_value.fail(f"a count quota is a whole number of instances, got {limit}")
    return Quota(
        service_item_type=fields.req("service_item_type").identifier(),
        aggregate=aggregate,
        attribute=attribute.identifier() if attribute is not None else None,
        limit=limit,
        ref=fields.ref,
    )


def _policy(fields: Fields) -> QuotaPolicy | None:
    if fields.get("quota_policy") is None:
        return None
    thresholds = [_parse_threshold(item) for item in fields.each("quota_policy")]
    if not thresholds:
        raise fields.fail("quota_policy", "a quota policy needs at least one threshold")
    blocking = 0
    for previous, current in pairwise(thresholds):
        if current.percent <= previous.percent:
            raise CatalogError.at(
                current.ref, f"thresholds must increase: {current.percent} after {previous.percent}"
            )
    for threshold in thresholds:
        blocking += threshold.action is ThresholdAction.BLOCK
        if blocking > 1:
            raise CatalogError.at(threshold.ref, "a quota policy has at most one block threshold")
    return QuotaPolicy(tuple(thresholds))


def _parse_threshold(value: Value) -> Threshold:
    fields = value.mapping({"percent", "action"})
    percent_value = fields.req("percent")
    percent = percent_value.decimal()
    if percent <= 0 or percent != percent.to_integral_value():
        raise percent_value.fail(f"percent must be a whole number above 0, got {percent}")
    action_value = fields.req("action")
    action = action_value.text()
    if action not in {member.value for member in ThresholdAction}:
        raise action_value.fail(f"action must be notify or block, got {action!r}")
    return Threshold(int(percent), ThresholdAction(action), fields.ref)


def _missing_policy(value: Value) -> MissingPolicy:
    text = value.text()
    if text not in {member.value for member in MissingPolicy}:
        raise value.fail(f"on_missing_quota must be reject or allow, got {text!r}")
    return MissingPolicy(text)


@dataclass(frozen=True, slots=True)
class AgreementIndex:
    agreements: Mapping[str, Agreement]
    master_for: Mapping[str, str]  # account -> master agreement
    sub_for: Mapping[tuple[str, str], str]  # (master agreement, OU) -> sub-agreement


def check_templates(
    templates: Mapping[str, AgreementTemplate], item_types: Mapping[str, ServiceItemType]
) -> None:
    for template in templates.values():
        for quota in template.quotas.values():
            _check_quota(quota, item_types)


def build_agreements(
    raw: Mapping[str, RawAgreement],
    templates: Mapping[str, AgreementTemplate],
    item_types: Mapping[str, ServiceItemType],
    accounts: Mapping[str, Account],
    org_units: frozenset[str],
    tenant_by_ou: Mapping[str, str],
) -> AgreementIndex:
    """Agreements with templates and parents applied, and the indexes to find them."""
    agreements: dict[str, Agreement] = {}
    master_for: dict[str, str] = {}
    for entry in raw.values():
        for quota in entry.quotas.values():
            _check_quota(quota, item_types)
        if entry.parent is None:
            master = _master(entry, templates, accounts)
            if master.account in master_for:
                raise CatalogError.at(
                    entry.ref.at("account"),
                    f"account {master.account!r} already has master agreement "
                    f"{master_for[master.account]!r}",
                )
            master_for[master.account] = master.id
            agreements[master.id] = master
    sub_for: dict[tuple[str, str], str] = {}
    masters = dict(agreements)  # a sub-agreement's parent is a master, never another sub
    for entry in raw.values():
        if entry.parent is not None:
            sub = _sub(entry, masters, accounts, org_units, tenant_by_ou)
            for ou, value in entry.ous:
                taken = next((s for (_, o), s in sub_for.items() if o == ou), None)
                if taken is not None:
                    raise value.fail(f"OU {ou!r} is already covered by sub-agreement {taken!r}")
                _refuse_nested(ou, value, sub_for)
                sub_for[(sub.parent or "", ou)] = sub.id
            agreements[sub.id] = sub
    return AgreementIndex(
        MappingProxyType(agreements), MappingProxyType(master_for), MappingProxyType(sub_for)
    )


def _refuse_nested(ou: str, value: Value, sub_for: Mapping[tuple[str, str], str]) -> None:
    """A sub-agreement covers its OUs' whole sub-trees, and each OU belongs to at most one
    sub-agreement (DOMAIN.md): an OU at or below another sub-agreement's OU, or above it,
    would count its events against one share only while the other's sub-tree is meant
    to hold them all."""
    for (_, other), sub_id in sub_for.items():
        if ou.startswith(other + "/"):
            raise value.fail(f"OU {ou!r} is below {other!r}, which sub-agreement {sub_id!r} "
                             "covers with its sub-tree: an OU belongs to one sub-agreement")
        if other.startswith(ou + "/"):
            raise value.fail(f"OU {ou!r} is above {other!r}, which sub-agreement {sub_id!r} "
                             "covers: an OU belongs to one sub-agreement")


def _check_quota(quota: Quota, item_types: Mapping[str, ServiceItemType]) -> None:
    item = item_types.get(quota.service_item_type)
    if item is None:
        raise CatalogError.at(
            quota.ref.at("service_item_type"),
            f"unknown service item type {quota.service_item_type!r}",
        )
    if not any(attribute.quota_managed for attribute in item.attributes.values()):
        raise CatalogError.at(
            quota.ref.at("service_item_type"),
            f"{item.name} has no quota_managed attribute: its instances are not "
            "quota-checked, so an agreement cannot limit them",
        )
    if not any(op.quota is QuotaEffect.ACQUIRE for op in item.operations.values()):
        raise CatalogError.at(
            quota.ref.at("service_item_type"),
            f"none of {item.name}'s operations ({', '.join(item.operations)}) takes quota "
            "(declare `quota: acquire` on the one that creates an instance), so an agreement "
            "cannot limit it",
        )
    if quota.attribute is None:
        return
    attribute = item.attributes.get(quota.attribute)
    if attribute is None:
        raise CatalogError.at(
            quota.ref.at("attribute"), f"unknown attribute of {item.name} {quota.attribute!r}"
        )
    if attribute.type is not AttributeType.NUMBER or not attribute.quota_managed:
        raise CatalogError.at(
            quota.ref.at("attribute"),
            f"attribute {quota.attribute!r} of {item.name} must be a number "
            "with quota_managed: true to be summed by a quota",
        )


def _master(
    entry: RawAgreement,
    templates: Mapping[str, AgreementTemplate],
    accounts: Mapping[str, Account],
) -> Agreement:
    account = entry.account or ""
    if account not in accounts:
        raise CatalogError.at(entry.ref.at("account"), f"unknown account {account!r}")
    quotas = dict(entry.quotas)
    policy = entry.policy
    attached = entry.template
    if entry.template is not None:
        template = templates.get(entry.template)
        if template is None:
            raise CatalogError.at(
                entry.ref.at("template"), f"unknown agreement template {entry.template!r}"
            )
        # The template prefills; the agreement's own quotas override its limits.
        quotas = {**template.quotas, **entry.quotas}
        policy = policy or template.policy
        if set(entry.quotas) - set(template.quotas):
            attached = None  # it adds quotas the template lacks: detached from it
    return Agreement(
        id=entry.id,
        account=account,
        parent=None,
        ous=(),
        template=attached,
        quotas=MappingProxyType(quotas),
        policy=policy or DEFAULT_POLICY,
        on_missing_quota=entry.on_missing_quota or MissingPolicy.REJECT,
        ref=entry.ref,
    )


def _sub(
    entry: RawAgreement,
    masters: Mapping[str, Agreement],
    accounts: Mapping[str, Account],
    org_units: frozenset[str],
    tenant_by_ou: Mapping[str, str],
) -> Agreement:
    parent = masters.get(entry.parent or "")
    if parent is None:
        raise CatalogError.at(entry.ref.at("parent"), f"unknown master agreement {entry.parent!r}")
    if entry.account is not None and entry.account != parent.account:
        raise CatalogError.at(
            entry.ref.at("account"),
            f"a sub-agreement belongs to its parent's account {parent.account!r}",
        )
    account = accounts[parent.account]
    if account.kind is not AccountKind.TENANT or account.ou is None:
        raise CatalogError.at(
            entry.ref.at("parent"), "sub-agreements share the quota of a tenant account"
        )
    for ou, value in entry.ous:
        if ou not in org_units:
            raise value.fail(f"unknown OU {ou!r}")
        if not ou.startswith(account.ou + "/"):
            raise value.fail(f"OU {ou!r} is not a sub-OU of {account.ou!r} ({account.id})")
        owner = _tenant_of(ou, tenant_by_ou)
        if owner != account.id:
            raise value.fail(f"OU {ou!r} is covered by tenant account {owner!r}")
    for quota in entry.quotas.values():
        shared = parent.quotas.get(quota.id)
        if shared is None:
            raise CatalogError.at(
                quota.ref, f"parent agreement {parent.id!r} has no quota {quota.id!r} to share"
            )
        if quota.limit > shared.limit:
            raise CatalogError.at(
                quota.ref.at("quota"),
                f"quota {quota.limit} is more than the parent's {shared.limit}",
            )
    return Agreement(
        id=entry.id,
        account=parent.account,
        parent=parent.id,
        ous=tuple(ou for ou, _ in entry.ous),
        template=None,
        quotas=MappingProxyType({**parent.quotas, **entry.quotas}),
        policy=entry.policy or parent.policy,
        on_missing_quota=parent.on_missing_quota,
        ref=entry.ref,
    )


def _tenant_of(ou: str, tenant_by_ou: Mapping[str, str]) -> str | None:
    segments = ou.split("/")
    for end in range(len(segments), 0, -1):
        tenant = tenant_by_ou.get("/".join(segments[:end]))
        if tenant is not None:
            return tenant
    return None
