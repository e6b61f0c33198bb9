"""AsyncAPI docs: `fastkafka docs` and `app.create_docs()` write a valid spec (2.6 and 3.0,
checked against the official JSON Schemas) with every cluster's servers, and a page that
renders offline in Chromium."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
import yaml
from browser import headless
from kafka_helpers import TIMEOUT
from pydantic import BaseModel, Field

from fastkafka import FastKafka, KafkaEvent

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = Path(__file__).resolve().parent / "asyncapi_schemas"
FASTKAFKA = Path(sys.executable).parent / "fastkafka"
# Where the page's screenshot is kept as a build artefact (the docs' picture comes from it).
SCREENSHOT = ROOT / "target" / "asyncapi-docs.png"


def validate(spec: dict[str, Any]) -> None:
    schema_file = SCHEMAS / f"{spec['asyncapi']}.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.Draft7Validator(schema).validate(spec)


def generate(tmp_path: Path, *extra: str) -> tuple[dict[str, Any], Path]:
    done = subprocess.run(
        [str(FASTKAFKA), "docs", "generate", "--root-path", str(tmp_path), *extra,
         "examples.multi_cluster_example:app"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    spec = yaml.safe_load((tmp_path / "asyncapi" / "spec" / "asyncapi.yml").read_text())
    return spec, tmp_path / "asyncapi" / "docs" / "index.html"


def test_the_guides_app_gets_a_valid_2_6_spec_with_both_clusters(tmp_path: Path) -> None:
    spec, page = generate(tmp_path)
    validate(spec)
    assert spec["asyncapi"] == "2.6.0"
    assert set(spec["servers"]) == {
        "development", "production", "development_cluster_2", "production_cluster_2",
    }  # fmt: skip
    # FastKafka's shape for 2.x, which its users' tests of the spec read: the host in `url`,
    # the port as the default of the `port` variable, a string.
    assert spec["servers"]["development_cluster_2"]["url"] == "dev.server_2"
    assert spec["servers"]["development_cluster_2"]["variables"] == {"port": {"default": "9092"}}
    channels = spec["channels"]
    assert channels["preprocessed_signals"]["servers"] == ["development", "production"]
    second = channels["preprocessed_signals_cluster_2"]
    assert second["servers"] == ["development_cluster_2", "production_cluster_2"]
    assert second["bindings"]["kafka"]["topic"] == "preprocessed_signals"
    assert second["subscribe"]["operationId"] == "on_preprocessed_signals_2"
    assert channels["predictions_cluster_2"]["publish"]["operationId"] == "to_predictions_2"
    assert spec["components"]["schemas"]["TestMsg"]["required"] == ["msg"]
    assert page.exists()


def test_version_3_is_written_on_request_and_valid(tmp_path: Path) -> None:
    spec, _ = generate(tmp_path, "--asyncapi-version", "3.0")
    validate(spec)
    assert spec["operations"]["on_preprocessed_signals_2"]["action"] == "receive"
    assert spec["operations"]["to_predictions_1"]["action"] == "send"
    channel = spec["channels"]["preprocessed_signals_cluster_2"]
    assert channel["address"] == "preprocessed_signals"
    assert {"$ref": "#/servers/production_cluster_2"} in channel["servers"]


class Reading(BaseModel):
    """One sensor reading."""

    sensor: str = Field(description="Which sensor", examples=["s-1"])
    value: float


class Alarm(BaseModel):
    reading: Reading
    level: int = 1


def described_app(root_path: Path) -> FastKafka:
    app = FastKafka(
        title="Sensors",
        version="1.2.3",
        description="Watches sensors.",
        contact={"name": "Ops", "email": "ops@example.com"},
        root_path=str(root_path),
        kafka_brokers={
            "dev": {"url": "k.dev", "port": 9092},
            "prod": {
                "url": "k.prod",
                "port": 9093,
                "protocol": "kafka-secure",
                "description": "production",
                "security": {"type": "plain"},
            },
        },
        bootstrap_servers_id="dev",
    )

    @app.consumes(description="Readings, a batch per call.")
    async def on_readings(readings: list[Reading]) -> None: ...

    @app.consumes(decoder="avro")
    async def on_legacy(msg: Reading) -> None:
        """Readings from the old system, in Avro."""

    @app.produces()
    async def to_alarms(alarm: Alarm) -> KafkaEvent[Alarm]:
        return KafkaEvent(alarm, key=b"k")

    return app


def test_create_docs_documents_models_codecs_batches_keys_and_security(tmp_path: Path) -> None:
    described_app(tmp_path).create_docs()
    spec = yaml.safe_load((tmp_path / "asyncapi" / "spec" / "asyncapi.yml").read_text())
    validate(spec)
    assert spec["info"] == {
        "title": "Sensors", "version": "1.2.3", "description": "Watches sensors.",
        "contact": {"name": "Ops", "email": "ops@example.com"},
    }  # fmt: skip
    assert spec["servers"]["prod"] == {
        "url": "k.prod", "variables": {"port": {"default": "9093"}}, "protocol": "kafka-secure",
        "description": "production",
        "security": [{"prod_security": []}],
    }  # fmt: skip
    assert spec["components"]["securitySchemes"]["prod_security"] == {"type": "plain"}
    readings = spec["channels"]["readings"]["subscribe"]
    assert readings["description"] == "Readings, a batch per call."
    assert spec["components"]["messages"]["ReadingBatch"]["payload"] == {
        "type": "array", "items": {"$ref": "#/components/schemas/Reading"},
    }  # fmt: skip
    sensor = spec["components"]["schemas"]["Reading"]["properties"]["sensor"]
    assert sensor["description"] == "Which sensor" and sensor["examples"] == ["s-1"]
    legacy = spec["channels"]["legacy"]["subscribe"]
    assert legacy["description"] == "Readings from the old system, in Avro."
    avro = spec["components"]["messages"][legacy["message"]["$ref"].rsplit("/", 1)[1]]
    assert avro["schemaFormat"].startswith("application/vnd.apache.avro")
    assert avro["payload"]["type"] == "record"
    alarm = spec["components"]["messages"]["Alarm"]
    assert alarm["bindings"]["kafka"]["key"] == {"type": "string"}
    # The nested model is a shared schema, referred to from the outer one.
    assert spec["components"]["schemas"]["Alarm"]["properties"]["reading"] == {
        "$ref": "#/components/schemas/Reading"
    }


def png_pixels(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and raw scanlines (filter bytes included) of an 8-bit RGB(A) PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, data, width, height = 8, b"", 0, 0
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        body = png[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            data += body
        position += 12 + length
    return width, height, zlib.decompress(data)


def test_the_page_renders_offline_in_chromium_with_both_clusters_and_a_schema(
    tmp_path: Path,
) -> None:
    described = tmp_path / "described"
    described_app(described).create_docs()
    _, page = generate(tmp_path)
    profile = tmp_path / "profile"
    dom = headless("--dump-dom", page.as_uri(), user_data=profile)
    html = dom.stdout.decode()
    assert "Cluster 1" in html and "Cluster 2" in html, dom.stderr.decode()[-2000:]
    assert html.count('class="channel"') == 4
    for channel in ("preprocessed_signals", "predictions"):
        assert f'data-topic="{channel}" data-cluster="1"' in html
        assert f'data-topic="{channel}" data-cluster="2"' in html
    assert "<code>msg</code></td><td>string</td><td>yes</td>" in html
    detailed = headless(
        "--dump-dom", (described / "asyncapi" / "docs" / "index.html").as_uri(), user_data=profile
    ).stdout.decode()
    assert "Which sensor" in detailed and "reading.sensor" in detailed

    SCREENSHOT.parent.mkdir(exist_ok=True)
    shot = headless(
        f"--screenshot={SCREENSHOT}", "--window-size=1200,1400", page.as_uri(), user_data=profile
    )
    assert SCREENSHOT.exists(), shot.stderr.decode()[-2000:]
    width, height, pixels = png_pixels(SCREENSHOT.read_bytes())
    assert (width, height) == (1200, 1400)
    # A rendered page, not a blank one: plenty of bytes that are not white.
    dark = sum(1 for byte in pixels if byte < 128)
    assert dark > width * height // 100, dark


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    server = subprocess.Popen(
        [str(FASTKAFKA), "docs", "serve", "--root-path", str(tmp_path), "--port", str(port),
         "examples.multi_cluster_example:app"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ},
    )  # fmt: skip
    try:
        assert server.stdout is not None
        # The command says so once it listens (after writing the docs); EOF means it died.
        for line in server.stdout:
            if line.startswith(b"Serving the documentation on"):
                break
        else:
            raise AssertionError(server.stderr.read().decode() if server.stderr else "died")
        yield port
    finally:
        server.terminate()
        server.communicate(timeout=TIMEOUT)  # also closes its pipes


def test_serve_answers_with_the_page(serving: int) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{serving}/", timeout=TIMEOUT) as answer:
        page = answer.read().decode()
    assert "preprocessed_signals" in page and "Cluster 2" in page


@pytest.mark.parametrize("group", ["docs", "testing"])
def test_install_deps_says_nothing_is_needed(group: str) -> None:
    done = subprocess.run(
        [str(FASTKAFKA), group, "install_deps"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "Nothing to install" in done.stdout


def test_an_unknown_version_is_refused_by_name(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(FASTKAFKA), "docs", "generate", "--root-path", str(tmp_path),
         "--asyncapi-version", "2.5", "examples.multi_cluster_example:app"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "asyncapi_version must be '2.6' or '3.0'" in done.stderr


class Counted(BaseModel):
    """A model that counts how often its JSON Schema is made."""

    text: str
    schemas_made: ClassVar[int] = 0

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        Counted.schemas_made += 1
        return super().model_json_schema(*args, **kwargs)


def test_schemas_are_made_when_docs_are_written_not_when_an_app_is_imported(
    tmp_path: Path,
) -> None:
    app = FastKafka(root_path=str(tmp_path))

    @app.consumes()
    async def on_counted(msg: Counted) -> None:
        """Reads them."""

    @app.produces()
    async def to_counted(msg: Counted) -> Counted:
        return msg

    assert Counted.schemas_made == 0, "decorating made no schema"
    app.create_docs()
    spec = yaml.safe_load((tmp_path / "asyncapi" / "spec" / "asyncapi.yml").read_text())
    assert Counted.schemas_made == 2
    assert spec["channels"]["counted"]["subscribe"]["description"] == "Reads them."


class Unschematic(BaseModel):
    """A model whose JSON Schema cannot be made."""

    text: str

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise TypeError("no schema for you")


def test_a_schema_that_cannot_be_made_fails_the_docs_naming_its_function(tmp_path: Path) -> None:
    app = FastKafka(root_path=str(tmp_path))

    @app.consumes(topic="things")
    async def on_thing(msg: Unschematic) -> None: ...

    with pytest.raises(ValueError, match=r"message of 'on_thing'.*no schema for you"):
        app.create_docs()
