//! The test harnesses' mirrors, for both APIs: what a test feeds an app and reads back from it,
//! derived from the apps' registrations.
//!
//! For every (cluster, topic) the apps consume there is a mirror that *feeds* it (Python's
//! `tester.to_<topic>`), and for every (cluster, topic) they produce to, one that *reads* it
//! (`tester.on_<topic>`; Rust's `TestHarness::watch`). Mirrors are bound to the cluster their
//! functions use in the apps' environment ([`ClusterChoice::Fixed`]), so they follow the apps
//! whatever the environment, and are registered on a runtime of their own
//! ([`mirror_runtime`]) that starts before the apps, so that nothing the apps produce is
//! missed. What a read mirror does with its records is the facade's (Python's mocks, Rust's
//! channel); which mirrors exist, their names, clusters and start is decided here once.
//!
//! [`dead_letters`] reads a consumer's dead letters back from the in-memory broker.

use super::{ClusterChoice, ConsumerSettings, Described, Direction, HandOver, HandlerFactory};
use super::{ConsumerRegistration, ProducerHandle, ProducerSettings, Runtime};
use crate::config::{ClusterId, KafkaBrokers};
use crate::consumer_loop::failures::DeadLetter;
use crate::error::{Error, Result};
use crate::transport::memory::MemoryBroker;
use crate::transport::OffsetReset;

/// Whether a mirror feeds what the apps consume or reads what they produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorRole {
    /// A producer to a (cluster, topic) the apps consume.
    Feeds,
    /// A consumer of a (cluster, topic) the apps produce to.
    Reads,
}

/// An app function a mirror serves: the index of its app and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// Which of the apps (their order as given).
    pub app: usize,
    /// The function's registered name.
    pub function: String,
}

/// One mirror: a (cluster, topic) of the apps, and the functions that use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// Feeds or reads.
    pub role: MirrorRole,
    /// `to_<topic>` or `on_<topic>`, `.` and `-` read as `_`: FastKafka's names. Mirrors of
    /// one topic on several clusters share it (a test then names the function instead).
    pub name: String,
    /// The topic.
    pub topic: String,
    /// The cluster, in the apps' environment.
    pub cluster: ClusterId,
    /// The app functions it serves, in registration order.
    pub serves: Vec<Served>,
}

/// The mirrors of `apps` in their current environments: for each app in turn, read mirrors
/// for its producers, then feed mirrors for its consumers; one per (role, cluster, topic).
pub fn mirrors_of(apps: &[&Runtime]) -> Result<Vec<Mirror>> {
    let mut mirrors: Vec<Mirror> = Vec::new();
    for (index, app) in apps.iter().enumerate() {
        let registered: Vec<_> = app.registered().collect();
        let producers_first = registered
            .iter()
            .filter(|r| r.direction == Direction::Produces)
            .chain(
                registered
                    .iter()
                    .filter(|r| r.direction == Direction::Consumes),
            );
        for function in producers_first {
            let role = match function.direction {
                Direction::Produces => MirrorRole::Reads,
                Direction::Consumes => MirrorRole::Feeds,
            };
            let cluster = app.cluster_id(function.cluster)?;
            let served = Served {
                app: index,
                function: function.name.to_owned(),
            };
            let known = mirrors.iter_mut().find(|mirror| {
                mirror.role == role && mirror.cluster == cluster && mirror.topic == function.topic
            });
            match known {
                Some(mirror) => mirror.serves.push(served),
                None => mirrors.push(Mirror {
                    role,
                    name: mirror_name(role, function.topic),
                    topic: function.topic.to_owned(),
                    cluster,
                    serves: vec![served],
                }),
            }
        }
    }
    Ok(mirrors)
}

impl Mirror {
    /// A mirror of `topic` on `cluster` that serves no function (a Rust watch of a topic the
    /// app does not produce to).
    pub fn unserved(role: MirrorRole, topic: &str, cluster: ClusterId) -> Self {
        Self {
            role,
            name: mirror_name(role, topic),
            topic: topic.to_owned(),
            cluster,
            serves: Vec::new(),
        }
    }
}

fn mirror_name(role: MirrorRole, topic: &str) -> String {
    let prefix = match role {
        MirrorRole::Feeds => "to_",
        MirrorRole::Reads => "on_",
    };
    format!("{prefix}{}", topic.replace(['.', '-'], "_"))
}

/// Where read mirrors start: from the beginning on a fresh in-memory broker; at the end on a
/// real cluster, whose earlier records are not the test's.
pub fn mirror_start(in_memory: bool) -> OffsetReset {
    if in_memory {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    }
}

/// A runtime of `mirrors`: each read mirror a consumer starting at `start` whose handler
/// `reader` makes, each feed mirror a producer whose handle is returned in the mirror's place
/// (`None` for read mirrors).
pub fn mirror_runtime(
    mirrors: &[Mirror],
    start: OffsetReset,
    mut reader: impl FnMut(&Mirror) -> Result<HandlerFactory>,
) -> Result<(Runtime, Vec<Option<ProducerHandle>>)> {
    // Every mirror names its cluster, so the runtime's own brokers are never used.
    let mut runtime = Runtime::new(KafkaBrokers::localhost());
    let mut feeds = Vec::with_capacity(mirrors.len());
    for mirror in mirrors {
        let cluster = ClusterChoice::Fixed(mirror.cluster.clone());
        match mirror.role {
            MirrorRole::Feeds => feeds.push(Some(runtime.add_producer(
                mirror.name.clone(),
                mirror.topic.clone(),
                cluster,
                ProducerSettings::default(),
                Described::default(),
            )?)),
            MirrorRole::Reads => {
                runtime.add_consumer(ConsumerRegistration {
                    name: mirror.name.clone(),
                    topic: mirror.topic.clone(),
                    cluster,
                    settings: ConsumerSettings {
                        auto_offset_reset: start,
                        ..ConsumerSettings::default()
                    },
                    handler: reader(mirror)?,
                    on_abandon: None,
                    hand_over: HandOver::UpToMaxPollRecords,
                    described: Described::default(),
                })?;
                feeds.push(None);
            }
        }
    }
    Ok((runtime, feeds))
}

/// Where one consumer's dead letters go, in its app's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterTarget {
    /// The consumer's registered name.
    pub consumer: String,
    /// Its dead-letter topic.
    pub topic: String,
    /// The topic's cluster.
    pub cluster: ClusterId,
}

/// The dead-letter topics of `apps`' consumers that have one.
pub fn dead_letter_targets(apps: &[&Runtime]) -> Result<Vec<DeadLetterTarget>> {
    let mut targets = Vec::new();
    for app in apps {
        for consumer in &app.consumers {
            let Some(target) = &consumer.settings.dead_letter else {
                continue;
            };
            targets.push(DeadLetterTarget {
                consumer: consumer.name.clone(),
                topic: target.topic.clone(),
                cluster: app.cluster_id(target.cluster.as_ref().unwrap_or(&consumer.cluster))?,
            });
        }
    }
    Ok(targets)
}

/// What consumer `consumer` (its registered name) sent to its dead-letter topic so far on
/// `broker`, oldest first per partition.
pub fn dead_letters(
    targets: &[DeadLetterTarget],
    broker: &MemoryBroker,
    consumer: &str,
) -> Result<Vec<DeadLetter>> {
    let found: Vec<_> = targets.iter().filter(|t| t.consumer == consumer).collect();
    let [target] = found[..] else {
        return Err(Error::Config(if found.is_empty() {
            format!(
                "no consumer named '{consumer}' with a dead-letter topic in the apps under test"
            )
        } else {
            format!(
                "{} consumers named '{consumer}' in the apps under test; expected one",
                found.len()
            )
        }));
    };
    let records = broker
        .memory_cluster(&target.cluster)
        .records(&target.topic);
    Ok(records.iter().map(DeadLetter::from_record).collect())
}
