"""Secure connections against a real broker: SASL SCRAM-SHA-256/512 on Tansu (`--authentication`)
and TLS through a TLS-terminating proxy in front of it (Tansu 0.6.0 takes `--cert/--key` but
its listener stays plain TCP). FastKafka's option names (`security_protocol`, `sasl_*`,
`ssl_*`) configure the clients; a wrong password or an untrusted certificate fails the start
with an error naming the cluster, never the password, and never hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import local_kafka
import pytest
from local_kafka import certificate_authority, free_port, local_clusters
from pydantic import BaseModel

from fastkafka import FastKafka
from fastkafka.exceptions import TransportError

PASSWORD = "correct horse battery staple"
FAST = {"fetch_max_wait_ms": 20, "session_timeout_ms": 6000, "heartbeat_interval_ms": 500}


class Note(BaseModel):
    text: str


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One Tansu broker requiring SASL (users alice: SCRAM-SHA-512, bob: SCRAM-SHA-256) behind
    a TLS proxy, which the broker advertises; also reachable without TLS for SASL_PLAINTEXT."""
    certificates = tmp_path_factory.mktemp("certificates")
    trusted = certificate_authority(certificates, "trusted")
    untrusted = certificate_authority(certificates, "untrusted")
    with local_clusters(1) as (broker,):
        broker.create_user("alice", PASSWORD, "scram512")
        broker.create_user("bob", PASSWORD, "scram256")
        broker.create_topic("notes")
        broker.stop()
        broker.authentication = True
        broker.start()
        yield {"broker": broker, "trusted": trusted, "untrusted": untrusted}


@pytest.fixture
def tls_proxy(secured: dict[str, Any]) -> Iterator[str]:
    """A TLS proxy to the broker with the trusted CA's certificate; its host:port. The broker
    is restarted to advertise it, so every connection goes through TLS."""
    with local_kafka.tls_proxy(secured["broker"], secured["trusted"]) as address:
        yield address


def app_on(address: str, **options: Any) -> tuple[FastKafka, asyncio.Event]:
    """An app that sends a note to itself through the broker at ``address``."""
    host, port = address.split(":")
    app = FastKafka(
        kafka_brokers={"secure": {"url": host, "port": int(port)}},
        bootstrap_servers_id="secure",
        start_timeout=8,
        **FAST,
        **options,
    )
    arrived = asyncio.Event()

    @app.produces(topic="notes")
    async def to_notes(note: Note) -> Note:
        return note

    @app.consumes(topic="notes", group_id=f"readers-{free_port()}")
    async def on_notes(note: Note) -> None:
        if note.text == "hello":
            arrived.set()

    return app, arrived


async def round_trip(app: FastKafka, arrived: asyncio.Event) -> None:
    async with app:
        await app.to_notes(Note(text="hello"))  # type: ignore[attr-defined]
        await asyncio.wait_for(arrived.wait(), 30)


@pytest.mark.parametrize(
    ("mechanism", "user"), [("SCRAM-SHA-512", "alice"), ("SCRAM-SHA-256", "bob")]
)
async def test_a_scram_user_produces_and_consumes(
    secured: dict[str, Any], mechanism: str, user: str
) -> None:
    app, arrived = app_on(
        secured["broker"].bootstrap_servers,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_plain_username=user,
        sasl_plain_password=PASSWORD,
    )
    await round_trip(app, arrived)


async def test_a_consume_only_app_starts_on_a_secure_cluster_with_its_consumers_credentials(
    secured: dict[str, Any],
) -> None:
    """No producer of the reader sends to the cluster: the client that checks it at start must
    still connect with the credentials given on the consumer's decorator."""
    address = secured["broker"].bootstrap_servers
    host, port = address.split(":")
    credentials: dict[str, Any] = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": PASSWORD,
    }
    reader = FastKafka(
        kafka_brokers={"secure": {"url": host, "port": int(port)}},
        bootstrap_servers_id="secure",
        start_timeout=8,
        **FAST,
    )
    arrived = asyncio.Event()

    @reader.consumes(topic="notes", group_id=f"readers-{free_port()}", **credentials)
    async def on_notes(note: Note) -> None:
        if note.text == "for a consume-only app":
            arrived.set()

    writer, _ = app_on(address, **credentials)
    async with reader, writer:
        await writer.to_notes(Note(text="for a consume-only app"))  # type: ignore[attr-defined]
        await asyncio.wait_for(arrived.wait(), 30)


async def test_a_wrong_password_fails_the_start_naming_the_cluster_not_the_password(
    secured: dict[str, Any],
) -> None:
    address = secured["broker"].bootstrap_servers
    app, _ = app_on(
        address,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="alice",
        sasl_plain_password="not the password",
    )
    with pytest.raises(TransportError) as failed:
        await asyncio.wait_for(round_trip(app, asyncio.Event()), 30)
    message = str(failed.value)
    assert address in message and "security.protocol=sasl_plaintext" in message, message
    assert "not the password" not in message and PASSWORD not in message


async def test_a_mechanism_the_broker_does_not_offer_fails_the_start_at_once(
    secured: dict[str, Any],
) -> None:
    """Tansu 0.6.0 offers no PLAIN in its handshake: librdkafka reports an authentication
    failure, which fails the start without waiting out start_timeout (the error is the
    refusal, not "no answer ... within")."""
    app, _ = app_on(
        secured["broker"].bootstrap_servers,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username="carol",
        sasl_plain_password=PASSWORD,
    )
    with pytest.raises(TransportError, match="refused the connection's security") as failed:
        await round_trip(app, asyncio.Event())
    assert "PLAIN" in str(failed.value) and PASSWORD not in str(failed.value)


def scram_over_tls(tls_proxy: str, cafile: Path) -> tuple[FastKafka, asyncio.Event]:
    return app_on(
        tls_proxy,
        security_protocol="SASL_SSL",
        ssl_cafile=str(cafile),
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="alice",
        sasl_plain_password=PASSWORD,
    )


async def test_tls_with_the_brokers_ca_and_scram_over_it(
    secured: dict[str, Any], tls_proxy: str
) -> None:
    await round_trip(*scram_over_tls(tls_proxy, secured["trusted"]))


async def test_an_untrusted_certificate_fails_the_start_naming_the_cluster(
    secured: dict[str, Any], tls_proxy: str
) -> None:
    app, _ = scram_over_tls(tls_proxy, secured["untrusted"])
    with pytest.raises(TransportError, match="refused the connection's security") as failed:
        await round_trip(app, asyncio.Event())
    message = str(failed.value)
    assert tls_proxy in message and "certificate verify failed" in message, message
