//! Health as a user's probe sees it (`RunningApp::health`): a stuck handler turns liveness red
//! naming its consumer, a cluster whose brokers are all down turns readiness red naming the
//! cluster, and both recover.

use std::sync::Arc;
use std::time::Duration;

use fastkafka::app::{App, Json, TestHarness};
use fastkafka::health::{HealthLimits, HealthReport};
use fastkafka::MemoryBroker;
use tokio::sync::Notify;

use super::app_examples::forwarding::common::{brokers, TestMsg};
use super::WAIT;

/// Checks `report_of` until `condition` holds, failing after `within` with the last report.
pub async fn health_until(
    within: Duration,
    report_of: impl Fn() -> HealthReport,
    condition: impl Fn(&HealthReport) -> bool,
) -> HealthReport {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let report = report_of();
        if condition(&report) {
            return report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health never got there: {report:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_handler_stuck_past_consuming_ttl_is_not_live_and_recovers_when_it_returns() {
    let cluster = brokers("server_1:9092");
    let limits = HealthLimits {
        consuming_ttl: Some(Duration::from_millis(200)),
        ..HealthLimits::default()
    };
    let mut app = App::new(cluster).health_limits(limits);
    let release = Arc::new(Notify::new());
    let waiting = release.clone();
    app.consumer("signals", None, Json, move |_: TestMsg| {
        let waiting = waiting.clone();
        async move {
            waiting.notified().await;
            Ok::<_, String>(())
        }
    })
    .unwrap();
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let running = app.start(harness.transport()).await.unwrap();
    let healthy = running.health();
    assert!(healthy.live && healthy.ready, "{healthy:#?}");
    assert_eq!(healthy.state, "running");
    assert_eq!(
        healthy.consumers[0].partitions,
        [0],
        "the partitions it holds"
    );

    harness
        .send("signals", None, &Json, &TestMsg::new("stuck"))
        .unwrap();
    let stuck = health_until(WAIT, || running.health(), |r| !r.live).await;
    assert!(
        !stuck.ready,
        "a consumer that is not live is not ready either"
    );
    assert_eq!(stuck.problems.len(), 1, "{stuck:#?}");
    let problem = &stuck.problems[0];
    assert!(
        problem.starts_with("consumer of 'signals' (topic 'signals', cluster server_1:9092)")
            && problem.contains("consuming_ttl 0.2 s"),
        "names the consumer, its cluster and the limit: {problem}"
    );
    assert!(stuck.consumers[0].handling_for_s.is_some_and(|s| s > 0.2));

    release.notify_one();
    health_until(WAIT, || running.health(), |r| r.live && r.ready).await;
    let probe = running.health_probe();
    running.stop().await.unwrap();
    let stopped = probe.check();
    assert_eq!(
        stopped.state, "stopping",
        "a probe kept past the stop says so"
    );
    assert!(!stopped.ready);
}

#[cfg(feature = "kafka")]
mod kafka {
    use super::*;

    /// librdkafka's mock cluster can take its brokers down and bring them back; Tansu killed
    /// and restarted is tested through `fastkafka run` (tests_py/test_health.py).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cluster_with_every_broker_down_is_not_ready_until_it_answers_again() {
        let (mock, id, transport) = super::super::kafka::setup(1);
        let servers = id.bootstrap_servers().to_owned();
        let mut app = App::new(brokers(&servers));
        app.consumer("t", None, Json, |_: TestMsg| async { Ok::<_, String>(()) })
            .unwrap()
            .group_id("health");
        let transport: Arc<dyn fastkafka::Transport> = Arc::new(transport);
        let running = app.start(transport).await.unwrap();
        health_until(WAIT, || running.health(), |r| r.ready).await;

        mock.broker_down(-1).unwrap();
        let down = health_until(
            Duration::from_secs(20),
            || running.health(),
            |r| r.clusters.iter().any(|c| !c.reachable),
        )
        .await;
        assert!(!down.ready && down.live, "{down:#?}");
        assert!(
            down.problems.iter().any(|p| p
                .starts_with(&format!("cluster {servers} (used by consumer of 't')"))
                && p.contains("unreachable")),
            "names the cluster and who uses it: {:?}",
            down.problems
        );

        mock.broker_up(-1).unwrap();
        health_until(Duration::from_secs(30), || running.health(), |r| r.ready).await;
        running.stop().await.unwrap();
    }
}
