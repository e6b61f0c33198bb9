//! OAUTHBEARER tokens from a Rust token provider: every client of the transport asks it, and
//! asks again before the token expires. (No broker here takes OAUTHBEARER, so the SASL
//! exchange itself is librdkafka's; tests_py/test_oauth.py says more.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fastkafka::transport::kafka::oauth::{BearerToken, TokenProvider};
use fastkafka::transport::kafka::KafkaTransport;
use fastkafka::{ClientProperties, ClusterId, Transport};
use rdkafka::mocking::MockCluster;

#[derive(Debug, Default)]
struct Counting(AtomicUsize);

impl TokenProvider for Counting {
    fn token(&self) -> Result<BearerToken, String> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(BearerToken {
            value: "opaque".to_owned(),
            principal: "svc-orders".to_owned(),
            expires_at: SystemTime::now() + Duration::from_secs(1),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_its_token_from_the_provider_and_again_before_it_expires() {
    let mock = MockCluster::new(1).unwrap();
    let id = ClusterId::from_addresses(mock.bootstrap_servers().split(','));
    let provider = Arc::new(Counting::default());
    let transport = KafkaTransport::new(ClientProperties::new())
        .unwrap()
        .with_token_provider(provider.clone());
    let oauth: ClientProperties = [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "OAUTHBEARER"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let _cluster = transport.cluster_with(&id, &oauth).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while provider.0.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "asked {} time(s)",
            provider.0.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
