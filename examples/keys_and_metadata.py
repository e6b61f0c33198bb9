"""Keys, headers and metadata: a producer returns KafkaEvent to set a key (one key, one
partition, in order) and headers; a consumer asks for EventMetadata by annotating a parameter.

Run: python examples/keys_and_metadata.py
"""

import asyncio

from pydantic import BaseModel

from fastkafka import EventMetadata, FastKafka, KafkaEvent
from fastkafka.testing import Tester


class Payment(BaseModel):
    account: str
    amount: int


app = FastKafka()


@app.produces(topic="payments")
async def to_payments(payment: Payment) -> KafkaEvent[Payment]:
    return KafkaEvent(payment, key=payment.account.encode(), headers=[("source", b"example")])


seen = asyncio.Event()


@app.consumes(topic="payments")
async def on_payments(payment: Payment, meta: EventMetadata) -> None:
    print(
        f"{payment.account} paid {payment.amount}: key={meta.key!r} partition={meta.partition} "
        f"offset={meta.offset} headers={meta.headers}"
    )
    if payment.account == "bob":
        seen.set()


async def main() -> None:
    async with Tester(app):
        await to_payments(Payment(account="alice", amount=10))
        await to_payments(Payment(account="bob", amount=5))
        await asyncio.wait_for(seen.wait(), 5)


if __name__ == "__main__":
    asyncio.run(main())
