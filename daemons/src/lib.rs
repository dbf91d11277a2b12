//! The FaaS daemons as a library: the binaries in `src/bin` only parse flags and call `run`.
//!
//! - [`store`]: Redis access (functions, tasks, the queue stream, events, the epoch).
//! - [`gateway`]: the HTTP API (axum) and its edge (connection cap, timeouts).
//! - [`dispatcher`]: takes tasks from the queue and runs them, locally or on workers.
//! - [`worker`]: `faas-worker`, running tasks for a push or pull dispatcher.
//! - [`executor`]: the pool of sandboxed Python children that run user code.
//! - [`channel`]: the worker key and the Noise sealing of dispatcher ⇄ worker frames.
//! - [`cli`]: what every daemon binary shares (logging, open-file limit, signals, exit codes).
//! - [`metrics`]: the Prometheus recorder and `/metrics` listener.
//! - [`notify`]: systemd readiness (`sd-notify`).
//! - [`backoff`]: retry delays with jitter.
//!
//! # Log events
//!
//! Every log line at `info` and above carries a stable `event` name, and its fields have one
//! name across daemons: `task_id`, `function_id`, `worker` (a worker's id), `dispatcher` (a
//! dispatcher's name, as in the worker registry), `endpoint` (a dispatcher's address),
//! `attempt` (the attempt number, which is the task's lease), `reason` (why, in words),
//! `status`, `error`. With `--log-format json` (`FAAS_LOG_FORMAT=json`) a line reads
//! `{"level":"WARN","fields":{"event":"worker_lost","worker":"w-1","running":2,"message":..},
//! "target":..,"spans":[..]}`: alert on `fields.event`, never on the message, whose wording
//! is for people and may change. Lines about one task also carry the fields of the task's
//! span (`task_id`, `attempt`, `worker`), and a worker's lines those of its connection
//! (`endpoint`, `worker`). The end-to-end tests match these names, not messages.
//!
//! | event | level | logged by | fields | what happened |
//! |---|---|---|---|---|
//! | `nofile_limit` | info | all | `limit` | the open-file limit, already at its hard limit |
//! | `nofile_raised` | info | all | `limit`, `was` | the soft open-file limit was raised |
//! | `nofile_unreadable`, `nofile_raise_failed` | warn | all | `limit`, `error` | it stays low |
//! | `stopped` | info, error | all | `error` | the daemon stops (cleanly, or with `error`) |
//! | `metrics_listening` | info | all | `addr` | `/metrics` is served |
//! | `metrics_failed` | warn | all | `error` | the `/metrics` listener failed |
//! | `systemd_notify_failed` | warn | all | `state`, `error` | sd-notify failed |
//! | `listening` | info | gateway | `addr` | the API is served |
//! | `edge_limits` | info | gateway | `max_connections`, `header_timeout_ms`, `body_timeout_ms` | at start |
//! | `max_connections_lowered` | warn | gateway | `asked`, `max_connections`, `open_file_limit` | the cap was lowered to fit the open-file limit |
//! | `insecure_no_token` | warn | gateway | | `--insecure-no-token`: served beyond loopback without a token (refused without the flag) |
//! | `connection_limit` | warn | gateway | `max_connections` | at the cap: new connections wait in the backlog |
//! | `connection_limit_cleared` | info | gateway | | below the cap again |
//! | `accept_failed` | warn | gateway | `error` | `accept` failed (out of descriptors, usually) |
//! | `drain_grace_exceeded` | warn | all | `unfinished` (dispatcher, worker), `grace` (gateway) | shutdown's grace ran out; tasks go back to the queue |
//! | `subscribed` | info | gateway, dispatcher | `subscriber` (`events`, `waiters`, `cancels`), `channel` | a Redis pub/sub subscription is up |
//! | `subscription_lost` | warn | gateway, dispatcher | `subscriber`, `channel` | it dropped; subscribing again |
//! | `subscribe_failed` | warn | gateway | `subscriber`, `error` | cannot subscribe (retried) |
//! | `redis_error` | warn | gateway | `error` | a request failed on Redis trouble (answered 503) |
//! | `metrics_redis_failed` | warn | gateway | `error` | `/metrics` cannot read cluster values |
//! | `syntax_check_unavailable` | warn | gateway | `python`, `stdout`, `error` | registrations are not syntax-checked |
//! | `docs_render_failed` | error | gateway | `error` | the API documentation page failed |
//! | `queue_purged` | info | gateway | `purged` | `DELETE /queue` |
//! | `function_deleted` | info | gateway | `function_id`, `cancelled` | a function and its queued tasks were deleted |
//! | `taking_tasks` | info | dispatcher | `dispatcher` | ready: Redis answered, executor up |
//! | `worker_channel_sealed` | info | dispatcher | `path` | the worker channel uses the worker key |
//! | `insecure_worker_channel` | warn | dispatcher, worker | `bind` / `endpoint` | plaintext worker channel beyond loopback |
//! | `waiting_for_workers` | info | dispatcher | `endpoint`, `mode` | the worker socket is bound |
//! | `queue_read_failed` | warn | dispatcher | `error` | reading the queue failed (retried) |
//! | `redis_not_ready` | warn | dispatcher | `error` | a start-up Redis call failed (retried) |
//! | `draining` | info | dispatcher, worker | `running` | SIGTERM: running tasks may finish |
//! | `drain_requested` | info | dispatcher, worker | `worker` (dispatcher), `running` (worker) | an operator drained a worker (`POST /workers/{id}/drain`): the dispatcher serving it tells it to leave, and it leaves as on SIGTERM |
//! | `requeued` | info | dispatcher | `task_id`, `reason`, `status`, `attempt`, `worker` | a task's worker was lost; the task went back to the queue (or failed, per `status`) |
//! | `reclaimed` | info | dispatcher | `task_id`, `reason`, `status` | a dead dispatcher's task went back to the queue |
//! | `requeue_failed` | warn | dispatcher | `task_id`, `error` | could not re-queue; it will be reclaimed |
//! | `record_failed` | warn | dispatcher | `task_id`, `error` | recording an outcome failed (retried, or re-run later) |
//! | `record_given_up` | warn | dispatcher | `task_id` | gave up recording; the task will run again |
//! | `entry_without_task` | warn | dispatcher | `entry` | a queue entry without a task id was dropped |
//! | `cancelling` | info | dispatcher, worker | `task_id`, `held`, `request` | a cancel reached the task's process, or (`held`) marked a task held to run next, which then never runs; `request`: `taken_back` out of the child's pipe, `not_written` there, or `read` by the child already (it runs, its outcome dropped) |
//! | `child_pipe_tampered` | warn | dispatcher | `packets`, `written` | a take-back found in a child's request pipe what the pool had not written there (the task's code wrote into it): the pipe is left as it was, and nothing more is written ahead to that child |
//! | `held_task_given_back` | info | dispatcher | `task_id`, `status`, `taken_back` | a task a slot held ahead waited past `--hold-at-most-ms` (or its slot stopped) and went back to the queue; `taken_back`: its request was taken back out of the child's pipe |
//! | `worker_joined` | info | dispatcher | `worker`, `slots`, `new` | a worker said hello (`new`: not a rejoin) |
//! | `worker_leaving` | info | dispatcher | `worker` | a worker drains: no new tasks for it |
//! | `worker_left` | info | dispatcher | `worker`, `unfinished` | a worker said bye |
//! | `worker_lost` | warn | dispatcher | `worker`, `running` | no heartbeat: its tasks are re-queued |
//! | `worker_refused` | warn | dispatcher | `worker`, `reason` | a worker of the other mode |
//! | `peer_refused` | warn | dispatcher | `reason`, `detail`, `held_back` | a frame without the worker key or for another session (at most one line a second; `held_back` counts the rest) |
//! | `message_refused` | warn | dispatcher | `reason` (`version`, `malformed`), `error` | a message that does not read |
//! | `late_result_recorded`, `late_result_dropped` | info | dispatcher | `task_id`, `worker`, `attempt` | a result after a reconnect: kept if its attempt still runs |
//! | `worker_socket_failed` | warn | dispatcher | `error` | receiving on the worker socket failed |
//! | `starting` | info | worker | `worker`, `mode`, `procs`, `endpoint` | at start |
//! | `joined` | info | worker | `dispatcher`, `heartbeat_ms` | welcomed by a dispatcher (again after each reconnect) |
//! | `refused` | error | worker | `reason` | the dispatcher refused this worker; it exits non-zero |
//! | `worker_key_differs` | error | worker | `error` | the dispatcher holds another worker key (retried, slowly) |
//! | `dispatcher_without_key` | error | worker | `error` | the dispatcher runs without a key, this worker has one |
//! | `handshake_failed` | error | worker | `error` | the channel handshake failed otherwise |
//! | `connection_lost`, `dispatcher_unanswered` | warn | worker | `reason` | reconnecting |
//! | `frame_unreadable`, `message_unreadable` | warn, error | worker | `error` | a frame or message from the dispatcher did not read |
//! | `leaving_unanswered` | warn | worker | | draining without the dispatcher |
//! | `pool_started` | info | dispatcher (local), worker | `python`, `sandbox`, `net`, `size`, `max_children` | the Python pool is up |
//! | `sandbox_disabled` | warn | dispatcher (local), worker | | `--sandbox none`: functions run without a sandbox |
//! | `sandbox_net_host` | warn | dispatcher (local), worker | | `--sandbox-net host`: functions share this machine's network and reach its services |
//! | `sandbox_tmp_unbounded` | warn | dispatcher (local), worker | | this bwrap cannot size a tmpfs: `--tmp-size` does not bind |
//! | `idle_children_stopped` | info | dispatcher (local), worker | `stopped`, `idle_bytes`, `max_idle_memory` | idle children held more than `--max-idle-memory`; the least recently used were stopped |
//! | `child_start_failed` | warn | dispatcher (local), worker | `error` | a Python child did not start |
//! | `task_timed_out` | warn | dispatcher (local), worker | `task_id`, `pid` | its child was killed |
//! | `task_cancelled` | info | dispatcher (local), worker | `task_id`, `pid` | its process group was killed |
//! | `child_died` | warn | dispatcher (local), worker | `task_id`, `pid`, `how` | a child died running a task |
//! | `worker_key_permissions` | warn | dispatcher, worker | `path` | the key file is readable by others |
//! | `redis_unreachable` | warn | gateway, dispatcher (the store) | `url`, `error` | Redis does not answer at start; retrying |
//! | `redis_circuit_open` | warn | gateway, dispatcher (the store) | `failures` | Redis stopped answering: commands fail fast, a probe goes out every few seconds |
//! | `redis_circuit_closed` | info | gateway, dispatcher (the store) | | Redis answers again |
//! | `redis_epoch_changed` | warn | gateway, dispatcher (the store) | `epoch` | Redis lost or replaced its data; caches emptied |
//!
//! At debug level a few more are named because tests wait for them: `task_received` (worker),
//! `hello_unanswered` (pull worker), `handshake_unanswered` and `dispatcher_unreachable` (push
//! worker), `registry_update_failed` (dispatcher).

/// Retry delays with jitter: one policy, shared with the console and the CLI.
pub use faas_protocol::backoff;
pub mod channel;
pub mod cli;
pub mod dispatcher;
pub mod executor;
pub mod gateway;
pub mod metrics;
pub mod notify;
pub mod store;
pub mod worker;

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds, the unit of every timestamp the platform stores.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    /// The `event = "..."` names logged under `src`.
    fn logged_events() -> std::collections::BTreeSet<String> {
        fn walk(dir: &std::path::Path, out: &mut std::collections::BTreeSet<String>) {
            for entry in std::fs::read_dir(dir).expect("read src") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("read source");
                    for rest in text.split("event = \"").skip(1) {
                        let name = rest.split_once('"').map_or("", |(n, _)| n);
                        // A name, not this test's own `event = "..."`.
                        if !name.is_empty()
                            && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                        {
                            out.insert(name.to_owned());
                        }
                    }
                }
            }
        }
        let mut out = Default::default();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut out,
        );
        out
    }

    /// The log-events table above is what operators alert on: every logged name is in it,
    /// and it names nothing that is no longer logged.
    #[test]
    fn the_log_events_table_is_complete() {
        let doc = include_str!("lib.rs");
        let doc: String = doc
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        let documented: std::collections::BTreeSet<String> = doc
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .map(str::to_owned)
            .collect();
        let logged = logged_events();
        let missing: Vec<_> = logged.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "logged but not in the table: {missing:?}"
        );
        // Table rows start with the event names; each must still be logged.
        let rows: Vec<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .filter_map(|l| l.split_once(" |").map(|(names, _)| names))
            .collect();
        for names in rows {
            for name in names.split(", ").map(|n| n.trim_matches('`')) {
                assert!(
                    logged.contains(name),
                    "in the table but never logged: {name}"
                );
            }
        }
    }
}
