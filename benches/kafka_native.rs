//! `make bench` (Rust part on a real broker): a Rust-native fastkafka app beside a hand-written
//! rust-rdkafka loop, on the input `benches/bench_kafka.py` filled.
//!
//! `cargo bench --features kafka --bench kafka_native -- SERVERS CONTENDER GROUP`, where
//! CONTENDER is `app`, `rdkafka` or `rdkafka_acked`; prints one JSON line with the figures
//! `bench_kafka.py` reads (the same as `kafka_workloads.py`'s). Each consumes `bench_in` in a
//! group, decodes the JSON with serde, hands it to a trivial async handler and produces it to
//! `out_<GROUP prefix>`. The `rdkafka` loop stores each record's offset once its output is
//! queued, not acknowledged: a delivery that fails after that loses the input. The app stores a
//! batch's offsets once its outputs are acknowledged, and so does `rdkafka_acked`, the way a
//! loop written by hand usually does it: produce a batch, `flush`, store. All ask the
//! broker to hold a fetch for at most `BENCH_FETCH_WAIT_MS` (10 by default), as every contender
//! of `kafka_workloads.py` does, and for the same reason (Tansu holds each fetch for its wait).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastkafka::app::{App, Json};
use fastkafka::transport::kafka::KafkaTransport;
use fastkafka::KafkaBrokers;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TestMsg {
    msg: String,
}

async fn handle(message: TestMsg) -> TestMsg {
    message
}

/// Wall and CPU time at the start, at the tenth record and at the last; and the Unix times of
/// the first and the last record, from which `bench_kafka.py` measures from the process's start.
struct Clock {
    records: usize,
    count: AtomicUsize,
    marks: std::sync::Mutex<Vec<(Instant, Duration)>>,
    unix: std::sync::Mutex<Vec<f64>>,
    done: Notify,
}

impl Clock {
    fn new(records: usize) -> Arc<Self> {
        Arc::new(Self {
            records,
            count: AtomicUsize::new(0),
            marks: std::sync::Mutex::new(vec![(Instant::now(), cpu_time())]),
            unix: std::sync::Mutex::new(Vec::with_capacity(2)),
            done: Notify::new(),
        })
    }

    fn tick(&self) {
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if count == 1 || count == self.records {
            self.unix.lock().unwrap().push(unix_now());
        }
        if count == self.records / 10 || count == self.records {
            self.marks
                .lock()
                .unwrap()
                .push((Instant::now(), cpu_time()));
        }
        if count == self.records {
            self.done.notify_one();
        }
    }

    fn report(&self) -> String {
        let marks = self.marks.lock().unwrap();
        let [(start, start_cpu), (steady, steady_cpu), (end, end_cpu)] = marks[..] else {
            panic!("not every mark was reached: {}", marks.len());
        };
        let unix = self.unix.lock().unwrap();
        let records = self.records as f64;
        let steady_records = records - (self.records / 10) as f64;
        format!(
            "{{\"msgs_per_s\": {}, \"steady_msgs_per_s\": {}, \"cpu_us_per_msg\": {}, \
             \"steady_cpu_us_per_msg\": {}, \"rss_mb\": {}, \"first_unix\": {}, \
             \"end_unix\": {}}}",
            records / (end - start).as_secs_f64(),
            steady_records / (end - steady).as_secs_f64(),
            (end_cpu - start_cpu).as_secs_f64() / records * 1e6,
            (end_cpu - steady_cpu).as_secs_f64() / steady_records * 1e6,
            peak_rss_mb(),
            unix[0],
            unix[unix.len() - 1],
        )
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// This process's CPU time, all threads (Linux: `/proc/self/stat`, in clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name (which may hold spaces) start after its ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kb: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024.0
}

/// `fetch.wait.max.ms` for every consumer: see the module docs.
fn fetch_wait_ms() -> String {
    std::env::var("BENCH_FETCH_WAIT_MS").unwrap_or_else(|_| "10".to_owned())
}

fn brokers(servers: &str) -> KafkaBrokers {
    let (url, port) = servers.split_once(':').expect("host:port");
    serde_json::from_value(serde_json::json!({"localhost": {"url": url, "port": port}})).unwrap()
}

async fn app(servers: &str, group: &str, out: &str, records: usize) -> Arc<Clock> {
    let mut app = App::new(brokers(servers));
    let forward = app.producer::<TestMsg>(out, None, Json).unwrap();
    let clock = Clock::new(records);
    let counted = clock.clone();
    app.consumer("bench_in", None, Json, move |message: TestMsg| {
        let (forward, counted) = (forward.clone(), counted.clone());
        async move {
            forward.send(&handle(message).await).await?;
            counted.tick();
            Ok::<(), fastkafka::Error>(())
        }
    })
    .unwrap()
    .group_id(group)
    .property("fetch.wait.max.ms", fetch_wait_ms());
    let transport = Arc::new(KafkaTransport::new(Default::default()).unwrap());
    let running = app.start(transport).await.unwrap();
    clock.done.notified().await;
    running.stop().await.unwrap();
    clock
}

/// A consumer of `bench_in` in `group` that stores offsets only when told (both loops).
fn bench_consumer(servers: &str, group: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", fetch_wait_ms())
        .create()
        .unwrap();
    consumer.subscribe(&["bench_in"]).unwrap();
    consumer
}

/// Decodes `message`, hands it to the handler and produces the result to `out`, waiting while
/// the producer's queue is full (both loops).
async fn forward<C>(producer: &BaseProducer<C>, out: &str, message: &BorrowedMessage<'_>)
where
    C: ProducerContext<DeliveryOpaque = ()>,
{
    let decoded: TestMsg = serde_json::from_slice(message.payload().unwrap_or_default()).unwrap();
    let payload = serde_json::to_vec(&handle(decoded).await).unwrap();
    let mut record = BaseRecord::<(), [u8]>::to(out).payload(&payload[..]);
    while let Err((_, returned)) = producer.send(record) {
        producer.poll(Duration::from_millis(1)); // the queue is full: let it drain
        record = returned;
    }
}

async fn rdkafka_loop(servers: &str, group: &str, out: &str, records: usize) -> Arc<Clock> {
    let clock = Clock::new(records);
    let consumer = bench_consumer(servers, group);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()
        .unwrap();
    while clock.count.load(Ordering::Relaxed) < records {
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            producer.poll(Duration::ZERO);
            continue;
        };
        let Ok(message) = polled else { continue };
        forward(&producer, out, &message).await;
        producer.poll(Duration::ZERO);
        consumer.store_offset_from_message(&message).unwrap();
        clock.tick();
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    clock
}

/// The loop a careful hand-writer gives the app's guarantee: an input's offset is stored only
/// once its output is acknowledged. It consumes up to `ACKED_BATCH` records, produces their
/// outputs, waits for every acknowledgement and then stores the batch's offsets.
async fn rdkafka_acked_loop(servers: &str, group: &str, out: &str, records: usize) -> Arc<Clock> {
    const ACKED_BATCH: usize = 500;
    let clock = Clock::new(records);
    let consumer = bench_consumer(servers, group);
    let producer: BaseProducer<FailureCount> = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create_with_context(FailureCount::default())
        .unwrap();
    let mut batch = Vec::with_capacity(ACKED_BATCH);
    while clock.count.load(Ordering::Relaxed) < records {
        let Some(first) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        batch.push(first);
        while batch.len() < ACKED_BATCH {
            match consumer.poll(Duration::ZERO) {
                Some(polled) => batch.push(polled),
                None => break,
            }
        }
        for message in batch.iter().flatten() {
            forward(&producer, out, message).await;
            clock.tick();
        }
        // Not `flush`: rust-rdkafka's polls for 100 ms at a time whatever comes meanwhile, which
        // held this loop at ~5,000 records/s.
        while producer.in_flight_count() > 0 {
            producer.poll(Duration::from_millis(1));
        }
        assert_eq!(
            producer.context().failed.load(Ordering::Relaxed),
            0,
            "a delivery failed"
        );
        for message in batch.drain(..).flatten() {
            consumer.store_offset_from_message(&message).unwrap();
        }
    }
    clock
}

/// Counts failed deliveries, which `rdkafka_acked_loop` must not store past.
#[derive(Default)]
struct FailureCount {
    failed: AtomicUsize,
}

impl ClientContext for FailureCount {}

impl ProducerContext for FailureCount {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` adds `--bench`; what follows the `--` is ours.
    let arguments: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [servers, contender, group] = &arguments[..] else {
        eprintln!("usage: kafka_native SERVERS app|rdkafka|rdkafka_acked GROUP");
        std::process::exit(2);
    };
    let records = std::env::var("BENCH_RECORDS").map_or(100_000, |n| n.parse().unwrap());
    let out = format!("out_{}", group.split('-').next().unwrap());
    let clock = match contender.as_str() {
        "app" => app(servers, group, &out, records).await,
        "rdkafka" => rdkafka_loop(servers, group, &out, records).await,
        "rdkafka_acked" => rdkafka_acked_loop(servers, group, &out, records).await,
        other => panic!("unknown contender {other}"),
    };
    println!("{}", clock.report());
}
