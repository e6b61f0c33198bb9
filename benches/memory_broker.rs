//! Records/s through the in-memory broker, beside a baseline measured in the same run: the
//! same records moved through a tokio mpsc channel, the cheapest hand-off tokio offers. The
//! ratio between the two is the broker's overhead (partitioning, offsets, group bookkeeping);
//! the third case is a Rust-native app's consume → handler → produce loop with JSON.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fastkafka::app::{App, Json, TestHarness};
use fastkafka::{ClusterId, KafkaBrokers, MemoryBroker, OutgoingRecord, Subscription, Transport};
use tokio::runtime::Runtime;

const RECORDS: usize = 10_000;
const BATCH: usize = 100;

fn payloads() -> Vec<OutgoingRecord> {
    (0..RECORDS)
        .map(|i| OutgoingRecord::new(format!("{{\"msg\":\"signal {i}\"}}")))
        .collect()
}

fn broker_round_trip(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let mut group = c.benchmark_group("10k records, batches of 100");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.measurement_time(Duration::from_secs(5));

    group.bench_function("baseline: tokio mpsc", |b| {
        b.to_async(&runtime).iter_batched(
            payloads,
            |records| async move {
                let (tx, mut rx) = tokio::sync::mpsc::channel(BATCH);
                let sender = tokio::spawn(async move {
                    let mut records = records.into_iter();
                    loop {
                        let batch: Vec<_> = records.by_ref().take(BATCH).collect();
                        if batch.is_empty() {
                            break;
                        }
                        tx.send(batch).await.unwrap();
                    }
                });
                let mut received = 0;
                while let Some(batch) = rx.recv().await {
                    received += batch.len();
                }
                sender.await.unwrap();
                assert_eq!(received, RECORDS);
            },
            BatchSize::SmallInput,
        )
    });

    group.bench_function("memory broker: produce, poll, store offsets", |b| {
        b.to_async(&runtime).iter_batched(
            payloads,
            |records| async move {
                let broker = MemoryBroker::new();
                let cluster = broker
                    .cluster(&ClusterId::from_addresses(["bench:9092"]))
                    .unwrap();
                let mut consumer = cluster
                    .subscribe(Subscription::new(["t"]).with_group("g"))
                    .await
                    .unwrap();
                let producer = {
                    let cluster = cluster.clone();
                    tokio::spawn(async move {
                        let mut records = records.into_iter();
                        loop {
                            let batch: Vec<_> = records.by_ref().take(BATCH).collect();
                            if batch.is_empty() {
                                break;
                            }
                            cluster.produce("t", batch).unwrap();
                            tokio::task::yield_now().await;
                        }
                    })
                };
                let mut received = 0;
                while received < RECORDS {
                    let batch = consumer.poll(BATCH).await.unwrap();
                    consumer.store_offsets(&batch).unwrap();
                    received += batch.len();
                }
                producer.await.unwrap();
                consumer.close().await.unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function(
        "app: consume, decode, handle, encode, produce (JSON)",
        |b| {
            b.to_async(&runtime).iter_batched(
                payloads,
                |records| async move {
                    let brokers: KafkaBrokers =
                        serde_json::from_str(r#"{"localhost": {"url": "bench", "port": 9092}}"#)
                            .unwrap();
                    let mut app = App::new(brokers);
                    let out = app.producer::<Signal>("out", None, Json).unwrap();
                    app.consumer("in", None, Json, move |signal: Signal| {
                        let out = out.clone();
                        async move { out.send(&signal).await }
                    })
                    .unwrap();
                    let harness = TestHarness::new(&app, MemoryBroker::new());
                    let mut arrived = harness.watch::<Signal, _>("out", None, Json).await.unwrap();
                    let running = app.start(harness.transport()).await.unwrap();
                    let cluster = harness
                        .transport()
                        .cluster(&app.cluster_id(None).unwrap())
                        .unwrap();
                    cluster.produce("in", records).unwrap();
                    for _ in 0..RECORDS {
                        arrived.next().await.unwrap();
                    }
                    running.stop().await.unwrap();
                },
                BatchSize::SmallInput,
            )
        },
    );
    group.finish();
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Signal {
    msg: String,
}

criterion_group!(benches, broker_round_trip);
criterion_main!(benches);
