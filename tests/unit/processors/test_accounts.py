import pytest

from processors.accounts import ResolvedAccount, ou_and_ancestors, resolve_account
from processors.catalog import AccountKind
from processors.errors import EventRejected, ReasonCode
from tests.unit.processors.factories import catalog, event

CATALOG = catalog()


def test_a_deep_ou_finds_its_ancestors_tenant_account() -> None:
    resolved = resolve_account(event(home_ou="eng/platform/k8s"), CATALOG)
    assert resolved == ResolvedAccount("acct-eng", AccountKind.TENANT)
    assert resolved.kind == "tenant"


def test_the_nearest_ou_with_an_account_wins() -> None:
    assert resolve_account(event(home_ou="eng/data"), CATALOG).account_id == "acct-data"
    assert resolve_account(event(home_ou="eng"), CATALOG).account_id == "acct-eng"


def test_an_ou_missing_from_the_tree_still_walks_up_by_path() -> None:
    assert resolve_account(event(home_ou="eng/new-team"), CATALOG).account_id == "acct-eng"


def test_no_account_up_to_the_root_is_rejected() -> None:
    with pytest.raises(EventRejected) as raised:
        resolve_account(event("e-9", home_ou="finance/payroll"), CATALOG)
    assert raised.value.reason is ReasonCode.NO_ACCOUNT
    assert "e-9" in raised.value.message
    assert "'finance/payroll'" in raised.value.message
    assert raised.value.details["home_ou"] == "finance/payroll"


def test_an_explicit_project_account_overrides_the_walk_up() -> None:
    resolved = resolve_account(event(home_ou="eng/platform", account_id="proj-x"), CATALOG)
    assert resolved == ResolvedAccount("proj-x", AccountKind.PROJECT)
    assert resolved.kind == "project"


def test_an_explicit_account_that_does_not_exist_is_rejected() -> None:
    with pytest.raises(EventRejected) as raised:
        resolve_account(event("e-7", account_id="proj-nope"), CATALOG)
    assert raised.value.reason is ReasonCode.NO_ACCOUNT
    assert "e-7" in raised.value.message
    assert "'proj-nope'" in raised.value.message


def test_ou_and_ancestors() -> None:
    assert list(ou_and_ancestors("eng/data/ml")) == ["eng/data/ml", "eng/data", "eng"]
    assert list(ou_and_ancestors("/eng/")) == ["eng"]
    assert list(ou_and_ancestors("")) == []
