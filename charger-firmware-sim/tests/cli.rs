//! `charger-firmware-sim load` as a user runs it: the binary, a bundle file and a tag
//! file, against a real server; its JSON report, and its errors for bad input.

use std::path::Path;
use std::process::Output;

use charger_e2e::{spawn_app, TempDir, ADMIN_TOKEN};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_charger-firmware-sim");

async fn sim(args: &[&str]) -> Output {
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(BIN).args(args).output(),
    )
    .await
    .expect("the simulator ends by itself")
    .expect("the simulator runs")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test]
async fn load_prints_a_json_report_and_names_bad_input() {
    let app = spawn_app().await;
    let dir = TempDir::new();
    let bundles = dir.0.join("bundles.jsonl");
    let lines: Vec<String> = app
        .provision("acme", 3)
        .await
        .iter()
        .map(|b| serde_json::to_string(b).expect("bundle"))
        .collect();
    std::fs::write(&bundles, lines.join("\n")).expect("bundle file");
    let tags = dir.0.join("tags.txt");
    std::fs::write(&tags, "BE000001\nBE000002\n").expect("tag file");
    for uid in ["BE000001", "BE000002"] {
        let a = app
            .post(
                "/api/v1/tags",
                ADMIN_TOKEN,
                json!({"uid": uid, "owner": "acme", "max_sessions": 2}),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
    }
    let broker = app.app.mqtt_addr.to_string();
    let base = [
        "load",
        "--bundles",
        path(&bundles),
        "--broker",
        &broker,
        "--tags",
        path(&tags),
    ];

    let out = sim(&[
        &base[..],
        &[
            "--mix",
            "authorize=3,status=1",
            "--requests",
            "30",
            "--json",
            "--quiet",
        ],
    ]
    .concat())
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["chargers"], 3, "{report}");
    assert_eq!(report["connected"], 3, "{report}");
    assert_eq!(report["requests"], 30, "{report}");
    assert_eq!(report["errors"], json!({}), "{report}");
    assert!(report["latency"]["p99_us"].as_u64().is_some(), "{report}");
    assert!(
        report["endpoints"]["authorize"]["count"].as_u64() > Some(0),
        "{report}"
    );

    // The text report, with the progress on standard error.
    let out = sim(&[&base[..], &["--chargers", "2", "--requests", "10"]].concat()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("chargers      2 (2 connected"), "{text}");
    assert!(text.contains("requests      10 in"), "{text}");
    assert!(text.contains("errors        none"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 of 2 chargers connected"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Bad input: exit code 2 and a line that names the problem.
    let file = ["--bundles", path(&bundles), "--broker", &broker];
    for (args, says) in [
        (vec!["--chargers", "0"], "--chargers must be 1 to 3"),
        (vec!["--chargers", "4"], "--chargers must be 1 to 3"),
        (vec!["--duration", "0"], "--duration must be more than 0"),
        (vec!["--rate", "0"], "--rate must be a positive number"),
        (vec!["--mix", "fly=1"], "unknown operation \"fly\""),
        (
            vec!["--mix", "authorize"],
            "authorize and session need tags",
        ),
        (
            vec!["--tags", "/nonexistent/tags.txt"],
            "/nonexistent/tags.txt",
        ),
    ] {
        let out = sim(&[&["load"][..], &file[..], &args[..]].concat()).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
