//! `GET /events` seen by a real HTTP client (reqwest, streaming): the task events of a run, the
//! filters, resuming with `Last-Event-ID` (and the `reset` when that cannot be done), a client
//! that stops reading cut off while the gateway serves everyone else, and bad filters as 400 JSON.

use std::time::Duration;

use faas_protocol::keys::DEFAULT_PREFIX;
use faas_tests::{assert_json_error, within, Mode, Stack, StatusCode};
use serde_json::{json, Value};

/// One Server-Sent Events message.
#[derive(Clone, Debug, PartialEq)]
struct Msg {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

impl Msg {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

/// Reads an SSE response message by message.
struct Sse {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Sse {
    async fn open(stack: &Stack, query: &str, last_id: Option<&str>) -> Sse {
        let mut req = stack
            .client()
            .get(format!("{}/events{query}", stack.base_url()));
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.expect("GET /events");
        assert_eq!(resp.status(), StatusCode::OK);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Sse {
            resp,
            buf: Vec::new(),
        }
    }

    /// The next message (comments skipped), or `None` when the stream ended.
    async fn next(&mut self) -> Option<Msg> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8(block).expect("UTF-8 events");
                let mut msg = Msg {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                let mut any = false;
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        msg.id = Some(v.trim_start().to_owned());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        msg.event = Some(v.trim_start().to_owned());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        msg.data.push_str(v.trim_start());
                        any = true;
                    }
                }
                if any {
                    return Some(msg);
                }
                continue;
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => self.buf.extend_from_slice(&bytes),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Messages until `done` says so (bounded by a timeout).
    async fn until(&mut self, what: &str, mut done: impl FnMut(&Msg) -> bool) -> Vec<Msg> {
        within(Duration::from_secs(60), what, async {
            let mut seen = Vec::new();
            while let Some(m) = self.next().await {
                let stop = done(&m);
                seen.push(m);
                if stop {
                    return seen;
                }
            }
            panic!("the stream ended before {what}: {seen:?}")
        })
        .await
    }
}

fn is_task_status(m: &Msg, task: &str, status: &str) -> bool {
    m.event.is_none() && {
        let v = m.json();
        v["type"] == "task" && v["task_id"] == task && v["status"] == status
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_streamed_filtered_and_resumed() {
    let stack = Stack::start(Mode::Local).await;
    let f = stack
        .register_source("f", "def f(x):\n    return x * 2\n", "f")
        .await;
    let g = stack
        .register_source("g", "def g():\n    return 'g'\n", "g")
        .await;
    let mut all = Sse::open(&stack, "", None).await;
    let mut only_f = Sse::open(&stack, &format!("?function_id={f}&types=task"), None).await;

    // g first, then f: the filtered stream must skip g's events and show f's.
    let tg = stack
        .execute_json(g, json!([]), json!({}))
        .await
        .to_string();
    stack.wait_result(tg.parse().unwrap()).await;
    let tf = stack
        .execute_json(f, json!([21]), json!({}))
        .await
        .to_string();
    assert_eq!(stack.wait_result(tf.parse().unwrap()).await["result"], 42);

    let seen = all
        .until("f's COMPLETED on the unfiltered stream", |m| {
            is_task_status(m, &tf, "COMPLETED")
        })
        .await;
    let of = |task: &str| -> Vec<Value> {
        seen.iter()
            .map(Msg::json)
            .filter(|v| v["task_id"] == task)
            .collect()
    };
    for (task, function) in [(&tg, g.to_string()), (&tf, f.to_string())] {
        let events = of(task);
        let statuses: Vec<&str> = events
            .iter()
            .map(|v| v["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["QUEUED", "RUNNING", "COMPLETED"], "{events:?}");
        // Every task event names its function, filled in by the gateway where needed.
        assert!(
            events.iter().all(|v| v["function_id"] == function.as_str()),
            "{events:?}"
        );
    }
    assert_eq!(
        of(&tf)[2]["outcome"]["result"],
        42,
        "the outcome rides along"
    );
    // Ids increase strictly.
    let ids: Vec<u64> = seen
        .iter()
        .map(|m| m.id.as_deref().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let filtered = only_f
        .until("f's COMPLETED on the filtered stream", |m| {
            is_task_status(m, &tf, "COMPLETED")
        })
        .await;
    assert!(
        filtered.iter().all(|m| m.json()["task_id"] == tf.as_str()),
        "only f's task: {filtered:?}"
    );
    assert_eq!(filtered.len(), 3, "{filtered:?}");

    // Reconnecting after f's QUEUED event replays exactly what followed it.
    let queued = seen
        .iter()
        .position(|m| is_task_status(m, &tf, "QUEUED"))
        .unwrap();
    drop(all);
    let mut resumed = Sse::open(&stack, "", seen[queued].id.as_deref()).await;
    let replay = resumed
        .until("the replayed COMPLETED", |m| {
            is_task_status(m, &tf, "COMPLETED")
        })
        .await;
    assert_eq!(replay, seen[queued + 1..].to_vec(), "no gap, no repeat");

    // The task filter, with the resume, gives one task's events only.
    let mut one = Sse::open(&stack, &format!("?task_id={tg}"), seen[0].id.as_deref()).await;
    let got = one
        .until("g's COMPLETED", |m| is_task_status(m, &tg, "COMPLETED"))
        .await;
    assert!(got.iter().all(|m| m.json()["task_id"] == tg.as_str()));

    // An id this gateway cannot resume from: a reset first, then live events.
    for stale in ["1", "99999999999999999999", "not-a-number"] {
        let mut s = Sse::open(&stack, "", Some(stale)).await;
        let first = within(Duration::from_secs(10), "the reset", s.next())
            .await
            .expect("a message");
        assert_eq!(first.event.as_deref(), Some("reset"), "{first:?}");
        assert!(first.json()["reason"]
            .as_str()
            .unwrap()
            .contains("Last-Event-ID"));
        let th = stack
            .execute_json(f, json!([1]), json!({}))
            .await
            .to_string();
        s.until("a live event after the reset", |m| {
            is_task_status(m, &th, "COMPLETED")
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_are_400_json() {
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    for query in [
        "?types=tasks",
        "?task_id=nope",
        "?function_id=1",
        "?status=QUEUED",
        "?task_id=6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10,x",
    ] {
        let resp = stack
            .client()
            .get(format!("{}/events{query}", stack.base_url()))
            .send()
            .await
            .unwrap();
        let reply = (resp.status(), resp.json::<Value>().await.unwrap());
        assert_json_error(&reply, StatusCode::BAD_REQUEST, query);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_cut_off_and_the_gateway_stays_fine() {
    let mut stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .gateway_args(&["--events-buffer", "16"])
        .start()
        .await;
    let mut stalled = Sse::open(&stack, "", None).await;
    let channel = format!("{DEFAULT_PREFIX}:events");
    // About 24 MiB of events: more than any socket buffers hold, so the stalled client falls
    // far behind the 16-event channel.
    let big = "x".repeat(8 * 1024);
    const SENT: usize = 3_000;
    for i in 0..SENT {
        let ev = json!({
            "type": "task",
            "task_id": uuid::Uuid::new_v4(),
            "function_id": uuid::Uuid::new_v4(),
            "status": "COMPLETED",
            "at": i,
            "outcome": {"result": big},
        })
        .to_string();
        stack.redis().command(&["PUBLISH", &channel, &ev]).await;
    }
    // Reading now, the client gets what was buffered and then the end of the stream.
    let mut received = 0;
    within(Duration::from_secs(60), "the cut-off", async {
        while stalled.next().await.is_some() {
            received += 1;
        }
    })
    .await;
    assert!(received < SENT, "the stalled client was not cut off");
    // The gateway serves on: a new stream gets live events, other routes answer.
    assert_eq!(stack.healthz().await, Some(StatusCode::OK));
    let mut fresh = Sse::open(&stack, "?types=worker", None).await;
    let ev = json!({"type": "worker", "worker": "w-test", "state": "joined", "at": 1}).to_string();
    stack.redis().command(&["PUBLISH", &channel, &ev]).await;
    let got = fresh
        .until("the worker event", |m| m.json()["worker"] == "w-test")
        .await;
    assert_eq!(got.len(), 1, "task events filtered out: {got:?}");
    stack.gateway().assert_running();
}
