//! Local Tansu brokers for the Rust tests that need a real Kafka-compatible cluster (the Python
//! tests use `scripts/local_kafka.py`, which also installs Tansu: `make tansu`).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STARTUP: Duration = Duration::from_secs(60);

/// A one-broker cluster on a free loopback port, with its own storage; stopped on drop.
pub struct Tansu {
    process: Child,
    directory: PathBuf,
    binary: PathBuf,
    port: u16,
}

fn binary() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo"));
    let installed = cargo_home.join("bin").join("tansu");
    if installed.exists() {
        return installed;
    }
    let home_installed =
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo/bin/tansu");
    assert!(
        home_installed.exists(),
        "tansu is not installed; run `make tansu`"
    );
    home_installed
}

impl Tansu {
    /// Starts a broker and waits until it accepts connections.
    pub fn start(name: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let directory = std::env::temp_dir().join(format!("fastkafka-rs-tansu-{name}-{port}"));
        std::fs::create_dir_all(&directory).unwrap();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(directory.join("broker.log")).unwrap();
        let binary = binary();
        let process = Command::new(&binary)
            .args(["broker", "--cluster-id", name, "--listener-url", &url])
            .args([
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .current_dir(&directory)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        let deadline = Instant::now() + STARTUP;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            process,
            directory,
            binary,
            port,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates `topic` (Tansu does not create topics on first use).
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let deadline = Instant::now() + STARTUP;
        loop {
            let created = Command::new(&self.binary)
                .args([
                    "topic",
                    "create",
                    topic,
                    "--partitions",
                    &partitions.to_string(),
                ])
                .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("tansu runs");
            if created.success() {
                return;
            }
            assert!(Instant::now() < deadline, "could not create topic {topic}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}
