//! The Kafka side of the offset tools ([`crate::offsets`]): a group's committed offsets and the
//! partitions' watermarks, offsets by time, whether the group has live members, and committing
//! new offsets. Each call uses a short-lived client of its own with the consumer's properties
//! (its security included) and never joins the group; librdkafka's calls block, so they run on
//! tokio's blocking pool.

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{client_config, BLOCKING_CALL_TIMEOUT};
use crate::error::{Error, Result};
use crate::offsets::{plan_reset, ConsumerGroupTarget, PartitionOffsets, PartitionReset, ResetTo};

/// Each partition of the target's topic: the group's committed offset and the watermarks.
pub async fn read(target: &ConsumerGroupTarget) -> Result<Vec<PartitionOffsets>> {
    with_client(target, |client, target| {
        let partitions = partitions_of(client, &target.topic)?;
        let committed = client
            .committed_offsets(
                list_of(&target.topic, &partitions, Offset::Invalid)?,
                BLOCKING_CALL_TIMEOUT,
            )
            .map_err(|e| {
                format!(
                    "cannot read the committed offsets of group '{}': {e}",
                    target.group
                )
            })?;
        partitions
            .into_iter()
            .map(|partition| {
                let (low, high) = client
                    .fetch_watermarks(&target.topic, partition, BLOCKING_CALL_TIMEOUT)
                    .map_err(|e| format!("no watermarks for partition {partition}: {e}"))?;
                let committed =
                    committed
                        .find_partition(&target.topic, partition)
                        .and_then(|element| match element.offset() {
                            Offset::Offset(offset) => Some(offset),
                            _ => None,
                        });
                Ok(PartitionOffsets {
                    partition,
                    committed,
                    low,
                    high,
                })
            })
            .collect()
    })
    .await
}

/// For each partition, the first offset whose record's timestamp is at or after `at_ms`
/// (`None`: no record is).
pub async fn offsets_at(
    target: &ConsumerGroupTarget,
    at_ms: i64,
) -> Result<Vec<(i32, Option<i64>)>> {
    with_client(target, move |client, target| {
        let partitions = partitions_of(client, &target.topic)?;
        let found = client
            .offsets_for_times(
                list_of(&target.topic, &partitions, Offset::Offset(at_ms))?,
                BLOCKING_CALL_TIMEOUT,
            )
            .map_err(|e| format!("cannot look up offsets by time: {e}"))?;
        Ok(found
            .elements()
            .iter()
            .map(|element| match element.offset() {
                Offset::Offset(offset) if offset >= 0 => (element.partition(), Some(offset)),
                _ => (element.partition(), None),
            })
            .collect())
    })
    .await
}

/// How many members the target's group has now (asked with DescribeGroups).
pub async fn live_members(target: &ConsumerGroupTarget) -> Result<usize> {
    with_client(target, |client, target| {
        let groups = client
            .fetch_group_list(Some(&target.group), BLOCKING_CALL_TIMEOUT)
            .map_err(|e| {
                format!(
                    "cannot tell whether group '{}' has live members: {e}",
                    target.group
                )
            })?;
        Ok(groups
            .groups()
            .iter()
            .filter(|group| group.name() == target.group)
            .map(|group| group.members().len())
            .sum())
    })
    .await
}

/// Commits `resets` as the group's offsets, as a client outside the group (Kafka accepts that
/// while the group has no members).
pub async fn commit(target: &ConsumerGroupTarget, resets: &[PartitionReset]) -> Result<()> {
    let resets = resets.to_vec();
    with_client(target, move |client, target| {
        let mut list = TopicPartitionList::new();
        for reset in &resets {
            list.add_partition_offset(
                &target.topic,
                reset.before.partition,
                Offset::Offset(reset.to),
            )
            .map_err(|e| e.to_string())?;
        }
        client.commit(&list, CommitMode::Sync).map_err(|e| {
            format!(
                "cannot commit the new offsets of group '{}': {e}",
                target.group
            )
        })
    })
    .await
}

/// Moves the target's group to `to` (see [`plan_reset`]) and returns each partition's move;
/// with `dry_run`, only says what it would do. Refused while the group has live members
/// (they would commit over it), naming how many.
pub async fn reset(
    target: &ConsumerGroupTarget,
    to: ResetTo,
    dry_run: bool,
) -> Result<Vec<PartitionReset>> {
    let members = live_members(target).await?;
    if members > 0 {
        return Err(Error::Config(format!(
            "group '{}' of consumer '{}' has {members} live member(s) on {}: stop the app \
             before resetting its offsets (its members would commit over them)",
            target.group, target.consumer, target.cluster
        )));
    }
    let partitions = read(target).await?;
    let at_time = match to {
        ResetTo::Time(at_ms) => offsets_at(target, at_ms).await?,
        _ => Vec::new(),
    };
    let resets = plan_reset(&partitions, to, &at_time);
    if !dry_run {
        commit(target, &resets).await?;
    }
    Ok(resets)
}

/// Runs `call` with a fresh client of the target's group on tokio's blocking pool; its error
/// names the cluster.
async fn with_client<T, F>(target: &ConsumerGroupTarget, call: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&BaseConsumer, &ConsumerGroupTarget) -> std::result::Result<T, String>
        + Send
        + 'static,
{
    let owned = target.clone();
    let cluster = target.cluster.to_string();
    let called = tokio::task::spawn_blocking(move || {
        let mut config = client_config(&owned.cluster, &owned.properties);
        config
            .set("group.id", &owned.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        let client: BaseConsumer = config
            .create()
            .map_err(|e| format!("cannot create a client: {e}"))?;
        call(&client, &owned)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|called| called);
    called.map_err(|message| Error::Transport { cluster, message })
}

fn partitions_of(client: &BaseConsumer, topic: &str) -> std::result::Result<Vec<i32>, String> {
    let metadata = client
        .fetch_metadata(Some(topic), BLOCKING_CALL_TIMEOUT)
        .map_err(|e| format!("no metadata for topic '{topic}': {e}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!(
            "topic '{topic}' does not exist (or has no partitions)"
        ));
    }
    Ok(partitions)
}

fn list_of(
    topic: &str,
    partitions: &[i32],
    offset: Offset,
) -> std::result::Result<TopicPartitionList, String> {
    let mut list = TopicPartitionList::new();
    for partition in partitions {
        list.add_partition_offset(topic, *partition, offset)
            .map_err(|e| e.to_string())?;
    }
    Ok(list)
}
