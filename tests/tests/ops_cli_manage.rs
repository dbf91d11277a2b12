//! The `faas` operator commands against a live stack: `watch` (follows /events), and bad input
//! for each of `watch`, `tasks`, `cancel`, `retry`, `purge`, `function` and `rm` (a message and a
//! non-zero exit, nothing sent).

use std::time::Duration;

use faas_tests::{bin, within, Mode, Stack};
use serde_json::{json, Value};

const CLI_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn ok(self) -> String {
        assert_eq!(self.code, 0, "{self:?}");
        self.stdout.trim().to_owned()
    }

    #[track_caller]
    fn fails(self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert!(
            self.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "stderr lacks {needle:?}: {self:?}"
        );
    }
}

fn command(gateway: &str, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(bin("faas"));
    c.arg("--gateway")
        .arg(gateway)
        .args(args)
        .env_remove("FAAS_TOKEN")
        .env_remove("FAAS_GATEWAY_URL")
        .kill_on_drop(true);
    c
}

async fn faas(gateway: &str, args: &[&str]) -> Out {
    let out = tokio::time::timeout(CLI_TIMEOUT, command(gateway, args).output())
        .await
        .unwrap_or_else(|_| panic!("faas {args:?} hung"))
        .expect("run faas");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `faas ARGS` in the background while `drive` runs; returns its output once it exits.
async fn faas_while(gateway: &str, args: &[&str], drive: impl AsyncFnOnce()) -> Out {
    let child = command(gateway, args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run faas");
    drive().await;
    let out = within(CLI_TIMEOUT, "faas to exit", child.wait_with_output())
        .await
        .expect("faas output");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_the_events_of_a_run() {
    let mut stack = Stack::start(Mode::Local).await;
    let gw = stack.base_url().to_owned();
    let f = stack
        .register_source("f", "def f():\n    return 1\n", "f")
        .await;
    let other = stack
        .register_source("o", "def o():\n    return 2\n", "o")
        .await;

    // --json, filtered by function, ends after 6 events: two tasks' QUEUED, RUNNING, COMPLETED,
    // while the other function's tasks (run too) never show.
    let fs = f.to_string();
    let out = faas_while(
        &gw,
        &[
            "--json",
            "watch",
            "--function",
            &fs,
            "--type",
            "task",
            "--count",
            "6",
        ],
        async || {
            // The watch connects while tasks run; tasks go on until it has seen six events.
            for _ in 0..200 {
                stack.execute_json(other, json!([]), json!({})).await;
                let t = stack.execute_json(f, json!([]), json!({})).await;
                stack.wait_result(t).await;
                if stack
                    .gateway()
                    .logged(|e| e.is("subscribed") && e.field("subscriber") == Some("events"))
                {
                    break;
                }
            }
            let t = stack.execute_json(f, json!([]), json!({})).await;
            stack.wait_result(t).await;
            let t = stack.execute_json(f, json!([]), json!({})).await;
            stack.wait_result(t).await;
        },
    )
    .await;
    let text = out.ok();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(
        lines
            .iter()
            .all(|v| v["type"] == "task" && v["function_id"] == fs.as_str()),
        "{text}"
    );

    // Plain lines: one task followed to its end.
    let t = stack
        .execute_json(
            stack
                .register_source("nap", "import time\ndef nap():\n    time.sleep(2)\n", "nap")
                .await,
            json!([]),
            json!({}),
        )
        .await;
    let ts = t.to_string();
    let out = faas(&gw, &["watch", "--task", &ts, "--count", "1"]).await;
    let line = out.ok();
    assert!(line.contains(&ts) && line.contains("task"), "{line}");
    assert!(
        line.contains("RUNNING") || line.contains("COMPLETED"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_refuse_bad_input_with_a_message() {
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    let gw = stack.base_url();
    // Usage errors: exit 2 with a message, before anything is sent.
    faas(gw, &["purge"]).await.fails(2, "--yes");
    faas(gw, &["watch", "--type", "nope"])
        .await
        .fails(2, "invalid value");
    faas(gw, &["watch", "--task", "nope"])
        .await
        .fails(2, "invalid");
    faas(gw, &["tasks", "--status", "DONE"])
        .await
        .fails(2, "invalid value");
    faas(gw, &["tasks", "--since", "5y"]).await.fails(2, "unit");
    faas(gw, &["tasks", "--limit", "0"])
        .await
        .fails(2, "invalid value");
    faas(gw, &["cancel", "nope"]).await.fails(2, "invalid");
    faas(gw, &["retry", "nope"]).await.fails(2, "invalid");
    faas(gw, &["function", "nope"]).await.fails(2, "invalid");
    faas(gw, &["rm", "nope"]).await.fails(2, "invalid");
    // An unreachable gateway: exit 69.
    let dead = format!("http://127.0.0.1:{}", faas_tests::free_port());
    faas(&dead, &["watch"]).await.fails(69, "cannot reach");
    faas(&dead, &["tasks"]).await.fails(69, "cannot reach");
    faas(gw, &["tasks"]).await.ok();

    // Queued tasks (no dispatcher here): listed, one cancelled, the rest purged.
    let f = stack
        .register_source("f", "def f():\n    return 1\n", "f")
        .await;
    let fs = f.to_string();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(
            stack
                .execute_json(f, json!([]), json!({}))
                .await
                .to_string(),
        );
    }
    let listed: Value = serde_json::from_str(
        &faas(
            gw,
            &["--json", "tasks", "--function", &fs, "--status", "QUEUED"],
        )
        .await
        .ok(),
    )
    .unwrap();
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 4, "{listed}");
    // Paging: two pages of two, no task twice.
    let page1: Value =
        serde_json::from_str(&faas(gw, &["--json", "tasks", "--limit", "2"]).await.ok()).unwrap();
    let cursor = page1["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();
    let page2: Value = serde_json::from_str(
        &faas(
            gw,
            &["--json", "tasks", "--limit", "2", "--cursor", &cursor],
        )
        .await
        .ok(),
    )
    .unwrap();
    let mut all: Vec<String> = [&page1, &page2]
        .iter()
        .flat_map(|p| p["tasks"].as_array().unwrap().clone())
        .map(|t| t["task_id"].as_str().unwrap().to_owned())
        .collect();
    all.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(all, expected);
    let plain = faas(gw, &["tasks", "--since", "1h"]).await.ok();
    assert!(
        plain.contains(&ids[0]) && plain.contains("QUEUED"),
        "{plain}"
    );

    let out = faas(gw, &["cancel", &ids[0]]).await.ok();
    assert!(out.contains("cancelled") && out.contains("QUEUED"), "{out}");
    faas(gw, &["cancel", &ids[0]]).await.fails(1, "409");
    let unknown = uuid::Uuid::new_v4().to_string();
    faas(gw, &["cancel", &unknown]).await.fails(1, "404");
    faas(gw, &["retry", &ids[1]]).await.fails(1, "409");
    let retried = faas(gw, &["retry", &ids[0]]).await.ok();
    assert!(retried.parse::<uuid::Uuid>().is_ok(), "{retried}");
    let purged: Value =
        serde_json::from_str(&faas(gw, &["--json", "purge", "--yes"]).await.ok()).unwrap();
    assert_eq!(purged["purged"], 4, "three left plus the retry: {purged}");

    let detail = faas(gw, &["function", &fs]).await.ok();
    assert!(
        detail.contains("invocations") && detail.contains("cancelled"),
        "{detail}"
    );
    let out = faas(gw, &["rm", &fs]).await.ok();
    assert!(out.contains("deleted"), "{out}");
    faas(gw, &["function", &fs]).await.fails(1, "404");
    faas(gw, &["rm", &fs]).await.fails(1, "404");
}
