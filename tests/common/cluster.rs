//! A three-node nats-server cluster on loopback (JetStream on every node),
//! for the scale-out tests. Nodes can be killed (SIGKILL) and restarted on
//! the same ports and stores.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, nats_server_bin, wait_listening};

/// One node.
struct Node {
    name: String,
    port: u16,
    config: PathBuf,
    child: Option<Child>,
}

/// The cluster; every node is killed on drop.
pub struct NatsCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Start `n` routed nodes and wait until JetStream has a meta leader.
    pub async fn start(n: usize) -> NatsCluster {
        let dir = tempfile::tempdir().expect("temp dir for the cluster");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = ports.iter().map(|(_, c)| format!("nats-route://127.0.0.1:{c}")).collect();
        let mut nodes = Vec::new();
        for (i, (port, cluster_port)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.path().join(&name);
            let text = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{port}\n\
                 jetstream {{ store_dir: \"{}\" }}\n\
                 cluster {{\n  name: alertd-test\n  listen: 127.0.0.1:{cluster_port}\n  routes: [{}]\n}}\n",
                store.display(),
                routes.join(", ")
            );
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(&config, text).expect("write node config");
            nodes.push(Node { name, port: *port, config, child: None });
        }
        let mut cluster = NatsCluster { nodes, _dir: dir };
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster.wait_for_jetstream().await;
        cluster
    }

    /// Every node's URL, comma-separated (as `[nats] url` takes them).
    pub fn urls(&self) -> String {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }

    /// Node `i`'s name (`n1`…).
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start node `i` again (same port, same store) and wait for JetStream.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_for_jetstream().await;
    }

    fn spawn(&mut self, i: usize) {
        let bin = nats_server_bin();
        let node = &mut self.nodes[i];
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        node.child = Some(child);
        wait_listening(node.port, &format!("nats node {}", node.name));
    }

    /// Until JetStream answers account info through every running node.
    async fn wait_for_jetstream(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let url = format!("nats://127.0.0.1:{}", node.port);
            loop {
                let ready = async {
                    let client = async_nats::connect(&url).await.ok()?;
                    let js = async_nats::jetstream::new(client);
                    js.query_account().await.ok()
                };
                if tokio::time::timeout(Duration::from_secs(3), ready).await.ok().flatten().is_some() {
                    break;
                }
                assert!(Instant::now() < deadline, "JetStream on {} not ready within 30s", node.name);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
