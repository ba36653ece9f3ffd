"""GET /v1/quota/{account}: the account's quota status from the Redis quota view.

Reads the layout documented in sinks/quota_view.py: the account's index set,
then every hash it lists, in one round trip. The index key comes from the view's own
``index_key`` (key parts escaped), never spelt out here, so reads find what it wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import Caller, Services, account_in_scope
from api.errors import error_responses
from api.history import MAX_TEXT, TEXT
from api.models import LastAlert, QuotaOut, QuotaStatusOut, Threshold
from sinks.quota_view import index_key

router = APIRouter(tags=["quota"])


def quota_out(fields: Mapping[str, str]) -> QuotaOut:
    """One quota hash as the response item ("" in the hash is null / empty here)."""
    thresholds = []
    for item in filter(None, fields.get("thresholds", "").split(",")):
        percent, _, action = item.partition(":")
        thresholds.append(Threshold(percent=int(percent), action=action))
    alerted = fields.get("last_alert_percent", "")
    last = None if not alerted else LastAlert(
        percent=alerted, action=fields.get("last_alert_action", ""),
        raised_at=fields.get("last_alert_at", ""), event_id=fields.get("last_alert_event", ""))
    return QuotaOut(
        agreement=fields["agreement"], quota=fields["quota"], used=fields["used"],
        limit=fields.get("limit") or None, percent=fields.get("percent") or None,
        thresholds=thresholds,
        thresholds_fired=[int(p) for p in filter(None, fields.get("thresholds_fired",
                                                                  "").split(","))],
        last_alert=last, catalog_version=fields.get("catalog_version", ""),
        updated_from=fields.get("updated_from", ""))


@router.get("/v1/quota/{account}", response_model=QuotaStatusOut,
            responses=error_responses(401, 403, 422, 503),
            summary="Quota used, limits, thresholds and the last alert of an account")
def account_quota(
    services: Services, caller: Caller,
    account: Annotated[str, Path(description="Customer account id", max_length=MAX_TEXT,
                                 pattern=TEXT)],
) -> QuotaStatusOut:
    """Every quota the account has in use (none: an empty list), by agreement and quota."""
    account_in_scope(caller, account)
    client = services.redis
    members = sorted(client.smembers(index_key(services.key_prefix, account)))
    with client.pipeline(transaction=False) as reads:
        for member in members:
            reads.hgetall(member)
        rows: list[dict[str, str]] = reads.execute() if members else []
    quotas = [quota_out(row) for row in rows if row]  # a hash deleted meanwhile is skipped
    return QuotaStatusOut(account=account,
                          quotas=sorted(quotas, key=lambda q: (q.agreement, q.quota)))
