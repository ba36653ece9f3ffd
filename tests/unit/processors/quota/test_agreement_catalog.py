"""The agreements and agreement_templates catalog sections: loading and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.catalog import CatalogError, load_catalog_dir, load_catalog_sources
from processors.catalog.model import MissingPolicy
from tests.unit.processors.catalog.test_catalog_errors import _marked
from tests.unit.processors.quota.factories import AGREEMENTS, BASE, CATALOG, VM_COUNT, VM_VCPU

EXAMPLE = Path(__file__).resolve().parents[4] / "config" / "catalog"


def test_templates_prefill_and_sub_agreements_inherit() -> None:
    eng, sub = CATALOG.agreements["eng"], CATALOG.agreements["eng-platform"]
    assert eng.template == "vm"
    assert {k: q.limit for k, q in eng.quotas.items()} == {VM_COUNT: 10, VM_VCPU: 20}
    assert [t.percent for t in eng.policy.thresholds] == [80, 100]  # the default policy
    assert (sub.parent, sub.account, sub.ous) == ("eng", "acct-eng", ("eng/platform",))
    assert [t.percent for t in sub.policy.thresholds] == [50, 90, 100]
    assert CATALOG.master_agreement_for["acct-eng"] == "eng"
    assert CATALOG.sub_agreement_for[("eng", "eng/platform")] == "eng-platform"
    assert CATALOG.agreements["sales"].on_missing_quota is MissingPolicy.ALLOW
    assert CATALOG.agreements["ops"].on_missing_quota is MissingPolicy.REJECT


def test_adding_a_quota_detaches_from_the_template() -> None:
    extra = (
        "agreements:\n  - id: x\n    account: proj-x\n    template: vm\n"
        "    quotas: [{service_item_type: Storage, aggregate: count, quota: 3}]\n"
    )
    cat = load_catalog_sources({"base.yaml": BASE, "a.yaml": AGREEMENTS, "x.yaml": extra})
    detached = cat.agreements["x"]
    assert detached.template is None  # Storage is not in the template
    assert set(detached.quotas) == {VM_COUNT, VM_VCPU, "Storage:count"}


def test_the_example_catalog_has_the_seed_vm_agreement() -> None:
    example = load_catalog_dir(EXAMPLE)
    main = example.agreements[example.master_agreement_for["acct-eng"]]
    assert {"VirtualMachine:count", "VirtualMachine:sum:vcpu"} <= set(main.quotas)
    sub = example.agreements[example.sub_agreement_for[(main.id, "eng/platform")]]
    assert [t.percent for t in sub.policy.thresholds] == [50, 90, 100]
    assert example.agreement_templates


AGREEMENT = "agreements:\n  - id: extra\n    account: proj-x\n"
SUB = "agreements:\n  - id: extra\n    parent: eng\n"
CASES: list[tuple[str, str, str]] = [
    ("unknown key", AGREEMENT + "    quota: 3  # <-\n", "unknown key 'quota'"),
    ("master without account", "agreements:\n  - {id: extra}  # <-\n", "names its 'account'"),
    ("unknown account", AGREEMENT.replace("proj-x", "proj-y  # <-"), "unknown account 'proj-y'"),
    (
        "second master",
        AGREEMENT.replace("proj-x", "acct-eng  # <-"),
        "already has master agreement 'eng'",
    ),
    (
        "duplicate agreement",
        "agreements:\n  - id: eng  # <-\n    account: proj-x\n",
        "duplicate agreement 'eng'",
    ),
    (
        "unknown template",
        AGREEMENT + "    template: vm2  # <-\n",
        "unknown agreement template 'vm2'",
    ),
    (
        "bad aggregate",
        AGREEMENT
        + "    quotas:\n      - {service_item_type: Storage, aggregate: max, quota: 1}  # <-\n",
        "aggregate must be count or sum",
    ),
    (
        "sum without attribute",
        AGREEMENT
        + "    quotas:\n      - {service_item_type: Storage, aggregate: sum, quota: 1}  # <-\n",
        "names the quota-managed 'attribute'",
    ),
    (
        "count with attribute",
        AGREEMENT + "    quotas:\n      - service_item_type: Storage\n        aggregate: count\n"
        "        attribute: size_gb  # <-\n        quota: 1\n",
        "takes no attribute",
    ),
    (
        "attribute not quota managed",
        AGREEMENT
        + "    quotas:\n      - service_item_type: VirtualMachine\n        aggregate: sum\n"
        "        attribute: region  # <-\n        quota: 1\n",
        "with quota_managed: true",
    ),
    (
        "unknown item type",
        AGREEMENT + "    quotas:\n      - service_item_type: Gpu  # <-\n        aggregate: count\n"
        "        quota: 1\n",
        "unknown service item type 'Gpu'",
    ),
    (
        "negative quota",
        AGREEMENT + "    quotas:\n      - service_item_type: Storage\n        aggregate: count\n"
        "        quota: -1  # <-\n",
        "must not be negative",
    ),
    (
        "fractional count",
        AGREEMENT + "    quotas:\n      - service_item_type: Storage\n        aggregate: count\n"
        "        quota: 1.5  # <-\n",
        "whole number of instances",
    ),
    (
        "duplicate quota",
        AGREEMENT
        + "    quotas:\n      - {service_item_type: Storage, aggregate: count, quota: 1}\n"
        "      - {service_item_type: Storage, aggregate: count, quota: 2}  # <-\n",
        "duplicate quota 'Storage:count'",
    ),
    (
        "thresholds out of order",
        AGREEMENT + "    quota_policy:\n      - {percent: 90, action: notify}\n"
        "      - {percent: 50, action: notify}  # <-\n",
        "thresholds must increase",
    ),
    (
        "two block thresholds",
        AGREEMENT + "    quota_policy:\n      - {percent: 90, action: block}\n"
        "      - {percent: 100, action: block}  # <-\n",
        "at most one block threshold",
    ),
    (
        "unknown action",
        AGREEMENT + "    quota_policy:\n      - {percent: 90, action: email}  # <-\n",
        "action must be notify or block",
    ),
    (
        "fractional percent",
        AGREEMENT + "    quota_policy:\n      - {percent: 87.5, action: notify}  # <-\n",
        "whole number above 0",
    ),
    (
        "unknown missing policy",
        AGREEMENT + "    on_missing_quota: ignore  # <-\n",
        "must be reject or allow",
    ),
    ("ous on a master", AGREEMENT + "    ous: [eng]  # <-\n", "only a sub-agreement"),
    ("sub without OUs", "agreements:\n  - id: extra  # <-\n    parent: eng\n", "lists the sub-OUs"),
    (
        "unknown parent",
        SUB.replace("parent: eng", "parent: nope  # <-") + "    ous: [eng/data]\n",
        "unknown master agreement 'nope'",
    ),
    (
        "sub of a sub",
        SUB.replace("parent: eng", "parent: eng-platform  # <-") + "    ous: [eng/data]\n",
        "unknown master agreement",
    ),
    ("sub OU unknown", SUB + "    ous: [eng/dta]  # <-\n", "unknown OU 'eng/dta'"),
    ("sub OU not below the account", SUB + "    ous: [sales]  # <-\n", "not a sub-OU of 'eng'"),
    ("sub OU is the account's own OU", SUB + "    ous: [eng]  # <-\n", "not a sub-OU of 'eng'"),
    (
        "sub OU taken",
        SUB + "    ous: [eng/platform]  # <-\n",
        "already covered by sub-agreement 'eng-platform'",
    ),
    (
        "sub quota above parent",
        SUB + "    ous: [eng/data]\n    quotas:\n      - service_item_type: VirtualMachine\n"
        "        aggregate: count\n        quota: 11  # <-\n",
        "more than the parent's 10",
    ),
    (
        "sub quota the parent lacks",
        SUB + "    ous: [eng/data]\n    quotas:\n"
        "      - {service_item_type: Storage, aggregate: count, quota: 1}  # <-\n",
        "has no quota 'Storage:count' to share",
    ),
    (
        "sub with a template",
        SUB + "    ous: [eng/data]\n    template: vm  # <-\n",
        "takes its quotas from its parent",
    ),
    (
        "template without quotas",
        "agreement_templates:\n  - name: empty\n    quotas: []  # <-\n",
        "needs at least one quota",
    ),
    (
        "template quota on unknown attribute",
        "agreement_templates:\n  - name: t\n    quotas:\n"
        "      - service_item_type: VirtualMachine\n        aggregate: sum\n"
        "        attribute: gpus  # <-\n        quota: 1\n",
        "unknown attribute of VirtualMachine 'gpus'",
    ),
]


@pytest.mark.parametrize(("extra", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_agreements_name_file_line_and_problem(extra: str, fragment: str) -> None:
    sources = {"base.yaml": BASE, "agreements.yaml": AGREEMENTS, "zz-extra.yaml": extra}
    expected_file, expected_line = _marked(sources)
    with pytest.raises(CatalogError) as raised:
        load_catalog_sources(sources)
    assert fragment in raised.value.message, str(raised.value)
    assert (raised.value.file, raised.value.line) == (expected_file, expected_line), str(
        raised.value
    )
