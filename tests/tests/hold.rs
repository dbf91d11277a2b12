//! A local slot holding the next tasks ahead (see "Holding the next tasks" in the dispatcher's
//! module docs): a held task waiting behind a run that turned out long goes back to the queue
//! with its attempt uncounted, a cancelled held task never runs, and a busy stream of short
//! tasks (which is what holding is for) runs every task once, leaving nothing in the queue.
//! Tasks of the function running are also written ahead into its child's pipe (executor/
//! child.rs, "Writing ahead"): taken back out of it when given back or cancelled (the others
//! left in order, each reply to its own task), run on a fresh child when the run before them
//! kills its child, and never believed taken back when the task's code wrote into the pipe.
//!
//! The dispatcher runs one process, so the order of the tasks of one batch is the order they
//! run in, and the hold thresholds are set so that every run counts as short: which task is
//! held behind which is then known in advance. The first task of a batch runs alone (the
//! dispatch loop takes one entry per free slot); its outcome's recording takes the rest, the
//! second to run and the others to hold.

use std::path::Path;
use std::time::Duration;

use faas_protocol::{Keys, TaskId};
use faas_tests::{wait_until, Mode, Resp, Stack};
use serde_json::{json, Value};

const BOUND: Duration = Duration::from_secs(60);
const FUNCTIONS: &str = "import time\n\
def quick(x):\n    \
    return x\n\
def nap(seconds):\n    \
    time.sleep(seconds)\n    \
    return seconds\n\
def mark(path):\n    \
    open(path, 'w').write('ran')\n    \
    return 'ran'\n";

/// One function for a whole batch, so that the held tasks are written ahead: sleeps, then
/// appends a line to `path` if given.
const STEP: &str = "import time\n\
def step(seconds, path=None):\n    \
    time.sleep(seconds)\n    \
    if path:\n        \
        open(path, 'a').write('ran\\n')\n    \
    return seconds\n";

async fn stack(hold_at_most_ms: &str) -> Stack {
    Stack::builder(Mode::Local)
        .procs(1)
        .env("FAAS_SANDBOX", "none")
        .dispatcher_args(&[
            "--hold-below-ms",
            "600000",
            "--hold-at-most-ms",
            hold_at_most_ms,
        ])
        .start()
        .await
}

/// Cancels held task `task` and waits for the dispatcher to say it took the task's request
/// back out of the child's pipe.
async fn cancel_and_take_back(stack: &mut Stack, task: TaskId) {
    let (status, reply) = stack
        .post_json(&format!("/tasks/{task}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{reply}");
    let taken_back = stack
        .dispatcher()
        .expect("a dispatcher")
        .wait_for_event(BOUND, |e| {
            e.is("cancelling")
                && e.field("task_id") == Some(&task.to_string())
                && e.field("request") == Some("taken_back")
        })
        .await;
    assert!(
        taken_back,
        "the cancelled task's request was not taken back out of the child's pipe"
    );
}

/// Asserts that the task writing to `marker` ran exactly once (`what` names it).
fn assert_ran_once(marker: &Path, what: &str) {
    let ran = std::fs::read_to_string(marker).unwrap_or_default();
    assert_eq!(ran, "ran\n", "{what} ran {} times", ran.lines().count());
}

/// Whether the queue stream has no entry left, read or not.
async fn queue_empty(stack: &mut Stack) -> bool {
    let queue = Keys::default().queue();
    matches!(stack.redis().command(&["XLEN", &queue]).await, Resp::Int(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_held_behind_a_long_run_goes_back_to_the_queue_uncounted() {
    let mut stack = stack("50").await;
    let quick = stack.register_source("quick", FUNCTIONS, "quick").await;
    let nap = stack.register_source("nap", FUNCTIONS, "nap").await;
    // quick 1 runs, 2 is held; 2 runs, 3 held; ... 4 runs with the nap held; the nap runs with
    // the last quick held, which waits past 50 ms and goes back.
    let mut executions: Vec<Value> = (1..=4)
        .map(|i| json!({"function_id": quick, "args": [i]}))
        .collect();
    executions.push(json!({"function_id": nap, "args": [1.5]}));
    executions.push(json!({"function_id": quick, "args": [99]}));
    let ids = stack.execute_batch(executions).await;
    let last = ids[5];
    let dispatcher = stack.dispatcher().expect("a dispatcher");
    let given_back = dispatcher
        .wait_for_event(BOUND, |e| {
            e.is("held_task_given_back") && e.field("task_id") == Some(&last.to_string())
        })
        .await;
    assert!(
        given_back,
        "the task held behind the nap was not given back"
    );
    for (i, id) in ids.iter().enumerate() {
        let result = stack.wait_result_within(*id, BOUND).await;
        assert_eq!(result["status"], "COMPLETED", "task {i}: {result}");
    }
    assert_eq!(stack.wait_result(last).await["result"], 99);
    // Held, given back and run once: one attempt, not two.
    let record = stack.task(last).await;
    assert_eq!(record["attempts"], 1, "{record}");
    assert!(
        wait_until(BOUND, async || queue_empty(&mut stack).await).await,
        "entries were left in the queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_held_task_never_runs() {
    let mut stack = stack("600000").await;
    let quick = stack.register_source("quick", FUNCTIONS, "quick").await;
    let nap = stack.register_source("nap", FUNCTIONS, "nap").await;
    let mark = stack.register_source("mark", FUNCTIONS, "mark").await;
    let marker = stack.dir().path().join("mark-ran");
    // quick 1 runs, quick 2 is held; quick 2 runs with the nap held; the nap runs with `mark`
    // held for the nap's 5 s.
    let ids = stack
        .execute_batch(vec![
            json!({"function_id": quick, "args": [1]}),
            json!({"function_id": quick, "args": [2]}),
            json!({"function_id": nap, "args": [5]}),
            json!({"function_id": mark, "args": [marker.to_string_lossy()]}),
        ])
        .await;
    let (napping, held) = (ids[2], ids[3]);
    let both_running = wait_until(BOUND, async || {
        stack.status(napping).await == "RUNNING" && stack.status(held).await == "RUNNING"
    })
    .await;
    assert!(
        both_running,
        "the nap runs while `mark` is held: {} {}",
        stack.task(napping).await,
        stack.task(held).await
    );
    let (status, reply) = stack
        .post_json(&format!("/tasks/{held}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["was"], "RUNNING", "{reply}");
    let marked = stack
        .dispatcher()
        .expect("a dispatcher")
        .wait_for_event(BOUND, |e| {
            e.is("cancelling")
                && e.field("task_id") == Some(&held.to_string())
                && e.value("held") == Some(&json!(true))
        })
        .await;
    assert!(
        marked,
        "the dispatcher did not mark the held task cancelled"
    );
    assert_eq!(stack.wait_result_within(napping, BOUND).await["result"], 5);
    let record = stack.task(held).await;
    assert_eq!(record["status"], "FAILED", "{record}");
    assert_eq!(record["error"]["type"], "Cancelled", "{record}");
    // The slot went on after the nap, and `mark` was dropped, not run.
    let after = stack.execute_json(quick, json!([7]), json!({})).await;
    assert_eq!(stack.wait_result_within(after, BOUND).await["result"], 7);
    assert!(!marker.exists(), "the cancelled held task ran");
    assert!(
        wait_until(BOUND, async || queue_empty(&mut stack).await).await,
        "entries were left in the queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_short_tasks_runs_each_once_with_the_default_hold() {
    let mut stack = Stack::builder(Mode::Local).procs(2).start().await;
    let quick = stack.register_source("quick", FUNCTIONS, "quick").await;
    let executions: Vec<Value> = (0..300)
        .map(|i| json!({"function_id": quick, "args": [i]}))
        .collect();
    let ids = stack.execute_batch(executions).await;
    for (i, id) in ids.iter().enumerate() {
        let result = stack.wait_result_within(*id, BOUND).await;
        assert_eq!(result["result"], i, "{result}");
        let record = stack.task(*id).await;
        assert_eq!(record["attempts"], 1, "{record}");
    }
    assert!(
        wait_until(BOUND, async || queue_empty(&mut stack).await).await,
        "entries were left in the queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_written_ahead_behind_a_long_run_is_taken_back_and_given_back() {
    let mut stack = stack("50").await;
    let step = stack.register_source("step", STEP, "step").await;
    let marker = stack.dir().path().join("last-ran");
    // step 1 runs alone; step 2 runs with the long one and the last held and written ahead
    // behind it; the long one runs, and the last waits in the child's pipe past 50 ms.
    let ids = stack
        .execute_batch(vec![
            json!({"function_id": step, "args": [0]}),
            json!({"function_id": step, "args": [0]}),
            json!({"function_id": step, "args": [1.5]}),
            json!({"function_id": step, "args": [0, marker.to_string_lossy()]}),
        ])
        .await;
    let last = ids[3];
    let given_back = stack
        .dispatcher()
        .expect("a dispatcher")
        .wait_for_event(BOUND, |e| {
            e.is("held_task_given_back")
                && e.field("task_id") == Some(&last.to_string())
                && e.value("taken_back") == Some(&json!(true))
        })
        .await;
    assert!(
        given_back,
        "the task written ahead behind the long run was not taken back and given back"
    );
    for (i, id) in ids.iter().enumerate() {
        let result = stack.wait_result_within(*id, BOUND).await;
        assert_eq!(result["status"], "COMPLETED", "task {i}: {result}");
    }
    // Taken out of the pipe before the child read it: it ran once, after it was given back.
    let record = stack.task(last).await;
    assert_eq!(record["attempts"], 1, "{record}");
    assert_ran_once(&marker, "the task given back");
    assert!(
        wait_until(BOUND, async || queue_empty(&mut stack).await).await,
        "entries were left in the queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_task_written_ahead_never_runs() {
    let mut stack = stack("600000").await;
    let step = stack.register_source("step", STEP, "step").await;
    let marker = stack.dir().path().join("cancelled-ran");
    let ids = stack
        .execute_batch(vec![
            json!({"function_id": step, "args": [0]}),
            json!({"function_id": step, "args": [0]}),
            json!({"function_id": step, "args": [5]}),
            json!({"function_id": step, "args": [0, marker.to_string_lossy()]}),
        ])
        .await;
    let (napping, held) = (ids[2], ids[3]);
    let both_running = wait_until(BOUND, async || {
        stack.status(napping).await == "RUNNING" && stack.status(held).await == "RUNNING"
    })
    .await;
    assert!(both_running, "the nap runs while the last step is held");
    cancel_and_take_back(&mut stack, held).await;
    assert_eq!(stack.wait_result_within(napping, BOUND).await["result"], 5);
    let record = stack.task(held).await;
    assert_eq!(record["error"]["type"], "Cancelled", "{record}");
    // The same child goes on with the next task, and the cancelled one never ran.
    let after = stack.execute_json(step, json!([0]), json!({})).await;
    assert_eq!(stack.wait_result_within(after, BOUND).await["result"], 0);
    assert!(!marker.exists(), "the cancelled task ran");
    assert!(
        wait_until(BOUND, async || queue_empty(&mut stack).await).await,
        "entries were left in the queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_written_ahead_of_a_run_that_times_out_run_on_a_fresh_child() {
    let mut stack = stack("600000").await;
    let step = stack.register_source("step", STEP, "step").await;
    let markers: Vec<_> = (0..2)
        .map(|i| stack.dir().path().join(format!("after-timeout-{i}")))
        .collect();
    // The two last are written ahead behind the one that times out; its child is killed with
    // them in its pipe, unread.
    let ids = stack
        .execute_batch(vec![
            json!({"function_id": step, "args": [0]}),
            json!({"function_id": step, "args": [0]}),
            json!({"function_id": step, "args": [30], "timeout_ms": 500}),
            json!({"function_id": step, "args": [0, markers[0].to_string_lossy()]}),
            json!({"function_id": step, "args": [0, markers[1].to_string_lossy()]}),
        ])
        .await;
    let timed_out = stack.wait_result_within(ids[2], BOUND).await;
    assert_eq!(timed_out["error"]["type"], "Timeout", "{timed_out}");
    for (id, marker) in ids[3..].iter().zip(&markers) {
        let result = stack.wait_result_within(*id, BOUND).await;
        assert_eq!(result["status"], "COMPLETED", "{result}");
        let record = stack.task(*id).await;
        assert_eq!(record["attempts"], 1, "{record}");
        assert_ran_once(marker, "a task written ahead");
    }
    assert!(
        wait_until(BOUND, async || queue_empty(&mut stack).await).await,
        "entries were left in the queue"
    );
}

/// Writes a request of its own into the pipe its child reads requests from (its function's,
/// or what looks like one), then naps; appends to `path` either way.
const TAMPER: &str = "import fcntl, os, struct, time\n\
def reads_a_pipe(fd):\n    \
    try:\n        \
        link = os.readlink('/proc/self/fd/%d' % fd)\n        \
        return link.startswith('pipe:') and fcntl.fcntl(fd, fcntl.F_GETFL) & 3 == os.O_RDONLY\n    \
    except OSError:\n        \
        return False\n\
def act(mode, path):\n    \
    if mode == 'tamper':\n        \
        fds = [int(f) for f in os.listdir('/proc/self/fd') if int(f) > 2]\n        \
        pipe = [f for f in fds if reads_a_pipe(f)][0]\n        \
        w = os.open('/proc/self/fd/%d' % pipe, os.O_WRONLY)\n        \
        body = b'{\\\"function_id\\\": \\\"x\\\", \\\"format\\\": \\\"source\\\", \\\"args\\\": {}}'\n        \
        os.write(w, struct.pack('>I', len(body)) + body)\n        \
        os.close(w)\n        \
        time.sleep(1.5)\n    \
    open(path, 'a').write('ran\\n')\n    \
    return mode\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_writing_into_its_request_pipe_gets_nothing_taken_back() {
    let mut stack = stack("50").await;
    let act = stack.register_source("act", TAMPER, "act").await;
    let dir = stack.dir().path().to_owned();
    let marker = |name: &str| dir.join(name).to_string_lossy().into_owned();
    // The last is written ahead behind `tamper`, which adds a request of its own behind it and
    // naps past 50 ms: the give-back finds two packets where one was written.
    let ids = stack
        .execute_batch(vec![
            json!({"function_id": act, "args": ["", marker("first")]}),
            json!({"function_id": act, "args": ["", marker("second")]}),
            json!({"function_id": act, "args": ["tamper", marker("tamper")]}),
            json!({"function_id": act, "args": ["", marker("last")]}),
        ])
        .await;
    let noticed = stack
        .dispatcher()
        .expect("a dispatcher")
        .wait_for_event(BOUND, |e| e.is("child_pipe_tampered"))
        .await;
    assert!(noticed, "the take-back did not notice the foreign request");
    for id in &ids[2..] {
        let result = stack.wait_result_within(*id, BOUND).await;
        assert_eq!(result["status"], "COMPLETED", "{result}");
    }
    // Nothing was believed taken back: neither the napping task's request (written back, it
    // would run twice) nor the last one's (given back, it would run here and elsewhere).
    for name in ["tamper", "last"] {
        assert_ran_once(&dir.join(name), name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_taken_from_between_others_leaves_them_in_order() {
    let mut stack = stack("600000").await;
    let step = stack.register_source("step", STEP, "step").await;
    let dir = stack.dir().path().to_owned();
    let marker = |i: usize| dir.join(format!("behind-{i}"));
    let paths: Vec<String> = (0..3)
        .map(|i| marker(i).to_string_lossy().into_owned())
        .collect();
    // Three written ahead behind the nap; the middle one is cancelled, so the first and the
    // last are written back around it, and each reply must still reach its own task.
    let ids = stack
        .execute_batch(vec![
            json!({"function_id": step, "args": [0]}),
            json!({"function_id": step, "args": [0]}),
            json!({"function_id": step, "args": [3]}),
            json!({"function_id": step, "args": [0.01, paths[0]]}),
            json!({"function_id": step, "args": [0.02, paths[1]]}),
            json!({"function_id": step, "args": [0.03, paths[2]]}),
        ])
        .await;
    let (napping, middle) = (ids[2], ids[4]);
    let held = wait_until(BOUND, async || {
        stack.status(napping).await == "RUNNING" && stack.status(ids[5]).await == "RUNNING"
    })
    .await;
    assert!(held, "the nap runs with the three steps held");
    cancel_and_take_back(&mut stack, middle).await;
    for (i, seconds) in [(3, 0.01), (5, 0.03)] {
        let result = stack.wait_result_within(ids[i], BOUND).await;
        assert_eq!(
            result["result"], seconds,
            "task {i} got another's reply: {result}"
        );
        assert_ran_once(&marker(i - 3), &format!("task {i}"));
    }
    assert!(!marker(1).exists(), "the cancelled task ran");
}
