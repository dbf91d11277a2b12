//! Live events published on `{prefix}:events`: result waiters and the console listen.
//!
//! Task events are published by the Lua scripts that change a task's status, so the event and
//! the change are one atomic step; their JSON is built there and pinned by the tests here.

use serde::{Deserialize, Serialize};

use crate::ids::{FunctionId, TaskId};
use crate::model::{TaskError, TaskStatus};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A task changed status.
    Task {
        task_id: TaskId,
        /// The function the task runs. Optional so that events written without it (older
        /// scripts, older gateways) still parse; the gateway's `/events` fills it in from the
        /// task when it is missing, so its `function_id` filter sees every task event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        function_id: Option<FunctionId>,
        status: TaskStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker: Option<String>,
        /// Unix time in milliseconds.
        at: u64,
        /// On a terminal event whose result is small: the outcome, exactly as `/result`
        /// returns it, so that result waiters answer without reading the task back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<EventOutcome>,
    },
    /// A worker joined, is draining (an operator's `POST /workers/{id}/drain`, or the worker's
    /// own SIGTERM: it takes no new tasks and finishes what it runs), left (said bye), was lost
    /// (missed heartbeats), or beat its heart (published at most every few seconds, with its
    /// current load).
    Worker {
        worker: String,
        state: WorkerState,
        #[serde(default)]
        busy: u32,
        #[serde(default)]
        slots: u32,
        at: u64,
    },
    /// A daemon that `faas up` supervises died and was started again, or left by itself on
    /// purpose (a drained worker: exit 0, not restarted). Published by `faas up`, which is the
    /// one that knows; the console's Events timeline shows it.
    Daemon {
        /// As `faas up` names it: `redis`, `gateway`, `dispatcher`, `worker-1`, ...
        name: String,
        state: DaemonState,
        /// How it ended: `exit code 3`, `killed by SIGKILL`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit: Option<String>,
        at: u64,
    },
}

/// What became of a supervised daemon ([`Event::Daemon`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DaemonState {
    /// It died unexpectedly and was started again.
    Restarted,
    /// It exited cleanly by itself (a drained worker) and is not restarted.
    Exited,
}

/// The result part of a terminal [`Event::Task`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventOutcome {
    /// dill: base64 pickle; source: the JSON value; null when there is none.
    #[serde(default)]
    pub result: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
}

/// Terminal events carry their outcome only up to this size (result plus error as stored):
/// every subscriber receives every event, so big results are read from the task instead.
pub const EVENT_OUTCOME_MAX: usize = 16 * 1024;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    Joined,
    Heartbeat,
    /// Takes no new tasks, finishes its running ones, then leaves (`Left`).
    Draining,
    Left,
    Lost,
}

impl Event {
    /// The task this event is about, if any.
    pub fn task_id(&self) -> Option<TaskId> {
        match self {
            Event::Task { task_id, .. } => Some(*task_id),
            Event::Worker { .. } | Event::Daemon { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_event_json_is_what_the_lua_scripts_write() {
        let raw = r#"{"type":"task","task_id":"6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10","status":"RUNNING","worker":"w1","at":17}"#;
        let ev: Event = serde_json::from_str(raw).unwrap();
        assert_eq!(serde_json::to_string(&ev).unwrap(), raw);
    }

    #[test]
    fn terminal_event_json_is_what_finish_lua_writes() {
        let raw = concat!(
            r#"{"type":"task","task_id":"6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10","status":"FAILED","#,
            r#""worker":"w1","at":17,"outcome":{"result":null,"error":{"type":"ValueError","#,
            r#""message":"bad","traceback":"tb"}}}"#
        );
        let ev: Event = serde_json::from_str(raw).unwrap();
        let Event::Task { outcome, .. } = &ev else {
            panic!("a task event")
        };
        let outcome = outcome.as_ref().expect("outcome carried");
        assert_eq!(outcome.result, serde_json::Value::Null);
        assert_eq!(outcome.error.as_ref().unwrap().kind, "ValueError");
        assert_eq!(serde_json::to_string(&ev).unwrap(), raw);
    }

    #[test]
    fn task_event_with_its_function_round_trips() {
        let raw = concat!(
            r#"{"type":"task","task_id":"6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10","#,
            r#""function_id":"0b5c1a52-3f43-4a7e-9b59-5d1c0f6a9a11","status":"QUEUED","at":17}"#
        );
        let ev: Event = serde_json::from_str(raw).unwrap();
        let Event::Task { function_id, .. } = &ev else {
            panic!("a task event")
        };
        assert!(function_id.is_some());
        assert_eq!(serde_json::to_string(&ev).unwrap(), raw);
    }

    #[test]
    fn daemon_event_bytes_are_pinned() {
        let ev = Event::Daemon {
            name: "dispatcher".into(),
            state: DaemonState::Restarted,
            exit: Some("killed by SIGKILL".into()),
            at: 9,
        };
        let raw = r#"{"type":"daemon","name":"dispatcher","state":"restarted","exit":"killed by SIGKILL","at":9}"#;
        assert_eq!(serde_json::to_string(&ev).unwrap(), raw);
        assert_eq!(serde_json::from_str::<Event>(raw).unwrap(), ev);
    }

    #[test]
    fn worker_event_bytes_are_pinned() {
        let ev = Event::Worker {
            worker: "w1".into(),
            state: WorkerState::Lost,
            busy: 1,
            slots: 4,
            at: 9,
        };
        assert_eq!(
            serde_json::to_string(&ev).unwrap(),
            r#"{"type":"worker","worker":"w1","state":"lost","busy":1,"slots":4,"at":9}"#
        );
        let draining = Event::Worker {
            worker: "w1".into(),
            state: WorkerState::Draining,
            busy: 1,
            slots: 4,
            at: 9,
        };
        assert_eq!(
            serde_json::to_string(&draining).unwrap(),
            r#"{"type":"worker","worker":"w1","state":"draining","busy":1,"slots":4,"at":9}"#
        );
    }
}
