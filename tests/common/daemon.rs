//! A daemon child process of the real binary, with its stderr collected line by line.

use super::World;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

/// A daemon child and everything it has written to stderr so far.
pub struct Daemon {
    pub child: Child,
    pub log: Arc<Mutex<String>>,
}

impl Daemon {
    pub fn start(world: &World, policy: &Path) -> Daemon {
        Daemon::spawn(world.command(policy, &[]))
    }

    pub fn spawn(mut command: tokio::process::Command) -> Daemon {
        let mut child = command.spawn().expect("start the daemon");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr piped");
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        Daemon { child, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Wait until `needle` has appeared at least `n` times in the log.
    pub async fn wait_for_n(&mut self, needle: &str, n: usize, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while self.count(needle) < n {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "daemon exited ({status}) while waiting for {needle:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {needle:?} (x{n}) within {secs} s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_for(&mut self, needle: &str, secs: u64) {
        self.wait_for_n(needle, 1, secs).await;
    }

    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("daemon still running");
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid}");
    }

    /// SIGTERM, then the exit code and the whole log; fails if it takes more than 30 s.
    pub async fn stop(self, world: &World) -> (i32, String) {
        let log = self.log.clone();
        let code = self.terminate(world).await;
        let text = log.lock().expect("log lock").clone();
        (code, text)
    }

    /// SIGTERM, then the exit code; fails if it takes more than 30 s.
    pub async fn terminate(self, world: &World) -> i32 {
        self.signal("TERM");
        self.exited(world, 30).await
    }

    /// The exit code; fails if the daemon runs on for more than `secs`.
    pub async fn exited(mut self, world: &World, secs: u64) -> i32 {
        let status = tokio::time::timeout(Duration::from_secs(secs), self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "daemon did not exit within {secs} s of SIGTERM:\n{}",
                    self.log()
                )
            })
            .expect("wait for the daemon");
        tokio::time::sleep(Duration::from_millis(200)).await; // let the reader drain
        let log = self.log();
        world.note_printed(&log);
        assert!(log.contains("stopped"), "{log}");
        status.code().unwrap_or(-1)
    }
}
