//! Record and replay: a live session's event stream, replayed without privileges, gives the
//! same exchanges as the live run.
use std::process::Command;

use crate::harness::{self, Agent, agent_bin, str_at};

#[test]
fn kernel_replay_of_a_recording_reproduces_the_live_output() {
    if !harness::kernel_available("kernel_replay_of_a_recording_reproduces_the_live_output") {
        return;
    }
    let port = harness::free_port();
    let _server = harness::echo_server(port);
    let port_arg = port.to_string();
    let mut agent = Agent::start_with(&[], |dir| {
        let out = dir.join("live.jsonl");
        let argv = [
            "run",
            "--state-dir",
            &dir.join("state").display().to_string(),
            "--output",
            &out.display().to_string(),
            "--record",
            &dir.join("capture.rec").display().to_string(),
            "--port",
            &port_arg,
        ]
        .map(str::to_owned)
        .to_vec();
        (argv, out)
    });
    for i in 0..5 {
        harness::curl_ok(&[
            "-H",
            "Authorization: Bearer sekrit",
            &format!("http://127.0.0.1:{port}/rec/{i}"),
        ]);
    }
    harness::python(
        "import http.client, sys\nc = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]))\nfor i in range(3):\n    c.request('POST', '/rec/ka', body=b'x' * 100); c.getresponse().read()\n",
        &[&port_arg],
    );
    agent.wait_for("live exchanges", |e| str_at(e, "/request/path").starts_with("/rec/"), |s| s.len() >= 16);
    let dir = agent.dir().to_path_buf();
    let live_path = agent.output().to_path_buf();
    let log = agent.stop();
    assert!(log.contains("recording to"), "{log}");
    let live = std::fs::read_to_string(&live_path).unwrap();

    // Replay as an unprivileged user, from a copy it may read.
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let rec = shared.path().join("capture.rec");
    std::fs::copy(dir.join("capture.rec"), &rec).unwrap();
    std::fs::set_permissions(&rec, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let replayed_path = shared.path().join("replayed.jsonl");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(agent_bin())
        .arg("replay")
        .arg(&rec)
        .arg("--output")
        .arg(&replayed_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    let replayed = std::fs::read_to_string(&replayed_path).unwrap();
    assert!(replayed.lines().count() >= 16, "{replayed}");
    // Value hashes (and client ids hashed from opaque tokens) are keyed per installation: a
    // replay without the live run's state directory (here, as another user) hashes under
    // another key, by design. All else matches.
    assert_eq!(
        without_value_hashes(&live),
        without_value_hashes(&replayed),
        "replay differs from the live run"
    );
    assert!(!replayed.contains("sekrit"));
}

#[test]
fn replay_rejects_garbage_and_reads_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.rec");
    std::fs::write(&garbage, b"this is not a recording at all, not even close").unwrap();
    let out = Command::new(agent_bin()).arg("replay").arg(&garbage).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not an apisense recording") && err.contains("garbage.rec"), "{err}");

    let missing = Command::new(agent_bin()).arg("replay").arg(dir.path().join("nope.rec")).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.rec"));
}

fn without_value_hashes(jsonl: &str) -> Vec<serde_json::Value> {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("value_hash");
                if map.get("kind").is_some_and(|k| k == "bearer" || k == "api_key") {
                    map.remove("id");
                }
                if let Some(serde_json::Value::String(c)) = map.get_mut("client")
                    && (c.starts_with("bearer:") || c.starts_with("api_key:"))
                {
                    c.truncate(c.find(':').unwrap_or(0));
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    jsonl
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            strip(&mut v);
            v
        })
        .collect()
}
