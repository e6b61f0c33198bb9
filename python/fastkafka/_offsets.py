"""``fastkafka offsets show|reset``: a consumer group's offsets on the consumer's own cluster,
and moving them to replay or skip (the engine's ``src/offsets.rs``).

Groups are those ``fastkafka run`` gives the app's consumers (their ``group_id``, else
``<module:app>.<function name>``), on the clusters of ``--kafka-broker``'s environment. A reset
is refused while the group has live members, so stop the app first; ``--dry-run`` shows what
a reset would do without committing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from ._importer import import_app
from .exceptions import ConfigError, TransportError

__all__ = ["offsets_cli", "parse_reset_target"]

offsets_cli = typer.Typer(
    help="A consumer group's offsets on the consumer's own cluster: show them, or reset them "
    "to replay or skip records (stop the app first).",
    no_args_is_help=True,
)

AppArgument = Annotated[
    str, typer.Argument(help="The app, as 'module:attribute' (e.g. 'my_service:app').")
]
KafkaBroker = Annotated[
    str,
    typer.Option(
        "--kafka-broker",
        help="The environment (a key of the app's kafka_brokers) whose clusters to use.",
    ),
]
Consumer = Annotated[
    str | None,
    typer.Option("--consumer", help="Only this consumer (its function's name); default: all."),
]


def parse_reset_target(text: str) -> tuple[str, int]:
    """``--to``'s value as the engine's (kind, value): ``earliest``, ``latest``, ``+N``/``-N``
    (records from the committed offset) or an ISO 8601 date-time (UTC unless it says)."""
    if text in ("earliest", "latest"):
        return text, 0
    if re.fullmatch(r"[+-]\d+", text):
        return "shift", int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--to must be earliest, latest, +N, -N or an ISO 8601 date-time "
            f"(e.g. 2026-12-07T09:30:00Z), got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return "time", int(moment.timestamp() * 1000)


def _load(app: str, kafka_broker: str) -> Any:
    loaded = import_app(app)
    loaded.set_kafka_broker(kafka_broker)
    loaded.use_default_groups(app)  # the groups `fastkafka run` uses
    return loaded


def _heading(report: dict[str, Any]) -> str:
    return (
        f"{report['consumer']}: group '{report['group']}', topic '{report['topic']}' on "
        f"{report['cluster']}"
    )


def _table(rows: list[list[object]]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ).rstrip()


def _run(command: Any) -> None:
    try:
        command()
    except ConfigError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(2) from None
    except TransportError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(1) from None


@offsets_cli.command("show")
def show(
    app: AppArgument, kafka_broker: KafkaBroker = "localhost", consumer: Consumer = None
) -> None:
    """Print each consumer group's committed offsets, watermarks and lag.

    Per partition: the committed offset, the log's first (low) and next (high) offsets.

    The lag is the records after the committed offset."""
    from . import _core

    def command() -> None:
        loaded = _load(app, kafka_broker)
        for report in _core.consumer_offsets(loaded._runtime, consumer):
            rows: list[list[object]] = [["partition", "committed", "low", "high", "lag"]]
            for p in report["partitions"]:
                committed = "-" if p["committed"] is None else p["committed"]
                rows.append([p["partition"], committed, p["low"], p["high"], p["lag"]])
            typer.echo(f"{_heading(report)}\n{_table(rows)}")

    _run(command)


@offsets_cli.command("reset")
def reset(
    app: AppArgument,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="earliest, latest, +N / -N (records after / before the committed offset), or "
            "an ISO 8601 date-time (the first record at or after it; UTC unless it says).",
        ),
    ],
    kafka_broker: KafkaBroker = "localhost",
    consumer: Consumer = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; commit nothing.")
    ] = False,
) -> None:
    """Move each consumer group's offsets to replay or skip records.

    Refused while the group has live members: stop the app first.

    Prints each partition's offset before and after."""
    from . import _core

    def command() -> None:
        kind, value = parse_reset_target(to)
        loaded = _load(app, kafka_broker)
        reports = _core.reset_offsets(
            loaded._runtime, kind, value, consumer=consumer, dry_run=dry_run
        )
        for report in reports:
            note = " (dry run: nothing committed)" if dry_run else ""
            rows: list[list[object]] = [["partition", "before", "after"]]
            for p in report["partitions"]:
                before = "-" if p["committed"] is None else p["committed"]
                rows.append([p["partition"], before, p["to"]])
            typer.echo(f"{_heading(report)}: reset to {to}{note}\n{_table(rows)}")

    _run(command)
