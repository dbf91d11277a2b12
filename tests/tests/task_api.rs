//! The operator's task API over HTTP against a real stack: `GET /tasks` with filters and
//! cursors over 5,000 tasks, cancel (queued tasks never run, in every mode, a dispatcher
//! started after the cancel included), retry, purge, a function's statistics and its deletion,
//! and bad input on every new route (a 4xx `{"error"}` and nothing changed).

use std::collections::HashSet;
use std::time::Duration;

use faas_tests::{assert_json_error, wait_until, Mode, Resp, Stack, StatusCode};
use reqwest::Method;
use serde_json::{json, Value};

const ECHO: &str = "def echo(x):\n    return x\n";
const NAP: &str = "import time\ndef nap(s):\n    time.sleep(s)\n    return 'rested'\n";
const CHECK: &str =
    "def check(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x\n";

/// Every task `GET /tasks?{query}` lists, following cursors with pages of `limit`.
async fn list_all(stack: &Stack, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let mut path = format!("/tasks?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, reply) = stack.get_json(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {reply}");
        let page = reply["tasks"].as_array().expect("tasks").clone();
        assert!(page.len() <= limit, "{path}: {} > {limit}", page.len());
        out.extend(page);
        match reply["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert!(reply["next_cursor"].is_null(), "{reply}");
                return out;
            }
        }
    }
    panic!("more than 10,000 pages");
}

fn ids(tasks: &[Value]) -> Vec<String> {
    tasks
        .iter()
        .map(|t| t["task_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn queue_len(stack: &mut Stack) -> i64 {
    match stack.redis().command(&["XLEN", "faas:queue"]).await {
        Resp::Int(n) => n,
        other => panic!("XLEN: {other:?}"),
    }
}

async fn submit_batch(stack: &Stack, function_id: &str, n: usize, first: usize) -> Vec<String> {
    let executions: Vec<Value> = (first..first + n)
        .map(|i| json!({"function_id": function_id, "args": [i]}))
        .collect();
    let ids = stack.execute_batch(executions).await;
    ids.iter().map(|t| t.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_5000_tasks_with_filters_and_cursors_then_purge() {
    let mut stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    let f1 = stack
        .register_source("echo", ECHO, "echo")
        .await
        .to_string();
    let f2 = stack
        .register_source("echo2", ECHO, "echo")
        .await
        .to_string();
    let mut submitted = Vec::new();
    for (i, f) in [&f1, &f2, &f1, &f2, &f1].into_iter().enumerate() {
        submitted.extend(submit_batch(&stack, f, 1_000, i * 1_000).await);
    }

    // Everything, newest first, each task once, across pages of 1,000 and of 333.
    for limit in [1_000, 333] {
        let all = list_all(&stack, "", limit).await;
        assert_eq!(all.len(), 5_000);
        let unique: HashSet<String> = ids(&all).into_iter().collect();
        assert_eq!(unique, submitted.iter().cloned().collect::<HashSet<_>>());
        let created: Vec<u64> = all
            .iter()
            .map(|t| t["created_at"].as_u64().unwrap())
            .collect();
        assert!(created.windows(2).all(|w| w[0] >= w[1]), "not newest first");
        let t = &all[0];
        assert_eq!(t["status"], "QUEUED");
        assert!(t.get("args").is_none() && t.get("result").is_none(), "{t}");
        assert_eq!(t["attempts"], 0);
    }
    // The default page is 50.
    let (_, page) = stack.get_json("/tasks").await;
    assert_eq!(page["tasks"].as_array().unwrap().len(), 50);

    // Filters, alone and together.
    let of_f1 = list_all(&stack, &format!("function_id={f1}"), 500).await;
    assert_eq!(of_f1.len(), 3_000);
    assert!(of_f1.iter().all(|t| t["function_id"] == f1.as_str()));
    let queued_f2 = list_all(&stack, &format!("status=QUEUED&function_id={f2}"), 1_000).await;
    assert_eq!(queued_f2.len(), 2_000);
    assert!(list_all(&stack, "status=COMPLETED", 50).await.is_empty());
    assert!(list_all(&stack, "worker=nobody", 50).await.is_empty());
    let far = u64::MAX / 2;
    assert!(list_all(&stack, &format!("since={far}"), 50)
        .await
        .is_empty());
    let (_, newest) = stack.get_json("/tasks?limit=1").await;
    let newest_at = newest["tasks"][0]["created_at"].as_u64().unwrap();
    let recent = list_all(&stack, &format!("since={newest_at}"), 1_000).await;
    assert!(
        !recent.is_empty() && recent.len() <= 1_000,
        "{}",
        recent.len()
    );

    // Bad input: 400 with an error, and nothing changed.
    for bad in [
        "/tasks?limit=1001",
        "/tasks?limit=0",
        "/tasks?limit=ten",
        "/tasks?status=DONE",
        "/tasks?function_id=nope",
        "/tasks?since=-1",
        "/tasks?cursor=garbage",
        "/tasks?cursor=12-not-a-task",
        "/tasks?cursor=q12-x",
        // A cursor of another listing: the queue's for the indexes, and the other way round.
        "/tasks?cursor=q1733000000000-0",
        "/tasks?status=QUEUED&cursor=1733000000000-6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10",
    ] {
        assert_json_error(&stack.get_json(bad).await, StatusCode::BAD_REQUEST, bad);
    }

    // Cancel a few: they leave the QUEUED listing and appear as FAILED `Cancelled`.
    let cancelled: Vec<String> = submitted.iter().step_by(1_000).cloned().collect();
    for id in &cancelled {
        let (status, reply) = stack
            .post_json(&format!("/tasks/{id}/cancel"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        assert_eq!(
            reply,
            json!({"task_id": id, "status": "FAILED", "was": "QUEUED"})
        );
    }
    let failed = list_all(&stack, "status=FAILED", 50).await;
    let mut failed_ids = ids(&failed);
    failed_ids.sort();
    let mut want = cancelled.clone();
    want.sort();
    assert_eq!(failed_ids, want);
    assert!(failed.iter().all(|t| t["error"]["type"] == "Cancelled"));
    assert_eq!(list_all(&stack, "status=QUEUED", 1_000).await.len(), 4_995);

    // Purge refuses without its confirmation, and changes nothing then.
    for body in [
        json!({}),
        json!({"confirm": false}),
        json!({"confirm": "yes"}),
        json!([]),
    ] {
        let reply = stack.post_json("/queue/purge", body.clone()).await;
        assert_json_error(&reply, StatusCode::BAD_REQUEST, &body.to_string());
    }
    let reply = stack.post_raw("/queue/purge", "application/json", "").await;
    assert_json_error(&reply, StatusCode::BAD_REQUEST, "empty purge body");
    assert_eq!(list_all(&stack, "status=QUEUED", 1_000).await.len(), 4_995);

    let (status, reply) = stack
        .post_json("/queue/purge", json!({"confirm": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply, json!({"purged": 4_995}));
    assert!(list_all(&stack, "status=QUEUED", 1_000).await.is_empty());

    // A dispatcher started now takes every entry and runs none of them.
    stack.start_dispatcher();
    let ok = stack.register_source("later", ECHO, "echo").await;
    let later = stack.execute_json(ok, json!([7]), json!({})).await;
    assert_eq!(stack.wait_result(later).await["result"], 7);
    assert!(
        wait_until(Duration::from_secs(60), async || queue_len(&mut stack)
            .await
            == 0)
        .await,
        "the cancelled entries were not dropped from the queue"
    );
    let done = list_all(&stack, "status=COMPLETED", 1_000).await;
    assert_eq!(ids(&done), vec![later.to_string()]);
    let sample = stack.task(submitted[1].parse().unwrap()).await;
    assert_eq!(sample["status"], "FAILED");
    assert_eq!(sample["attempts"], 0, "{sample}");
    assert!(sample["started_at"].is_null(), "{sample}");
}

/// In each mode: a task cancelled before any dispatcher consumed it and one cancelled while the
/// only slot is busy both end FAILED `Cancelled` and never run; cancelling again is a 409;
/// a RUNNING task cannot be retried, an ended one can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_queued_tasks_in_every_mode_and_retry() {
    for mode in [Mode::Local, Mode::Push, Mode::Pull] {
        let mut stack = Stack::builder(mode)
            .procs(1)
            .without_dispatcher()
            .start()
            .await;
        let echo = stack.register_source("echo", ECHO, "echo").await;
        let nap = stack.register_source("nap", NAP, "nap").await;

        // Cancelled before any dispatcher runs.
        let early = stack.execute_json(echo, json!([1]), json!({})).await;
        let (status, reply) = stack
            .post_json(&format!("/tasks/{early}/cancel"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{mode:?}: {reply}");
        assert_eq!(reply["was"], "QUEUED");
        stack.start_dispatcher();

        // Cancelled while the only slot is busy.
        let blocker = stack.execute_json(nap, json!([2]), json!({})).await;
        assert!(
            wait_until(Duration::from_secs(60), async || stack
                .status(blocker)
                .await
                == "RUNNING")
            .await,
            "{mode:?}: the blocker never ran"
        );
        // RUNNING is listed from the queue's pending entries (no index): the blocker is there,
        // with the filters checked on its record.
        let running = list_all(&stack, "status=RUNNING", 50).await;
        assert_eq!(ids(&running), [blocker.to_string()], "{mode:?}");
        let worker = running[0]["worker"].as_str().expect("worker").to_owned();
        let by_both = format!("status=RUNNING&function_id={nap}&worker={worker}");
        assert_eq!(list_all(&stack, &by_both, 50).await.len(), 1, "{mode:?}");
        let other = format!("status=RUNNING&function_id={echo}");
        assert!(list_all(&stack, &other, 50).await.is_empty(), "{mode:?}");
        let queued = stack.execute_json(echo, json!([2]), json!({})).await;
        let (status, reply) = stack
            .post_json(&format!("/tasks/{queued}/cancel"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{mode:?}: {reply}");
        assert_eq!(reply["was"], "QUEUED", "{mode:?}");
        // A running task is not retried.
        let (status, reply) = stack
            .post_json(&format!("/tasks/{blocker}/retry"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{mode:?}: {reply}");
        assert_eq!(reply["status"], "RUNNING");
        assert!(reply["error"].is_string());

        let result = stack.wait_result(queued).await;
        assert_eq!(result["status"], "FAILED");
        assert_eq!(result["error"]["type"], "Cancelled", "{result}");
        assert_eq!(stack.wait_result(blocker).await["result"], "rested");
        let after = stack.execute_json(echo, json!([3]), json!({})).await;
        assert_eq!(stack.wait_result(after).await["result"], 3, "{mode:?}");
        for id in [early, queued] {
            let t = stack.task(id).await;
            assert_eq!(t["status"], "FAILED", "{mode:?}: {t}");
            assert_eq!(t["error"]["type"], "Cancelled");
            assert_eq!(t["error"]["message"], "cancelled by request");
            assert_eq!(t["attempts"], 0, "{mode:?}: it ran: {t}");
            let (status, reply) = stack
                .post_json(&format!("/tasks/{id}/cancel"), json!({}))
                .await;
            assert_eq!(status, StatusCode::CONFLICT, "{reply}");
            assert_eq!(reply["status"], "FAILED");
        }
        assert!(
            wait_until(Duration::from_secs(30), async || queue_len(&mut stack)
                .await
                == 0)
            .await,
            "{mode:?}: cancelled entries left in the queue"
        );

        // Retry of a cancelled task: a new task with the same arguments, naming the old one.
        let (status, reply) = stack
            .post_json(&format!("/tasks/{queued}/retry"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{mode:?}: {reply}");
        assert_eq!(reply["retry_of"], queued.to_string());
        let again = reply["task_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(stack.wait_result(again).await["result"], 2, "{mode:?}");
        assert_eq!(stack.task(again).await["retry_of"], queued.to_string());
        let (_, listed) = stack.get_json("/tasks?limit=1").await;
        assert_eq!(listed["tasks"][0]["retry_of"], queued.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_statistics_and_deletion() {
    let mut stack = Stack::builder(Mode::Local).procs(1).start().await;
    let f = stack.register_source("check", CHECK, "check").await;
    let mut finished = Vec::new();
    for x in [1, 2, 3, -1] {
        let t = stack.execute_json(f, json!([x]), json!({})).await;
        stack.wait_result(t).await;
        finished.push(t);
    }
    let (status, d) = stack.get_json(&format!("/functions/{f}")).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["name"], "check");
    assert_eq!(d["format"], "source");
    assert_eq!(d["entrypoint"], "check");
    let s = &d["stats"];
    assert_eq!(
        (
            &s["invocations"],
            &s["completed"],
            &s["failed"],
            &s["cancelled"]
        ),
        (&json!(4), &json!(3), &json!(1), &json!(0)),
        "{d}"
    );
    assert_eq!(s["run_ms"]["samples"], 4, "{d}");
    assert_eq!(s["queue_wait_ms"]["samples"], 4, "{d}");
    assert!(s["run_ms"]["p50"].as_u64().unwrap() <= s["run_ms"]["p99"].as_u64().unwrap());
    assert_eq!(s["last_failure_type"], "ValueError");
    assert!(s["last_failure_at"].as_u64().unwrap() > 0);
    // Its tasks by worker: every run was on the local pool.
    let worker = stack.task(finished[0]).await["worker"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, by_worker) = stack
        .get_json(&format!("/tasks?worker={worker}&function_id={f}&limit=10"))
        .await;
    assert_eq!(
        by_worker["tasks"].as_array().unwrap().len(),
        4,
        "{by_worker}"
    );

    // Queued tasks of a deleted function end FAILED `FunctionDeleted`; finished ones stay.
    stack.stop_dispatcher();
    let mut queued = Vec::new();
    for x in 0..3 {
        queued.push(stack.execute_json(f, json!([x]), json!({})).await);
    }
    for bad in ["/functions/nope", "/functions/123"] {
        assert_json_error(&stack.get_json(bad).await, StatusCode::BAD_REQUEST, bad);
        let reply = stack.request(Method::DELETE, bad, None).await;
        assert_json_error(&reply, StatusCode::BAD_REQUEST, bad);
    }
    let (status, reply) = stack
        .request(Method::DELETE, &format!("/functions/{f}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply, json!({"function_id": f.to_string(), "cancelled": 3}));
    for t in &queued {
        let r = stack.task(*t).await;
        assert_eq!(r["status"], "FAILED");
        assert_eq!(r["error"]["type"], "FunctionDeleted", "{r}");
    }
    assert_eq!(stack.task(finished[0]).await["result"], 1);
    let reply = stack
        .post_json("/execute_function", json!({"function_id": f, "args": [1]}))
        .await;
    assert_json_error(&reply, StatusCode::NOT_FOUND, "execute a deleted function");
    let path = format!("/functions/{f}");
    assert_json_error(&stack.get_json(&path).await, StatusCode::NOT_FOUND, &path);
    let reply = stack.request(Method::DELETE, &path, None).await;
    assert_json_error(&reply, StatusCode::NOT_FOUND, "delete twice");
    let reply = stack
        .post_json(&format!("/tasks/{}/retry", finished[0]), json!({}))
        .await;
    assert_json_error(
        &reply,
        StatusCode::NOT_FOUND,
        "retry of a deleted function's task",
    );
    assert!(
        !stack
            .get_json("/functions")
            .await
            .1
            .to_string()
            .contains(&f.to_string()),
        "still listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_and_unknown_tasks_on_cancel_and_retry() {
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    let f = stack.register_source("echo", ECHO, "echo").await;
    let t = stack.execute_json(f, json!([1]), json!({})).await;
    for action in ["cancel", "retry"] {
        let bad = format!("/tasks/not-a-task/{action}");
        assert_json_error(
            &stack.post_json(&bad, json!({})).await,
            StatusCode::BAD_REQUEST,
            &bad,
        );
        let unknown = format!("/tasks/{}/{action}", uuid::Uuid::new_v4());
        assert_json_error(
            &stack.post_json(&unknown, json!({})).await,
            StatusCode::NOT_FOUND,
            &unknown,
        );
        let get = stack.get_json(&format!("/tasks/{t}/{action}")).await;
        assert_json_error(&get, StatusCode::METHOD_NOT_ALLOWED, action);
    }
    // A queued task is not retried; nothing was submitted by any of the above.
    let reply = stack
        .post_json(&format!("/tasks/{t}/retry"), json!({}))
        .await;
    assert_eq!(reply.0, StatusCode::CONFLICT, "{}", reply.1);
    assert_eq!(reply.1["status"], "QUEUED");
    let (_, all) = stack.get_json("/tasks").await;
    assert_eq!(all["tasks"].as_array().unwrap().len(), 1, "{all}");
    assert_eq!(stack.status(t).await, "QUEUED");
}

async fn zscore(stack: &mut Stack, key: &str, member: &str) -> Option<Vec<u8>> {
    match stack.redis().command(&["ZSCORE", key, member]).await {
        Resp::Bulk(b) => b,
        other => panic!("ZSCORE: {other:?}"),
    }
}

/// With a result TTL of 1 s, finished tasks leave every index they were in once their records
/// expire (swept in batches as later tasks finish), and a function keeps its last 1,000 run
/// samples, however many ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tasks_leave_the_indexes_and_samples_stay_bounded() {
    let mut stack = Stack::builder(Mode::Local)
        .procs(2)
        .dispatcher_args(&["--result-ttl-secs", "1"])
        .start()
        .await;
    let f = stack.register_source("check", CHECK, "check").await;
    let mut old = Vec::new();
    for x in [1, -1, 2, 3] {
        let t = stack.execute_json(f, json!([x]), json!({})).await;
        stack.wait_result(t).await;
        old.push(t.to_string());
    }
    let worker = stack.task(old[0].parse().unwrap()).await["worker"]
        .as_str()
        .unwrap()
        .to_owned();
    let indexes = [
        "faas:tasks".to_owned(),
        format!("faas:tasks:fn:{f}"),
        format!("faas:tasks:worker:{worker}"),
        "faas:tasks:status:FAILED".to_owned(),
    ];
    assert!(zscore(&mut stack, &indexes[3], &old[1]).await.is_some());
    for id in &old {
        assert!(zscore(&mut stack, &indexes[0], id).await.is_some(), "{id}");
    }
    // Later tasks finish and sweep the expired ones out (one finish in 8 sweeps); each round's
    // tasks expire in turn.
    let mut round = 0;
    let swept = wait_until(Duration::from_secs(60), async || {
        round += 1;
        for id in submit_batch(&stack, &f.to_string(), 8, round * 8).await {
            stack.wait_result(id.parse().unwrap()).await;
        }
        for index in &indexes {
            for id in &old {
                if zscore(&mut stack, index, id).await.is_some() {
                    return false;
                }
            }
        }
        true
    })
    .await;
    if !swept {
        let head = stack
            .redis()
            .command(&["LRANGE", "faas:tasks:expiring", "0", "3"])
            .await;
        let stats = stack.redis().hgetall("faas:stats").await;
        panic!("expired tasks still indexed after {round} rounds; expiry list head {head:?}, stats {stats:?}");
    }

    // 1,150 more runs: the samples list is trimmed back, and stats report the last 1,000.
    let _ = submit_batch(&stack, &f.to_string(), 1_150, 10_000).await;
    let all_ran = wait_until(Duration::from_secs(120), async || {
        let (_, d) = stack.get_json(&format!("/functions/{f}")).await;
        let s = &d["stats"];
        s["completed"].as_u64().unwrap() + s["failed"].as_u64().unwrap()
            == s["invocations"].as_u64().unwrap()
    })
    .await;
    assert!(all_ran, "the tasks did not all finish");
    let (_, d) = stack.get_json(&format!("/functions/{f}")).await;
    assert_eq!(d["stats"]["run_ms"]["samples"], 1_000, "{d}");
    assert_eq!(d["stats"]["queue_wait_ms"]["samples"], 1_000, "{d}");
    match stack
        .redis()
        .command(&["LLEN", &format!("faas:fnsamples:{f}")])
        .await
    {
        Resp::Int(n) => assert!((1_000..=1_100).contains(&n), "{n} samples kept"),
        other => panic!("LLEN: {other:?}"),
    }
}
