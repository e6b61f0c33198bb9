//! Reading ahead: while a handler works on a batch, the consumer loop polls the next one; what
//! it read ahead must never overtake a record being retried.

use std::time::Duration;

use fastkafka::app::{App, Json, TestHarness};
use fastkafka::{Cluster, MemoryBroker, RetryPolicy, TopicPartition};

use super::app_examples::forwarding::common::{brokers, TestMsg};
use super::failures::{json, until, watched};

#[tokio::test]
async fn a_retry_in_place_keeps_order_when_the_next_batch_was_already_read_ahead() {
    // While the handler works on a batch (here: it awaits), the loop polls the next one. A
    // retry must drop what was read ahead of its partition, or records after the failed one
    // would be handled before it.
    let mut app = App::new(brokers("server_1:9092"));
    let (seen, changed) = watched();
    let (record, wake) = (seen.clone(), changed.clone());
    app.consumer("signals", None, Json, move |msg: TestMsg| {
        let (seen, wake) = (record.clone(), wake.clone());
        async move {
            tokio::task::yield_now().await; // the loop reads ahead meanwhile
            let outcome = {
                let mut seen = seen.lock().unwrap();
                let attempt = seen.attempts.entry(msg.msg.clone()).or_default();
                *attempt += 1;
                if msg.msg == "m4" && *attempt == 1 {
                    Err("m4 fails once")
                } else {
                    seen.handled.push((0, msg.msg));
                    Ok(())
                }
            };
            wake.notify_waiters();
            outcome
        }
    })
    .unwrap()
    .group_id("g")
    .max_poll_records(3)
    .retry(RetryPolicy {
        attempts: 2,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(20),
    });
    let broker = MemoryBroker::new();
    let cluster = broker.memory_cluster(&app.cluster_id(None).unwrap());
    cluster.create_topic("signals", 1).unwrap();
    let texts: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
    cluster
        .produce("signals", texts.iter().map(|text| json(text)).collect())
        .unwrap();
    let harness = TestHarness::new(&app, broker.clone());
    let running = app.start(harness.transport()).await.unwrap();

    until(&seen, &changed, |s| s.handled.len() >= texts.len()).await;
    running.stop().await.unwrap();
    let seen = seen.lock().unwrap();
    let handled: Vec<&str> = seen.handled.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(handled, texts, "in order, each once");
    assert_eq!(seen.attempts["m4"], 2);
    assert_eq!(
        cluster.committed_offset("g", &TopicPartition::new("signals", 0)),
        Some(12)
    );
}
