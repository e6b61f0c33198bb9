"""Codecs: JSON and Avro by name, custom callables, Avro schemas both ways, Tester mirrors
speaking each function's codec, and Avro on a real broker."""

from __future__ import annotations

import asyncio
import datetime
import enum
import sys
import uuid

import pytest
from kafka_helpers import TIMEOUT, read_all
from local_kafka import TansuBroker
from pydantic import BaseModel

from fastkafka import FastKafka
from fastkafka.encoder import (
    AvroBase,
    avro_decoder,
    avro_encoder,
    avsc_to_pydantic,
    json_decoder,
    json_encoder,
)
from fastkafka.testing import Tester


class Colour(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Place(BaseModel):
    name: str
    floor: int


class Everything(AvroBase):
    text: str
    count: int
    ratio: float
    flag: bool
    day: datetime.date
    moment: datetime.datetime
    clock: datetime.time
    ident: uuid.UUID
    tags: list[str]
    scores: dict[str, float]
    colour: Colour
    place: Place
    note: str | None = None


EVERYTHING = Everything(
    text="héllo",
    count=2**40,
    ratio=0.25,
    flag=True,
    day=datetime.date(2026, 11, 27),
    moment=datetime.datetime(2026, 11, 27, 9, 30, tzinfo=datetime.UTC),
    clock=datetime.time(9, 30, 15, 250),
    ident=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    tags=["a", "b"],
    scores={"x": 1.5},
    colour=Colour.GREEN,
    place=Place(name="lab", floor=3),
)


def test_avro_round_trips_every_supported_type() -> None:
    encoded = avro_encoder(EVERYTHING)
    assert avro_decoder(encoded, Everything) == EVERYTHING
    assert len(encoded) < len(json_encoder(EVERYTHING)), "schemaless Avro carries no field names"
    assert json_decoder(json_encoder(EVERYTHING), Everything) == EVERYTHING


def test_the_avro_schema_follows_the_model() -> None:
    fields = {f["name"]: f["type"] for f in Everything.avro_schema()["fields"]}
    assert fields["text"] == "string" and fields["count"] == "long"
    assert fields["ratio"] == "double" and fields["flag"] == "boolean"
    assert fields["day"] == {"type": "int", "logicalType": "date"}
    assert fields["moment"] == {"type": "long", "logicalType": "timestamp-micros"}
    assert fields["ident"] == {"type": "string", "logicalType": "uuid"}
    assert fields["tags"] == {"type": "array", "items": "string"}
    assert fields["scores"] == {"type": "map", "values": "double"}
    assert fields["colour"] == {"type": "enum", "name": "Colour", "symbols": ["red", "green"]}
    assert fields["place"]["type"] == "record" and fields["place"]["name"] == "Place"
    assert fields["note"] == ["null", "string"]


def test_avsc_to_pydantic_builds_a_model_that_reads_the_same_bytes() -> None:
    schema = {
        "type": "record",
        "name": "Reading",
        "fields": [
            {"name": "sensor", "type": "string"},
            {"name": "value", "type": "double"},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "unit", "type": ["null", "string"], "default": None},
        ],
    }
    reading_model = avsc_to_pydantic(schema)
    reading = reading_model(
        sensor="s1", value=1.5, at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    )
    assert reading.unit is None  # type: ignore[attr-defined]
    assert avro_decoder(avro_encoder(reading), reading_model) == reading
    assert AvroBase.avro_schema_for_pydantic_class(reading_model)["fields"][1]["type"] == "double"


def test_unknown_codec_names_and_a_missing_fastavro_are_clear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = FastKafka()
    with pytest.raises(ValueError, match="Unknown encoder - protobuf"):

        @app.produces(encoder="protobuf")
        async def to_x(msg: Place) -> Place:
            return msg

    monkeypatch.setitem(sys.modules, "fastavro", None)
    with pytest.raises(ValueError, match=r"pip install 'fastkafka-rs\[avro\]'"):

        @app.consumes(decoder="avro")
        async def on_y(msg: Place) -> None: ...


async def test_avro_apps_and_custom_codecs_are_tested_through_their_own_codec() -> None:
    app = FastKafka()

    def shout_encoder(msg: Place) -> bytes:
        return msg.name.upper().encode()

    @app.consumes(decoder="avro")
    async def on_everything(msg: Everything) -> None:
        await to_places(msg.place)
        await to_shouts(msg.place)

    @app.produces(encoder="avro")
    async def to_places(place: Place) -> Place:
        return place

    @app.produces(encoder=shout_encoder)
    async def to_shouts(place: Place) -> Place:
        return place

    async with Tester(app) as tester:
        assert tester.broker is not None
        await tester.to_everything(EVERYTHING)  # the mirror encodes with Avro
        await app.awaited_mocks.on_everything.assert_called_with(EVERYTHING, timeout=5)
        await tester.on_places.assert_called_with(Place(name="lab", floor=3), timeout=5)
        await app.awaited_mocks.to_shouts.assert_called_with(Place(name="lab", floor=3), timeout=5)


async def test_avro_on_a_real_broker(two_clusters: list[TansuBroker]) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("places")
    host, port = cluster.bootstrap_servers.split(":")
    app = FastKafka(
        kafka_brokers={"development": {"url": host, "port": port}},
        bootstrap_servers_id="development",
        fetch_max_wait_ms=20,
    )
    received = asyncio.Event()
    seen: list[Place] = []

    @app.produces(encoder="avro")
    async def to_places(place: Place) -> Place:
        return place

    @app.consumes(decoder="avro")
    async def on_places(msg: Place) -> None:
        seen.append(msg)
        received.set()

    async with app:
        await to_places(Place(name="roof", floor=9))
        await asyncio.wait_for(received.wait(), TIMEOUT)
    assert seen == [Place(name="roof", floor=9)]
    ((_, raw),) = await read_all(cluster.bootstrap_servers, "places", 1)
    assert avro_decoder(raw, Place) == Place(name="roof", floor=9)
