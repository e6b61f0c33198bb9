"""Avro: decoder="avro" / encoder="avro" write schemaless Avro with the schema derived from the
model (pip install 'fastkafka-rs[avro]'); avsc_to_pydantic turns an .avsc schema into a model.

Run: python examples/avro.py
"""

import asyncio

from fastkafka import FastKafka
from fastkafka.encoder import avsc_to_pydantic
from fastkafka.testing import Tester

User = avsc_to_pydantic(
    {
        "type": "record",
        "name": "User",
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "age", "type": "long"},
            {"name": "email", "type": ["null", "string"], "default": None},
        ],
    }
)

app = FastKafka()


@app.consumes(topic="users", decoder="avro")
async def on_users(user: User) -> None:  # type: ignore[valid-type]
    print(f"received {user!r}")
    await to_adults(user)


@app.produces(topic="adults", encoder="avro")
async def to_adults(user: User) -> User:  # type: ignore[valid-type]
    return user


async def main() -> None:
    async with Tester(app) as tester:
        await tester.to_users(User(name="ada", age=36))
        await tester.on_adults.assert_called_with(User(name="ada", age=36), timeout=5)
        print(f"Avro schema: {User.model_json_schema()['title']} round-tripped")


if __name__ == "__main__":
    asyncio.run(main())
