"""The app's behaviour that needs no running service: authentication, error bodies,
unavailable stores, estimates' request typing, quota hash parsing.

The stores are real: an in-memory SQLite billing history, and a Redis client aimed at a
closed port (so Redis is really unreachable)."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import TokenRegistry, hash_token
from api.command import api_redis_client
from api.deps import CatalogProvider
from api.estimates import event_of
from api.models import EstimateRequest
from api.quota import quota_out
from processors.catalog import Catalog
from processors.errors import EventRejected
from sinks.history import open_history_store
from stream.catalog_feed import CatalogUnavailable
from tests.exposition import sample
from tests.unit.api.dataset import example_catalog
from tests.unit.sinks.test_quota_view_format import MINE, THEIRS, fake_quota_view

TOKENS = TokenRegistry.from_entries([
    {"name": "finance", "sha256": hash_token("f"), "role": "finance"},
    {"name": "eng", "sha256": hash_token("e"), "role": "account", "account": "acct-eng"}])
FINANCE = {"Authorization": "Bearer f"}
NOW = datetime(2026, 11, 20, tzinfo=UTC)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return example_catalog()


def app_with(catalog: CatalogProvider,
             redis_client: redis.Redis | None = None) -> Iterator[TestClient]:
    """The app over an empty history and ``redis_client`` (default: an unreachable one)."""
    store = open_history_store("sqlite:///:memory:")
    if redis_client is None:
        redis_client = api_redis_client(f"redis://127.0.0.1:{closed_port()}/0")
    app = create_app(history=store, redis_client=redis_client, catalog=catalog,
                     tokens=TOKENS, clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    store.close()


@pytest.fixture
def api(catalog: Catalog) -> Iterator[TestClient]:
    yield from app_with(lambda: catalog)


def test_health_needs_no_token_and_data_does(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/v1/history").status_code == 401
    assert api.get("/v1/history", headers=FINANCE).json() == {"items": [], "next_cursor": None}


def test_an_unreachable_redis_is_a_503_json_error(api: TestClient) -> None:
    for path in ("/v1/aggregates/2026-11", "/v1/quota/acct-eng", "/v1/aggregates"):
        response = api.get(path, headers=FINANCE)
        assert response.status_code == 503
        assert response.json() == {"error": {"code": "UNAVAILABLE",
                                             "message": "Redis is unavailable, retry later"}}


def test_an_unexpected_error_is_a_bare_500(catalog: Catalog) -> None:
    def broken() -> Catalog:
        raise RuntimeError("secret internals at /srv/app.py line 12")

    for client in app_with(broken):
        response = client.post("/v1/estimates", headers=FINANCE, json={
            "service_item_type": "HardDisk", "operation": "Order", "requester": "alice",
            "home_ou": "eng/platform", "attributes": {"quantity": 2}})
        assert response.status_code == 500
        assert response.json() == {"error": {"code": "INTERNAL",
                                             "message": "internal error (logged on the server)"}}
        assert "secret" not in response.text


def test_no_catalog_yet_is_a_503(catalog: Catalog) -> None:
    def none_yet() -> Catalog:
        raise CatalogUnavailable("no catalog on rating.catalog")

    for client in app_with(none_yet):
        response = client.post("/v1/estimates", headers=FINANCE, json={
            "service_item_type": "HardDisk", "operation": "Order", "requester": "alice",
            "home_ou": "eng/platform"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "UNAVAILABLE"


def test_a_misspelt_filter_is_refused_not_ignored(api: TestClient) -> None:
    response = api.get("/v1/history", params={"acount": "acct-eng"}, headers=FINANCE)
    assert response.status_code == 422
    assert "acount" in response.json()["error"]["message"]


def test_page_limits_are_checked_when_the_app_is_built(catalog: Catalog) -> None:
    store = open_history_store("sqlite:///:memory:")
    with pytest.raises(ValueError, match="page limit"):
        create_app(history=store, redis_client=redis.Redis(), catalog=lambda: catalog,
                   tokens=TOKENS, page_limit=500, max_page_limit=100)


def test_estimate_attributes_are_typed_by_the_catalog(catalog: Catalog) -> None:
    body = EstimateRequest(service_item_type="Storage", operation="Create",
                           attributes={"size_gb": "0.5", "tier": 1, "region": "us-east"},
                           requester="alice", home_ou="eng/data")
    event = event_of(body, catalog, NOW)
    assert event.attributes == {"size_gb": Decimal("0.5"), "tier": "1", "region": "us-east"}
    assert event.event_time == NOW
    assert event.account_id is None
    undeclared = EstimateRequest(service_item_type="Nope", operation="X", requester="a",
                                 home_ou="b", attributes={"n": 3, "t": "x"})
    assert event_of(undeclared, catalog, NOW).attributes == {"n": Decimal(3), "t": "x"}
    with pytest.raises(EventRejected, match="size_gb"):
        event_of(EstimateRequest(service_item_type="Storage", operation="Create",
                                 attributes={"size_gb": "lots"}, requester="a", home_ou="b"),
                 catalog, NOW)


def agreements_used(client: TestClient, account: str) -> list[tuple[str, str]]:
    """(agreement, used) of each quota GET /v1/quota/<account> answers."""
    response = client.get(f"/v1/quota/{account}", headers=FINANCE)
    assert response.status_code == 200, response.text
    return [(q["agreement"], q["used"]) for q in response.json()["quotas"]]


def test_each_account_reads_its_own_quotas_where_unescaped_keys_would_collide(
        catalog: Catalog) -> None:
    view = fake_quota_view((MINE, {"used": "3", "fired": []}),
                           (THEIRS, {"used": "5", "fired": []}))
    for client in app_with(lambda: catalog, view):
        assert agreements_used(client, MINE.account) == [(MINE.agreement, "3")]
        assert agreements_used(client, THEIRS.account) == [(THEIRS.agreement, "5")]


ESTIMATE = {"service_item_type": "HardDisk", "operation": "Order", "requester": "alice",
            "home_ou": "eng/platform", "attributes": {"quantity": 2}}


@pytest.mark.parametrize(("change", "code", "named"), [
    # No UTC value: one hour before year 1, one hour after year 9999.
    ({"event_time": "0001-01-01T00:00:00+01:00"}, "INVALID_REQUEST", "event_time"),
    ({"event_time": "9999-12-31T23:59:59-01:00"}, "INVALID_REQUEST", "event_time"),
    ({"attributes": {"quantity": "1E+100"}}, "INVALID_EVENT", "quantity"),
    # A misspelt field would price another account's operation: refused, not ignored.
    ({"acount_id": "proj-apollo"}, "INVALID_REQUEST", "acount_id"),
    # What the rater dead-letters as INVALID_EVENT (stream/codec.py) is not priced either.
    ({"requester": "al\u0000ice"}, "INVALID_EVENT", "requester"),
    ({"account_id": "proj-\u0000apollo"}, "INVALID_EVENT", "account_id"),
    ({"attributes": {"quantity": 2, "model": "hgst\u00008tb"}}, "INVALID_EVENT", "model"),
    ({"home_ou": "   "}, "INVALID_EVENT", "home_ou"),
])
def test_a_bad_estimate_request_is_a_422_naming_the_problem(
        api: TestClient, change: dict[str, object], code: str, named: str) -> None:
    response = api.post("/v1/estimates", headers=FINANCE, json={**ESTIMATE, **change})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert named in error["message"]


def test_a_body_that_is_not_json_is_a_400(api: TestClient) -> None:
    response = api.post("/v1/estimates", headers={**FINANCE, "Content-Type": "application/json"},
                        content=b"not json")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "BAD_REQUEST"
    assert "not valid JSON" in error["message"]


def test_an_estimate_at_the_edge_of_the_datetime_range_in_utc_is_priced(
        api: TestClient) -> None:
    """Only times with no UTC value are refused; the last second of year 9999 is one."""
    response = api.post("/v1/estimates", headers=FINANCE,
                        json={**ESTIMATE, "event_time": "9999-12-31T23:59:59+00:00"})
    assert response.status_code == 200, response.text
    assert response.json()["billing_period"] == "9999-12"


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_cursor_out_of_the_datetime_range_is_an_invalid_cursor(api: TestClient,
                                                                 when: str) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps([when, "ev-1"]).encode()).decode()
    response = api.get("/v1/history", params={"cursor": cursor.rstrip("=")},
                       headers=FINANCE)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "INVALID_CURSOR"


def test_a_quota_hash_becomes_a_quota_item() -> None:
    fields = {"account": "acct-data", "agreement": "data-main", "quota": "SaasSeat:count",
              "used": "3", "limit": "", "percent": "", "thresholds": "",
              "thresholds_fired": "", "last_alert_percent": "", "last_alert_action": "",
              "last_alert_at": "", "last_alert_event": "", "catalog_version": "v1",
              "updated_from": "rater.changelog:3:9"}
    item = quota_out(fields)
    assert (item.limit, item.percent, item.thresholds, item.thresholds_fired,
            item.last_alert) == (None, None, [], [], None)
    fired = quota_out({**fields, "limit": "10", "percent": "30.00",
                       "thresholds": "80:notify,100:block", "thresholds_fired": "80",
                       "last_alert_percent": "80", "last_alert_action": "notify",
                       "last_alert_at": "t", "last_alert_event": "ev"})
    assert [(t.percent, t.action) for t in fired.thresholds] == [(80, "notify"),
                                                                  (100, "block")]
    assert fired.thresholds_fired == [80]
    assert fired.last_alert is not None
    assert fired.last_alert.event_id == "ev"


def _count(exposition: str, series: str) -> float:
    return sample(exposition, series) or 0.0  # absent: not counted yet


def test_requests_are_counted_by_route_template_method_and_status(api: TestClient) -> None:
    ok = 'rating_api_requests_total{method="GET",route="/v1/history",status="200"}'
    denied = 'rating_api_requests_total{method="GET",route="/v1/history",status="401"}'
    unavailable = ('rating_api_requests_total{method="GET",route="/v1/aggregates/{period}",'
                   'status="503"}')
    unmatched = 'rating_api_requests_total{method="GET",route="unmatched",status="404"}'
    openapi = 'rating_api_requests_total{method="GET",route="/openapi.json",status="200"}'
    before = api.get("/metrics").text
    assert api.get("/openapi.json").status_code == 200
    api.get("/v1/history", headers=FINANCE)
    api.get("/v1/history")
    api.get("/v1/history")
    api.get("/v1/aggregates/2026-11", headers=FINANCE)  # Redis is unreachable here
    api.get("/v1/aggregates/2026-12", headers=FINANCE)
    api.get("/no/such/path")
    response = api.get("/metrics")  # no token, like /healthz
    assert response.status_code == 200
    after = response.text
    for series, added in ((ok, 1), (denied, 2), (unavailable, 2), (unmatched, 1),
                          (openapi, 1)):
        assert _count(after, series) - _count(before, series) == added, series
    timed = 'rating_api_request_seconds_count{route="/v1/aggregates/{period}"}'
    assert _count(after, timed) - _count(before, timed) == 2
    assert 'route="/metrics"' not in after  # the scrapes themselves are not counted
    assert "/metrics" not in api.get("/openapi.json").json()["paths"]
