//! The engine's `tracing` spans as a Rust app's subscriber sees them: the guide's forwarding
//! app handles a message inside a handler-call span, and its send to cluster 2 is a child of
//! the message's span.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use fastkafka::app::{Json, TestHarness};
use fastkafka::MemoryBroker;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use super::app_examples::forwarding::{self, common::brokers, common::TestMsg};

/// A span as recorded: its name, its fields and its parent's name.
#[derive(Debug, Clone)]
struct Seen {
    name: &'static str,
    fields: BTreeMap<String, String>,
    parent: Option<&'static str>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        let parent = context
            .span(id)
            .and_then(|span| span.parent())
            .map(|parent| parent.name());
        self.0.lock().unwrap().push(Seen {
            name: attributes.metadata().name(),
            fields: fields.0,
            parent,
        });
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

#[tokio::test] // one thread: the subscriber set below sees every task of the app
async fn a_forwarded_message_is_a_send_span_inside_its_process_span_inside_the_handler_call() {
    let recorder = Recorder::default();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(recorder.clone()));
    let (one, two) = (brokers("server_1:9092"), brokers("server_2:9092"));
    let app = forwarding::forwarding_app(&one, &two).unwrap();
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let mut on_two = harness
        .watch::<TestMsg, _>("preprocessed_signals", Some(&two), Json)
        .await
        .unwrap();
    let running = app.start(harness.transport()).await.unwrap();
    harness
        .send("preprocessed_signals", None, &Json, &TestMsg::new("x"))
        .unwrap();
    on_two.next().await.unwrap();
    running.stop().await.unwrap();

    let seen = recorder.0.lock().unwrap().clone();
    let named = |name: &str| -> Vec<&Seen> { seen.iter().filter(|s| s.name == name).collect() };
    // The harness's watch on cluster 2 is a consumer loop too.
    let batch: Vec<&Seen> = named("fastkafka.handle_batch")
        .into_iter()
        .filter(|span| span.fields["consumer"] == "consumer of 'preprocessed_signals'")
        .collect();
    assert_eq!(batch.len(), 1, "one handler call: {seen:#?}");
    assert_eq!(batch[0].fields["messaging.batch.message_count"], "1");
    let process = named("fastkafka.process");
    assert_eq!(process.len(), 1);
    assert_eq!(process[0].parent, Some("fastkafka.handle_batch"));
    assert_eq!(process[0].fields["messaging.kafka.offset"], "0");
    assert_eq!(process[0].fields["messaging.system"], "kafka");
    let send = named("fastkafka.send");
    assert_eq!(send.len(), 1);
    assert_eq!(
        send[0].parent,
        Some("fastkafka.process"),
        "sent while handling"
    );
    assert_eq!(send[0].fields["server.address"], "server_2:9092");
    assert_eq!(
        send[0].fields["messaging.destination.name"],
        "preprocessed_signals"
    );
}
