"""SASL/OAUTHBEARER with aiokafka's token provider (``sasl_oauth_token_provider``): every
client asks the app's provider for its token — its ``token()`` coroutine awaited on the app's
event loop — and again before the token expires.

No broker here takes OAUTHBEARER: Tansu 0.6.0 offers PLAIN and SCRAM only, and librdkafka's mock
cluster no SASL at all. So these tests prove our side up to the broker: the provider is asked,
on the right loop, again before expiry, and the broker's refusal fails the start naming the
security settings. The SASL exchange itself is librdkafka's."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from kafka_helpers import eventually
from local_kafka import TansuBroker
from pydantic import BaseModel

from fastkafka import FastKafka, _core
from fastkafka._lifecycle import default_transport
from fastkafka.exceptions import ConfigError, TransportError


class Msg(BaseModel):
    text: str


def jwt(lifetime_seconds: float) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    claims = {"sub": "svc-orders", "exp": time.time() + lifetime_seconds}
    return f"{part({'alg': 'none'})}.{part(claims)}."


class Provider:
    """aiokafka's AbstractTokenProvider shape: ``async def token(self) -> str``."""

    def __init__(self, lifetime_seconds: float) -> None:
        self.lifetime_seconds = lifetime_seconds
        self.loops: list[asyncio.AbstractEventLoop] = []

    async def token(self) -> str:
        self.loops.append(asyncio.get_running_loop())
        return jwt(self.lifetime_seconds)


def oauth_app(cluster: TansuBroker, provider: object, **options: object) -> FastKafka:
    host, port = cluster.bootstrap_servers.split(":")
    app = FastKafka(
        kafka_brokers={"localhost": {"url": host, "port": int(port)}},
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=provider,
        **options,
    )

    @app.produces(topic="signals")
    async def to_signals(msg: Msg) -> Msg:
        return msg

    return app


async def test_the_apps_clients_await_its_provider_on_its_loop_and_name_the_refusal(
    two_clusters: list[TansuBroker],
) -> None:
    provider = Provider(lifetime_seconds=60.0)
    app = oauth_app(two_clusters[0], provider)
    with pytest.raises(TransportError, match=r"security\.protocol=sasl_plaintext"):
        async with app:
            pass
    assert provider.loops, "the provider was asked for a token"
    assert set(provider.loops) == {asyncio.get_running_loop()}, "on the app's event loop"


async def test_a_client_asks_again_before_its_token_expires(
    two_clusters: list[TansuBroker],
) -> None:
    provider = Provider(lifetime_seconds=2.0)
    transport = default_transport(provider)
    assert isinstance(transport, _core.KafkaTransport)
    oauth = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER"}
    cluster = transport.cluster(two_clusters[0].bootstrap_servers, oauth)
    await eventually(lambda: len(provider.loops) >= 2, "a second token within the first's 2 s")
    del cluster


def test_the_provider_is_checked_and_belongs_to_the_app(two_clusters: list[TansuBroker]) -> None:
    with pytest.raises(ConfigError, match="must have a token\\(\\) method"):
        oauth_app(two_clusters[0], object())
    app = FastKafka()
    with pytest.raises(ConfigError, match="give it to FastKafka"):

        @app.consumes(topic="signals", sasl_oauth_token_provider=Provider(60))
        async def on_signals(msg: Msg) -> None: ...
