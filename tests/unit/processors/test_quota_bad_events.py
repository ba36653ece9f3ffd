"""Bad events met by the quota check are dead letters (usage.dlq), not quota outcomes:
usage.rejected is for QUOTA_EXCEEDED, NO_AGREEMENT, NO_QUOTA and UNKNOWN_INSTANCE."""

from __future__ import annotations

import pytest

from processors.errors import EventRejected, ReasonCode
from processors.pipeline import PartitionState
from tests.unit.processors.test_pipeline import event, run, vm


def test_a_negative_quota_attribute_is_a_bad_event_not_a_quota_block() -> None:
    with pytest.raises(EventRejected) as raised:  # the rater dead-letters what raises
        run(vm("vm-1", "Create", 1, vcpu=-4), PartitionState())
    assert raised.value.reason is ReasonCode.NEGATIVE_QUANTITY


def test_a_missing_quota_attribute_is_a_bad_event() -> None:
    missing_vcpu = event("VirtualMachine", "vm-1", "Create", 1, memory_gb=16,
                         region="us-east", os="linux")
    with pytest.raises(EventRejected) as raised:
        run(missing_vcpu, PartitionState())
    assert raised.value.reason is ReasonCode.BAD_ATTRIBUTE


def test_an_operation_the_item_type_lacks_is_unknown_not_an_unknown_instance() -> None:
    # Storage declares Create, Extend, Snapshot and Delete, not Resize.
    state = PartitionState()
    run(event("Storage", "vol-1", "Create", 1, home_ou="eng/data", size_gb=5, tier="ssd"),
        state)
    with pytest.raises(EventRejected) as raised:
        run(event("Storage", "vol-9", "Resize", 2, home_ou="eng/data", size_gb=6,
                  tier="ssd"), state)
    assert raised.value.reason is ReasonCode.UNKNOWN_OPERATION
