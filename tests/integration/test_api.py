"""The REST API against real stores: a billing history in SQLite and in PostgreSQL filled
with records the rating engine produced, and the shared Redis holding aggregates and a
quota-view hash written by the real sinks' stores.

Expected values come from the rated records themselves (filtered and sorted here) or
are worked out by hand from config/catalog.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import redis
import schemathesis
from fastapi.testclient import TestClient
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.auth import TokenRegistry, hash_token
from api.catalogs import FeedCatalog
from processors.catalog import Catalog
from processors.events import UsageEvent
from processors.rating import estimate
from processors.state import RatingState
from sinks.aggregates import AggregatesStore, decode_rated
from sinks.quota_view import QuotaViewStore, decode_changelog
from stream.catalog_feed import CatalogFeed, CatalogUnavailable
from stream.clients import reading_consumer
from stream.settings import REPO_ROOT, Connections
from stream.stack.ports import free_port
from tests.integration.harness import Pipeline
from tests.integration.history_helpers import BACKENDS, Backend
from tests.unit.api.dataset import example_catalog, fill, rated_values, sink_records

pytestmark = pytest.mark.integration

FINANCE, ACME, ENG = "finance-secret", "acme-secret", "eng-secret"
TOKENS = TokenRegistry.from_entries([
    {"name": "finance", "sha256": hash_token(FINANCE), "role": "finance"},
    {"name": "acme", "sha256": hash_token(ACME), "role": "account",
     "account": "acct-partner-acme"},
    {"name": "eng", "sha256": hash_token(ENG), "role": "account", "account": "acct-eng"},
])
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PAGE_LIMIT, MAX_PAGE_LIMIT = 10, 50
AMOUNTS = ("net_amount", "markup_amount", "gross_amount", "credit_applied", "charged_amount")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return example_catalog()


@pytest.fixture(scope="module")
def values(catalog: Catalog) -> list[dict[str, Any]]:
    return rated_values(catalog)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None
    made = Backend(request.param, tmp_path, dsn)
    try:
        yield made
    finally:
        made.drop()


def build_client(backend: Backend, values: list[dict[str, Any]], catalog: Catalog,
                 shared_redis: tuple[redis.Redis, str]) -> Iterator[TestClient]:
    store = backend.open()
    fill(store, values)
    client, prefix = shared_redis
    app = create_app(history=store, redis_client=client, catalog=lambda: catalog,
                     tokens=TOKENS, key_prefix=prefix, page_limit=PAGE_LIMIT,
                     max_page_limit=MAX_PAGE_LIMIT, clock=lambda: NOW)
    try:
        with TestClient(app, raise_server_exceptions=False) as http:
            yield http
    finally:
        store.close()


@pytest.fixture
def api(backend: Backend, values: list[dict[str, Any]], catalog: Catalog,
        shared_redis: tuple[redis.Redis, str]) -> Iterator[TestClient]:
    """The app over a filled history of each backend."""
    yield from build_client(backend, values, catalog, shared_redis)


@pytest.fixture
def sqlite_api(tmp_path: Path, values: list[dict[str, Any]], catalog: Catalog,
               shared_redis: tuple[redis.Redis, str]) -> Iterator[TestClient]:
    """The app over a filled SQLite history (for what does not depend on the backend)."""
    yield from build_client(Backend("sqlite", tmp_path, None), values, catalog, shared_redis)


def all_pages(api: TestClient, token: str, limit: int, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        query = {**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        response = api.get("/v1/history", params=query, headers=bearer(token))
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination never ended")


def in_order(values: list[dict[str, Any]]) -> list[str]:
    """Event ids in the documented order: event time, then event id."""
    return [v["event_id"] for v in sorted(values, key=lambda v: (v["event_time"],
                                                                  v["event_id"]))]


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert "Traceback" not in response.text


# -- history -----------------------------------------------------------------------------

def test_pages_return_every_row_exactly_once_in_a_stable_order(
        api: TestClient, values: list[dict[str, Any]]) -> None:
    for limit in (1, 7, MAX_PAGE_LIMIT):
        items = all_pages(api, FINANCE, limit)
        assert [item["event_id"] for item in items] == in_order(values)
    by_id = {v["event_id"]: v for v in values}
    for item in all_pages(api, FINANCE, 7):
        source = by_id[item["event_id"]]
        assert {name: item[name] for name in AMOUNTS} == {name: source[name] for name in AMOUNTS}
        assert item["account_id"] == source["account_id"]
    first = api.get("/v1/history", headers=bearer(FINANCE)).json()
    assert len(first["items"]) == PAGE_LIMIT  # the configured default page size


def test_rows_stored_while_paging_neither_repeat_nor_go_missing(
        backend: Backend, values: list[dict[str, Any]], catalog: Catalog,
        shared_redis: tuple[redis.Redis, str]) -> None:
    store = backend.open()
    records = sink_records(values)
    try:
        fill(store, values[:30])  # the sink has written 30 rows when the reader starts
        app = create_app(history=store, redis_client=shared_redis[0], catalog=lambda: catalog,
                         tokens=TOKENS, key_prefix=shared_redis[1])
        with TestClient(app) as http:
            first = http.get("/v1/history", params={"limit": 10}, headers=bearer(FINANCE))
            store.write_batch(records[30:])  # ...and writes the rest between two pages
            items = first.json()["items"] + all_pages(http, FINANCE, 10,
                                                      cursor=first.json()["next_cursor"])
    finally:
        store.close()
    assert [item["event_id"] for item in items] == in_order(values)


@pytest.mark.parametrize("query", [
    {"account": "acct-eng"}, {"period": "2026-12"}, {"provider": "nimbus"},
    {"product": "acme-backup-std"}, {"service_item_type": "HardDisk"},
    {"service_item_id": "Storage-3"}, {"account": "acct-eng", "period": "2026-11",
                                       "service_item_type": "ObjectStorage"},
    {"account": "nobody"},
])
def test_filters_select_exactly_the_matching_rows(
        api: TestClient, values: list[dict[str, Any]], query: dict[str, str]) -> None:
    fields = {"account": "account_id", "period": "billing_period"}
    expected = [v for v in values
                if all(v[fields.get(name, name)] == wanted for name, wanted in query.items())]
    assert [item["event_id"] for item in all_pages(api, FINANCE, 4, **query)] == \
        in_order(expected)


def test_an_account_token_lists_only_its_own_rows(
        sqlite_api: TestClient, values: list[dict[str, Any]]) -> None:
    own = [v for v in values if v["account_id"] == "acct-partner-acme"]
    assert len(own) == 8
    assert [i["event_id"] for i in all_pages(sqlite_api, ACME, 3)] == in_order(own)
    assert [i["event_id"] for i in all_pages(sqlite_api, ACME, 3,
                                             account="acct-partner-acme")] == in_order(own)
    assert all_pages(sqlite_api, ACME, 3, provider="nimbus") == \
        all_pages(sqlite_api, FINANCE, 3, provider="nimbus", account="acct-partner-acme")
    assert_error(sqlite_api.get("/v1/history", params={"account": "acct-eng"},
                                headers=bearer(ACME)), 403, "FORBIDDEN")
    finance_total = len(all_pages(sqlite_api, FINANCE, MAX_PAGE_LIMIT))
    assert finance_total == len(values)


def test_errors_are_json_with_a_code(sqlite_api: TestClient) -> None:
    api = sqlite_api
    for request in (lambda h: api.get("/v1/history", headers=h),
                    lambda h: api.get("/v1/aggregates/2026-11", headers=h),
                    lambda h: api.get("/v1/quota/acct-eng", headers=h),
                    lambda h: api.post("/v1/estimates", headers=h, json={})):
        assert_error(request({}), 401, "UNAUTHENTICATED")
        assert_error(request(bearer("not-a-token")), 401, "INVALID_TOKEN")
        assert_error(request({"Authorization": f"Basic {FINANCE}"}), 401, "UNAUTHENTICATED")
    assert api.get("/v1/history", headers={}).headers["www-authenticate"] == "Bearer"
    for cursor in ("garbage", "WyJ4Il0", "e30"):  # not base64 JSON; ["x"]; {}
        assert_error(api.get("/v1/history", params={"cursor": cursor},
                             headers=bearer(FINANCE)), 400, "INVALID_CURSOR")
    assert_error(api.get("/v1/history", params={"limit": MAX_PAGE_LIMIT + 1},
                         headers=bearer(FINANCE)), 422, "INVALID_REQUEST")
    assert_error(api.get("/v1/history", params={"period": "2026-13"},
                         headers=bearer(FINANCE)), 422, "INVALID_REQUEST")
    assert_error(api.get("/v1/nothing-here", headers=bearer(FINANCE)), 404, "NOT_FOUND")
    assert_error(api.delete("/v1/history", headers=bearer(FINANCE)), 405,
                 "METHOD_NOT_ALLOWED")
    assert api.get("/healthz").json() == {"status": "ok"}


# -- aggregates --------------------------------------------------------------------------

def expected_aggregates(values: list[dict[str, Any]], period: str) -> dict[tuple[Any, ...],
                                                                           dict[str, str]]:
    sums: dict[tuple[Any, ...], dict[str, Decimal]] = {}
    for v in values:
        if v["billing_period"] != period:
            continue
        key = (v["provider"], v["product"], v["account_id"], v["currency"])
        entry = sums.setdefault(key, {"count": Decimal(0), "quantity": Decimal(0),
                                      **{n: Decimal(0) for n in AMOUNTS}})
        entry["count"] += 1
        entry["quantity"] += Decimal(v["quantity"])
        for name in AMOUNTS:
            entry[name] += Decimal(v[name])
    return {key: {name: format(value, "f") for name, value in entry.items()}
            for key, entry in sums.items()}


def aggregates_of(body: dict[str, Any]) -> dict[tuple[Any, ...], dict[str, str]]:
    return {(i["provider"], i["product"], i["account"], i["currency"]):
            {"count": str(i["count"]), "quantity": i["quantity"],
             **{n: i[n] for n in AMOUNTS}} for i in body["items"]}


def test_aggregates_of_a_period_from_the_sinks_redis_layout(
        sqlite_api: TestClient, values: list[dict[str, Any]],
        shared_redis: tuple[redis.Redis, str]) -> None:
    client, prefix = shared_redis
    store = AggregatesStore(client, "usage.rated", prefix)
    store.write_batch([decode_rated("usage.rated", 0, n, v) for n, v in enumerate(values)])
    api = sqlite_api

    november = api.get("/v1/aggregates/2026-11", headers=bearer(FINANCE)).json()
    assert aggregates_of(november) == expected_aggregates(values, "2026-11")
    gross = sum(Decimal(v["gross_amount"]) for v in values if v["billing_period"] == "2026-11")
    assert [(t["currency"], t["gross_amount"]) for t in november["totals"]] == \
        [("USD", format(gross, "f"))]
    platform = api.get("/v1/aggregates/2026-11", params={"provider": "-"},
                       headers=bearer(FINANCE)).json()
    assert {(i["provider"], i["product"]) for i in platform["items"]} == {(None, None)}
    nimbus = api.get("/v1/aggregates/2026-11", params={"provider": "nimbus"},
                     headers=bearer(FINANCE)).json()
    # 2+1+3+2 instances (1 + i % 3 for i = 1, 3, 5, 7) of nimbus-postgres at 120.00 net:
    # 960.00, markup 10%: 1056.00.
    assert [(i["product"], i["count"], i["quantity"], i["net_amount"], i["gross_amount"])
            for i in nimbus["items"]] == [("nimbus-postgres", 4, "8", "960.00", "1056.00")]
    assert api.get("/v1/aggregates/2031-01", headers=bearer(FINANCE)).json()["items"] == []
    assert api.get("/v1/aggregates", headers=bearer(FINANCE)).json() == {
        "periods": ["2026-11", "2026-12"]}

    own = api.get("/v1/aggregates/2026-11", headers=bearer(ACME)).json()
    assert {i["account"] for i in own["items"]} == {"acct-partner-acme"}
    assert aggregates_of(own) == {k: v for k, v in expected_aggregates(values, "2026-11").items()
                                  if k[2] == "acct-partner-acme"}
    assert_error(api.get("/v1/aggregates/2026-11", params={"account": "acct-eng"},
                         headers=bearer(ACME)), 403, "FORBIDDEN")
    assert_error(api.get("/v1/aggregates", headers=bearer(ACME)), 403, "FORBIDDEN")


# -- quota ---------------------------------------------------------------------------------

def test_quota_status_reads_a_real_quota_view_hash(
        sqlite_api: TestClient, catalog: Catalog,
        shared_redis: tuple[redis.Redis, str]) -> None:
    client, prefix = shared_redis
    state = {"used": "24", "fired": [50], "last_alert": {
        "percent": 50, "action": "notify", "raised_at": "2026-11-03T10:00:00+00:00",
        "event_id": "ev-9"}}
    view = QuotaViewStore(client, "rater.changelog", lambda: catalog, prefix)
    view.write_batch([decode_changelog(
        "rater.changelog", 0, 41, b"qu|acct-eng|eng-platform|VirtualMachine:sum:vcpu",
        json.dumps(state).encode())])

    response = sqlite_api.get("/v1/quota/acct-eng", headers=bearer(ENG))
    assert response.status_code == 200, response.text
    assert response.json() == {"account": "acct-eng", "quotas": [{
        # eng-platform: 32 vCPU, policy 50/90 notify, 100 block (config/catalog).
        "agreement": "eng-platform", "quota": "VirtualMachine:sum:vcpu", "used": "24",
        "limit": "32", "percent": "75.00",
        "thresholds": [{"percent": 50, "action": "notify"}, {"percent": 90, "action": "notify"},
                       {"percent": 100, "action": "block"}],
        "thresholds_fired": [50],
        "last_alert": {"percent": "50", "action": "notify",
                       "raised_at": "2026-11-03T10:00:00+00:00", "event_id": "ev-9"},
        "catalog_version": catalog.version, "updated_from": "rater.changelog:0:41"}]}
    assert sqlite_api.get("/v1/quota/acct-data", headers=bearer(FINANCE)).json() == {
        "account": "acct-data", "quotas": []}
    assert_error(sqlite_api.get("/v1/quota/acct-eng", headers=bearer(ACME)), 403, "FORBIDDEN")


# -- estimates --------------------------------------------------------------------------------

def estimate_body(**fields: Any) -> dict[str, Any]:
    return {"requester": "alice", "event_time": "2026-11-20T12:00:00Z", **fields}


def test_estimates_price_like_the_rating_engine(api: TestClient, catalog: Catalog) -> None:
    """On both backends: the month position (rows, tier accumulation, credit drawn) is the
    store's month_usage, aggregated by the database."""
    # The seed's example: a hard disk at 10 USD x 2 = 20.00 USD, no markup, no credit plan.
    disk = estimate_body(service_item_type="HardDisk", operation="Order",
                         attributes={"quantity": 2, "model": "hgst-8tb"}, home_ou="eng/platform")
    response = api.post("/v1/estimates", json=disk, headers=bearer(ENG))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["account_id"], body["rate_code"], body["rate"], body["quantity"]) == \
        ("acct-eng", "HD-UNIT", "10", "2")
    assert (body["net_amount"], body["gross_amount"], body["charged_amount"]) == \
        ("20.00", "20.00", "20.00")
    engine = estimate(UsageEvent(
        event_id="x", event_time=datetime(2026, 11, 20, 12, tzinfo=UTC),
        service_item_type="HardDisk", service_item_id="hd", operation="Order",
        attributes={"quantity": Decimal(2), "model": "hgst-8tb"}, requester="alice",
        home_ou="eng/platform", source="test"), catalog, RatingState(), NOW)
    assert body["charged_amount"] == str(engine.charged_amount)
    assert body["estimated_at"].startswith("2026-11-20T12:00:00")
    # acct-eng has 28 November rows, 12 of them hard disks on this very table and code
    # (18 disks), but unit pricing has no tiers: nothing accumulates. No credit plan.
    assert body["basis"] == {"history_rows": 28, "accumulated_quantity": "0",
                             "credit_used": "0.00"}

    # Graduated tiers continue from the month's history: acct-eng metered 80 GB in
    # November, so 50 GB more = 20 GB at 0.10 + 30 GB at 0.08 = 2.00 + 2.40 = 4.40.
    storage = estimate_body(service_item_type="ObjectStorage", operation="Meter",
                            attributes={"stored_gb": "50", "region": "us-east"},
                            home_ou="eng/platform")
    body = api.post("/v1/estimates", json=storage, headers=bearer(FINANCE)).json()
    assert body["net_amount"] == "4.40"
    assert [(t["quantity"], t["amount"]) for t in body["tiers"]] == [("20", "2.00"),
                                                                      ("30", "2.40")]
    assert body["basis"] == {"history_rows": 28, "accumulated_quantity": "80",
                             "credit_used": "0.00"}
    # December: no acct-eng row on object storage yet (only two VMs): the first tier from
    # zero, 50 x 0.10.
    december = api.post("/v1/estimates", headers=bearer(FINANCE), json={
        **storage, "event_time": "2026-12-20T00:00:00Z"}).json()
    assert december["net_amount"] == "5.00"
    assert december["basis"] == {"history_rows": 2, "accumulated_quantity": "0",
                                 "credit_used": "0.00"}

    # Marketplace with credit: 60 Bluefin WAF at 150.00 net = 9000.00, markup 18% =
    # 1620.00, gross 10620.00. acct-partner-acme (Gold, 7000.00 a month) drew 1378.00 in
    # November (46+264+138+132+92+396+46+264): 5622.00 left, so 4998.00 is charged.
    waf = estimate_body(service_item_type="MarketplaceApp", operation="Deploy",
                        attributes={"instances": 60, "plan": "monthly"},
                        home_ou="partners/acme", provider="bluefin", product="bluefin-waf")
    body = api.post("/v1/estimates", json=waf, headers=bearer(ACME)).json()
    assert {k: body[k] for k in ("net_amount", "markup_amount", "gross_amount",
                                 "credit_applied", "credit_remaining", "charged_amount")} == {
        "net_amount": "9000.00", "markup_amount": "1620.00", "gross_amount": "10620.00",
        "credit_applied": "5622.00", "credit_remaining": "0.00", "charged_amount": "4998.00"}
    assert body["basis"]["credit_used"] == "1378.00"
    assert body["basis"]["history_rows"] == 8


def test_estimate_refusals(sqlite_api: TestClient) -> None:
    api = sqlite_api
    disk = estimate_body(service_item_type="HardDisk", operation="Order",
                         attributes={"quantity": 2, "model": "hgst-8tb"}, home_ou="eng/platform")
    assert_error(api.post("/v1/estimates", json=disk, headers=bearer(ACME)), 403, "FORBIDDEN")
    assert_error(api.post("/v1/estimates", headers=bearer(FINANCE), json={
        **disk, "operation": "Return"}), 422, "NOT_BILLABLE")
    assert_error(api.post("/v1/estimates", headers=bearer(FINANCE), json={
        **disk, "service_item_type": "Teleporter"}), 422, "UNKNOWN_SERVICE_ITEM")
    assert_error(api.post("/v1/estimates", headers=bearer(FINANCE), json={
        **disk, "home_ou": "finance"}), 422, "NO_ACCOUNT")
    assert_error(api.post("/v1/estimates", headers=bearer(FINANCE), json={
        **disk, "attributes": {"quantity": 0.5, "model": "x"}}), 422, "INVALID_REQUEST")
    assert_error(api.post("/v1/estimates", headers=bearer(FINANCE), json={
        **disk, "attributes": {"quantity": "two", "model": "x"}}), 422, "INVALID_EVENT")
    assert_error(api.post("/v1/estimates", headers=bearer(FINANCE), json={
        **disk, "event_time": "2026-11-20T12:00:00"}), 422, "INVALID_REQUEST")


# -- the OpenAPI document, property-based ------------------------------------------------------

@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE,
                                  schemathesis.GenerationMode.NEGATIVE])
def test_every_operation_conforms_to_the_openapi_document(
        sqlite_api: TestClient, values: list[dict[str, Any]],
        shared_redis: tuple[redis.Redis, str], mode: schemathesis.GenerationMode) -> None:
    """Generated requests of every operation with a finance token: no 5xx, and every
    response (status, content type, body) as the document says. Negative mode sends
    invalid parameters and bodies, which must be refused with a documented 4xx.
    (schemathesis.pytest.from_fixture is not usable with pytest 9, hence hypothesis here.)"""
    client, prefix = shared_redis
    AggregatesStore(client, "usage.rated", prefix).write_batch(
        [decode_rated("usage.rated", 0, n, v) for n, v in enumerate(values)])
    schema = schemathesis.openapi.from_asgi("/openapi.json", sqlite_api.app)

    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance, response_headers_conformance, ignored_auth]

    @hypothesis.settings(max_examples=150, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(case=schema.as_strategy(generation_mode=mode))
    def conforms(case: Any) -> None:
        # Not positive_data_acceptance: a schema-valid estimate of an unknown item type is
        # a documented 422 (the catalog, not the schema, knows the item types).
        case.call_and_validate(headers=bearer(FINANCE), checks=checks)

    conforms()


# -- the command -------------------------------------------------------------------------------

def test_rating_api_serves_with_the_dev_tokens(tmp_path: Path, values: list[dict[str, Any]],
                                               connections: Connections) -> None:
    """`rating api` for real: uvicorn, a history file, the documented dev token file."""
    history = Backend("sqlite", tmp_path, None)
    url = history.url
    store = history.open()
    fill(store, values)
    store.close()
    port = free_port()
    env = {**os.environ, "REDIS_URL": connections.redis_url,
           "KAFKA_BOOTSTRAP_SERVERS": connections.kafka_bootstrap,
           "SCHEMA_REGISTRY_URL": connections.schema_registry_url}
    log = (tmp_path / "api.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "api", "--port", str(port), "--history-url", url,
         "--tokens", "config/api-tokens.dev.yaml", "--catalog-dir", "config/catalog"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (tmp_path / "api.log").read_text()
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "rating api never answered"
                time.sleep(0.2)
        page = httpx.get(f"{base}/v1/history", params={"limit": 3},
                         headers=bearer("dev-finance-token")).json()
        assert [i["event_id"] for i in page["items"]] == in_order(values)[:3]
        own = httpx.get(f"{base}/v1/history", params={"limit": 50},
                        headers=bearer("dev-acme-token")).json()
        assert {i["account_id"] for i in own["items"]} == {"acct-partner-acme"}
        assert httpx.get(f"{base}/v1/history").status_code == 401
    finally:
        server.terminate()
        server.wait(20)
        log.close()


def test_schema_documents_errors_and_security(sqlite_api: TestClient) -> None:
    document = sqlite_api.get("/openapi.json").json()
    history = document["paths"]["/v1/history"]["get"]
    for status in ("400", "401", "403", "422"):
        content = history["responses"][status]["content"]["application/json"]["schema"]
        assert content == {"$ref": "#/components/schemas/ErrorResponse"}
    limit = next(p for p in history["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == MAX_PAGE_LIMIT
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "security" not in document["paths"]["/healthz"]["get"]


def test_the_catalog_topic_provider_follows_published_versions(pipeline: Pipeline) -> None:
    topic = pipeline.settings.topics.catalog.name
    provider = FeedCatalog(CatalogFeed(reading_consumer(pipeline.connections), topic),
                           wait_s=2.0)
    try:
        with pytest.raises(CatalogUnavailable):
            provider()  # nothing published yet: estimates answer 503
        version = pipeline.load_catalog()
        deadline = time.monotonic() + 30
        while True:
            try:
                assert provider().version == version
                break
            except CatalogUnavailable:
                assert time.monotonic() < deadline, "the published catalog never arrived"
                time.sleep(0.2)
    finally:
        provider.close()
