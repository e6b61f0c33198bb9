"""What `make faults` reports (harness.py): whether each scenario kept its promise, and the
table of all of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scenarios import FAILOVER_FAULTS, SHAPES

if TYPE_CHECKING:
    from harness import Row


# Scenarios after which not even a duplicate is allowed: a clean stop, and retries in place.
# Except for two shapes: with DynamicTaskExecutor later records may have run before a retry
# rewinds; and two consumers of one group in one worker (`shared`) rebalance between
# themselves when the second joins at start, which replays the first one's batches in flight.
NO_DUPLICATES = ("4", "7")
DUPLICATES_ALLOWED = {("7", "dynamic"), ("4", "shared"), ("7", "shared")}


def holds(row: Row) -> bool:
    """Whether the scenario kept its promise: nothing lost (and, where promised, nothing
    twice)."""
    number, shape = row.scenario.split()[0], shape_of(row.scenario)
    dynamic = shape == "dynamic"
    if number in NO_DUPLICATES and row.duplicated and (number, shape) not in DUPLICATES_ALLOWED:
        return False
    out_of_order = any(ids != sorted(ids) for ids in row.order_by_key.values())
    # Order across a move to a standby is not promised: a key's records in flight when its
    # cluster was lost may land on the standby after newer ones (docs: production).
    moved = number in FAILOVER_FAULTS
    if out_of_order and not row.duplicated and not dynamic and not moved:
        # Without duplicates, each key's items arrive in the order they were sent (handlers
        # running concurrently, DynamicTaskExecutor's, promise no order).
        return False
    return row.lost == 0


def shape_of(scenario: str) -> str:
    """The handler shape a scenario's name ends with (the guide's shape has none)."""
    _, _, shape = scenario.rpartition(", ")
    return shape if shape in SHAPES else "guide"


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | in | delivered | dead-lettered | lost | duplicated | holds | seconds "
        "| notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.scenario} | {row.records_in} | {row.delivered} | {row.dead_lettered} | "
            f"{row.lost} | {row.duplicated} | {'yes' if holds(row) else '**NO**'} | "
            f"{row.seconds:.1f} | {'; '.join(row.notes)} |"
        )
    return "\n".join(lines)
