"""What changed in the service item types between two catalog versions.

Each of these changes how events are handled with no rate table touched: an
operation's ``billable`` decides whether its events are priced or skipped, an
attribute's type whether an event carrying it is rated or dead-lettered, its
``quota_managed`` flag whether agreements may limit it, an operation's ``quota``
whether it takes, resizes or gives back quota, and ``marketplace`` whether events
must name a provider and a product.
"""

from __future__ import annotations

from processors.catalog.diff_lines import changed, paired
from processors.catalog.model import Attribute, Operation, ServiceItemType


def item_type_summary(item: ServiceItemType) -> str:
    billable = [_operation_name(op) for op in item.operations.values() if op.billable]
    other = [_operation_name(op) for op in item.operations.values() if not op.billable]
    attributes = [f"{name} ({_attribute_summary(item.attributes[name])})"
                  for name in sorted(item.attributes)]
    text = (f"billable operations {', '.join(sorted(billable)) or 'none'}; "
            f"other operations {', '.join(sorted(other)) or 'none'}; "
            f"attributes {', '.join(attributes) or 'none'}")
    return f"{text}; marketplace" if item.marketplace else text


def item_type_changes(old: ServiceItemType, new: ServiceItemType) -> list[str]:
    return (changed("marketplace", old.marketplace, new.marketplace)
            + paired("attribute", old.attributes, new.attributes, _attribute_summary,
                     _attribute_changes)
            + paired("operation", old.operations, new.operations, _operation_summary,
                     _operation_changes))


def _attribute_summary(attribute: Attribute) -> str:
    return f"{attribute.type}, quota managed" if attribute.quota_managed else str(attribute.type)


def _attribute_changes(old: Attribute, new: Attribute) -> list[str]:
    return (changed("type", str(old.type), str(new.type))
            + changed("quota managed", old.quota_managed, new.quota_managed))


def _operation_name(operation: Operation) -> str:
    """The name, and what it does to quota when it does something (the names need not say)."""
    if operation.quota is None:
        return operation.name
    return f"{operation.name} (quota {operation.quota})"


def _operation_summary(operation: Operation) -> str:
    billable = "billable" if operation.billable else "not billable"
    return billable if operation.quota is None else f"{billable}, quota {operation.quota}"


def _operation_changes(old: Operation, new: Operation) -> list[str]:
    return (changed("billable", old.billable, new.billable)
            + changed("quota", old.quota, new.quota))
