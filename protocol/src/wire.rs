//! Dispatcher ⇄ worker messages over ZeroMQ: one JSON object per message, versioned.
//!
//! Every frame is `{"v": PROTOCOL_VERSION, "type": ..., ...}`. A peer reads `v` first and
//! refuses a frame of another version with a clear reason, rather than misreading it.
//!
//! Push (DEALER → ROUTER): `hello`, then the dispatcher sends `task`s while the worker has free
//! slots; the worker sends `result`s and `heartbeat`s; the dispatcher answers each heartbeat
//! with `ack`, so both sides know the other is alive.
//! Pull (REQ → ROUTER): two REQ sockets per worker. The control socket says `hello`,
//! `heartbeat`, `result` and `bye` (each answered at once); the work socket sends `poll`,
//! which the dispatcher holds until it has a `task` or the long-poll ends (`no_work`). Results
//! travel apart from polls so a held poll never delays a result.
//!
//! `cancel` (dispatcher → worker) asks a worker to kill the task it runs (the user cancelled
//! it): the worker kills that task's process group and reports it through the normal `result`
//! (FAILED, error type `Cancelled`). A push worker gets it at once on its DEALER; a pull
//! worker's sockets are REQ, which take only answers, so the dispatcher gives it as the answer
//! to the worker's next control request (a heartbeat, a result) in place of `ack`, and the
//! worker beats again at once to collect any further one. A worker of before `cancel` cannot
//! read it (logs it, or rebuilds its REQ socket) and runs the task to its end, as before.
//!
//! `drain` (dispatcher → worker) asks a worker to leave the way SIGTERM makes it leave: say
//! `leaving`, finish the tasks it runs (within its drain grace), say `bye` and exit. An operator
//! asked for it (`POST /workers/{id}/drain`); the dispatcher gives the worker no new task from
//! then on. A push worker gets it at once; a pull worker gets it as the answer to its next
//! poll or control request (in place of `no_work` or `ack`). A worker of before `drain` cannot
//! read it and keeps running, without new tasks from that dispatcher.
//!
//! Every `task` carries a lease (the task's attempt number) that its `result` echoes; the
//! dispatcher records a result only while the task still runs under that lease. With a worker
//! key these frames travel sealed by `faas_daemons::channel` (Noise), never in the clear.

use serde::{Deserialize, Serialize};

use crate::ids::{FunctionId, TaskId};
use crate::model::{FunctionFormat, Outcome, WorkerMode};

/// Bumped on any change a peer of the old version would misread (2: leases).
pub const PROTOCOL_VERSION: u32 = 2;

/// Worker → dispatcher.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToDispatcher {
    /// Joins (or re-joins after a reconnect) with the worker's capacity.
    Hello {
        worker: String,
        mode: WorkerMode,
        host: String,
        pid: u32,
        slots: u32,
        /// Tasks still running from before a reconnect (they report when done).
        busy: u32,
    },
    /// Pull: asks for one task.
    Poll {
        worker: String,
    },
    Result {
        worker: String,
        task_id: TaskId,
        /// The lease of the `task` this answers.
        lease: u32,
        format: FunctionFormat,
        outcome: Outcome,
    },
    Heartbeat {
        worker: String,
        busy: u32,
    },
    /// Stop sending tasks: the worker is shutting down and finishes what it runs.
    Leaving {
        worker: String,
    },
    /// Gone. Tasks in `unfinished` did not complete and go back to the queue.
    Bye {
        worker: String,
        unfinished: Vec<TaskId>,
    },
}

/// Dispatcher → worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    Welcome {
        dispatcher: String,
        heartbeat_ms: u64,
    },
    Task(TaskMsg),
    /// Pull: the long-poll ended with no work.
    NoWork,
    Ack,
    /// Kill the task `task_id` if this worker runs it; its result reports `Cancelled`. In pull
    /// mode it stands in for the `ack` of a control request.
    Cancel {
        task_id: TaskId,
    },
    /// Leave as on SIGTERM: no new tasks, finish the running ones, `bye`, exit. In pull mode it
    /// stands in for the answer to a poll or a control request.
    Drain,
    /// The message was not accepted; `rejoin` says the worker should say hello again (the
    /// dispatcher does not know it, e.g. after a dispatcher restart).
    Refused {
        reason: String,
        rejoin: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskMsg {
    pub task_id: TaskId,
    /// This assignment: the task's attempt number, echoed by the result.
    pub lease: u32,
    pub function_id: FunctionId,
    pub format: FunctionFormat,
    /// The function itself, sent only the first time this worker sees the function id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    pub args: serde_json::Value,
    pub timeout_ms: u64,
}

/// A message with its protocol version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frame<T> {
    pub v: u32,
    #[serde(flatten)]
    pub msg: T,
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A peer speaking another protocol version.
    Version {
        theirs: u32,
    },
    Malformed(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Version { theirs } => write!(
                f,
                "peer speaks protocol version {theirs}, this side speaks {PROTOCOL_VERSION}"
            ),
            Self::Malformed(e) => write!(f, "malformed message: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl ToDispatcher {
    /// The worker a message names (who it claims to come from).
    pub fn worker(&self) -> &str {
        match self {
            Self::Hello { worker, .. }
            | Self::Poll { worker }
            | Self::Result { worker, .. }
            | Self::Heartbeat { worker, .. }
            | Self::Leaving { worker }
            | Self::Bye { worker, .. } => worker,
        }
    }
}

/// Encodes a message of this protocol version.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a, T> {
        v: u32,
        #[serde(flatten)]
        msg: &'a T,
    }
    serde_json::to_vec(&Out {
        v: PROTOCOL_VERSION,
        msg,
    })
    .expect("wire messages serialise")
}

/// Decodes a message, checking the version before the body.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, FrameError> {
    #[derive(Deserialize)]
    struct Version {
        v: Option<u32>,
    }
    let version: Version =
        serde_json::from_slice(bytes).map_err(|e| FrameError::Malformed(e.to_string()))?;
    match version.v {
        Some(PROTOCOL_VERSION) => {}
        Some(theirs) => return Err(FrameError::Version { theirs }),
        None => return Err(FrameError::Malformed("no protocol version `v`".into())),
    }
    serde_json::from_slice::<Frame<T>>(bytes)
        .map(|f| f.msg)
        .map_err(|e| FrameError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskStatus;
    use serde_json::json;

    const TASK: &str = "6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10";
    const FUNC: &str = "0b3e7a43-6c55-4d6e-8f8a-2a1f5f3c9e21";

    fn json_of<T: Serialize>(m: &T) -> serde_json::Value {
        serde_json::from_slice(&encode(m)).unwrap()
    }

    #[test]
    fn worker_messages_pin_their_json() {
        let hello = ToDispatcher::Hello {
            worker: "w1".into(),
            mode: WorkerMode::Push,
            host: "h".into(),
            pid: 7,
            slots: 4,
            busy: 0,
        };
        assert_eq!(
            json_of(&hello),
            json!({"v": 2, "type": "hello", "worker": "w1", "mode": "push", "host": "h", "pid": 7, "slots": 4, "busy": 0})
        );
        let result = ToDispatcher::Result {
            worker: "w1".into(),
            task_id: TASK.parse().unwrap(),
            lease: 3,
            format: FunctionFormat::Source,
            outcome: Outcome {
                status: TaskStatus::Completed,
                result: json!(5),
                error: None,
                log: String::new(),
            },
        };
        assert_eq!(
            json_of(&result),
            json!({"v": 2, "type": "result", "worker": "w1", "task_id": TASK, "lease": 3, "format": "source",
                   "outcome": {"status": "COMPLETED", "result": 5, "log": ""}})
        );
        assert_eq!(
            json_of(&ToDispatcher::Poll {
                worker: "w1".into()
            }),
            json!({"v": 2, "type": "poll", "worker": "w1"})
        );
        assert_eq!(
            json_of(&ToDispatcher::Bye {
                worker: "w1".into(),
                unfinished: vec![]
            }),
            json!({"v": 2, "type": "bye", "worker": "w1", "unfinished": []})
        );
    }

    #[test]
    fn dispatcher_messages_pin_their_json() {
        let task = ToWorker::Task(TaskMsg {
            task_id: TASK.parse().unwrap(),
            lease: 1,
            function_id: FUNC.parse().unwrap(),
            format: FunctionFormat::Dill,
            body: None,
            entrypoint: None,
            args: json!("gARLKi4="),
            timeout_ms: 1000,
        });
        assert_eq!(
            json_of(&task),
            json!({"v": 2, "type": "task", "task_id": TASK, "lease": 1, "function_id": FUNC, "format": "dill",
                   "args": "gARLKi4=", "timeout_ms": 1000})
        );
        assert_eq!(
            json_of(&ToWorker::Cancel {
                task_id: TASK.parse().unwrap()
            }),
            json!({"v": 2, "type": "cancel", "task_id": TASK})
        );
        assert_eq!(json_of(&ToWorker::Drain), json!({"v": 2, "type": "drain"}));
        assert_eq!(
            json_of(&ToWorker::NoWork),
            json!({"v": 2, "type": "no_work"})
        );
        assert_eq!(
            json_of(&ToWorker::Refused {
                reason: "x".into(),
                rejoin: true
            }),
            json!({"v": 2, "type": "refused", "reason": "x", "rejoin": true})
        );
    }

    #[test]
    fn messages_round_trip_and_other_versions_are_refused() {
        let m = ToWorker::Welcome {
            dispatcher: "d".into(),
            heartbeat_ms: 1000,
        };
        assert_eq!(decode::<ToWorker>(&encode(&m)).unwrap(), m);
        let v3 = br#"{"v": 3, "type": "ack"}"#;
        assert_eq!(
            decode::<ToWorker>(v3).unwrap_err(),
            FrameError::Version { theirs: 3 }
        );
        assert!(matches!(
            decode::<ToWorker>(br#"{"type": "ack"}"#),
            Err(FrameError::Malformed(_))
        ));
    }
}
