//! The `eci-sandbox` binary: startup line, URL file, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn prints_url_writes_url_file_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("eci-sandbox-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url_file = dir.join("url");
    let mut child = Command::new(env!("CARGO_BIN_EXE_eci-sandbox"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--github-token",
            "ghp_a",
            "--url-file",
        ])
        .arg(&url_file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("line");
    let url = line
        .trim()
        .strip_prefix("eci-sandbox listening on ")
        .expect("startup line")
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let deadline = Instant::now() + Duration::from_secs(5);
    while !url_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read_to_string(&url_file).expect("url file"), url);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
