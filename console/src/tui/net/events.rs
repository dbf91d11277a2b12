//! The subscription to `{prefix}:events`: every task and worker event, forwarded to the state.
//!
//! Pub/sub uses a connection of its own (commands on the shared one would time out behind it),
//! and after a Redis restart the message stream simply ends: then it is made again.
//!
//! Under load this is the console's hot path (three events per task, every task of the
//! platform): over plain TCP it is read by a RESP reader of our own (`resp`) rather than
//! redis-rs, the events already arrived are forwarded together as one `Update::Events`, and
//! task events are read flat (`parse`), not through serde's buffering of tagged enums.

use std::time::Duration;

use faas_protocol::event::Event;
use std::borrow::Cow;

use faas_protocol::event::EventOutcome;
use faas_protocol::model::TaskError;
use faas_protocol::{FunctionId, TaskId, TaskStatus};
use futures::{FutureExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{resp, Backoff};
use crate::tui::msg::{Link, Update};
use crate::tui::now_ms;

/// Longest wait for a connection to accept the subscription.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Most events forwarded in one update.
const FORWARD_BATCH: usize = 1024;

/// Subscribes to `channel` and forwards events until the UI goes away.
pub async fn subscribe(client: redis::Client, channel: String, tx: mpsc::Sender<Update>) {
    let mut backoff = Backoff::new();
    loop {
        // A plain-TCP Redis is read by the reader of our own (`resp`), the others by redis-rs.
        let own = tokio::time::timeout(
            CONNECT_TIMEOUT,
            resp::Subscription::connect(&client, &channel),
        )
        .await;
        let own = match own {
            Ok(None) => None,
            Ok(Some(Ok(sub))) => Some(Ok(sub)),
            Ok(Some(Err(e))) => Some(Err(e.to_string())),
            Err(_) => Some(Err(format!("no answer within {CONNECT_TIMEOUT:?}"))),
        };
        if let Some(own) = own {
            let error = match own {
                Ok(mut sub) => {
                    backoff.reset();
                    let up = Link::Up { since_ms: now_ms() };
                    if tx.send(Update::RedisEvents(up)).await.is_err() {
                        return;
                    }
                    loop {
                        let mut batch = Vec::with_capacity(256);
                        if let Err(e) = sub.messages(|p| batch.extend(parse(p))).await {
                            break e.to_string();
                        }
                        if !batch.is_empty() && tx.send(Update::Events(batch)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => e,
            };
            let (link, delay) = backoff.fail(error);
            if tx.send(Update::RedisEvents(link)).await.is_err() {
                return;
            }
            tokio::time::sleep(delay).await;
            continue;
        }
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let error = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(mut pubsub)) => {
                backoff.reset();
                let up = Link::Up { since_ms: now_ms() };
                if tx.send(Update::RedisEvents(up)).await.is_err() {
                    return;
                }
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    // Whatever else has already arrived goes in the same update.
                    let mut batch = Vec::new();
                    batch.extend(parse(msg.get_payload_bytes()));
                    let mut ended = false;
                    while batch.len() < FORWARD_BATCH {
                        match messages.next().now_or_never() {
                            Some(Some(m)) => batch.extend(parse(m.get_payload_bytes())),
                            Some(None) => {
                                ended = true;
                                break;
                            }
                            None => break,
                        }
                    }
                    if !batch.is_empty() && tx.send(Update::Events(batch)).await.is_err() {
                        return;
                    }
                    if ended {
                        break;
                    }
                }
                "subscription lost".to_owned()
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {CONNECT_TIMEOUT:?}"),
        };
        let (link, delay) = backoff.fail(error);
        if tx.send(Update::RedisEvents(link)).await.is_err() {
            return;
        }
        tokio::time::sleep(delay).await;
    }
}

/// A task event's fields, read flat. `Event` is an internally tagged enum, which serde reads by
/// first copying every field into a buffer of its own; task events are nearly all of the
/// traffic (three per task), so they are read directly, and the rest through `Event`.
#[derive(Deserialize)]
struct TaskFields<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    task_id: Option<TaskId>,
    function_id: Option<FunctionId>,
    status: Option<TaskStatus>,
    worker: Option<String>,
    at: Option<u64>,
    outcome: Option<OutcomeFields>,
}

/// Of a terminal event's outcome, the error: the console reads results from the gateway.
#[derive(Deserialize)]
struct OutcomeFields {
    error: Option<TaskError>,
}

/// The event in `payload`; `None` for one this console cannot read (a newer platform's).
fn parse(payload: &[u8]) -> Option<Event> {
    if let Ok(TaskFields {
        kind,
        task_id: Some(task_id),
        function_id,
        status: Some(status),
        worker,
        at: Some(at),
        outcome,
    }) = serde_json::from_slice::<TaskFields>(payload)
    {
        if kind == "task" {
            return Some(Event::Task {
                task_id,
                function_id,
                status,
                worker,
                at,
                outcome: outcome.map(|o| EventOutcome {
                    result: serde_json::Value::Null,
                    error: o.error,
                }),
            });
        }
    }
    serde_json::from_slice(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::parse;
    use faas_protocol::event::{Event, WorkerState};

    #[test]
    fn task_events_read_flat_are_the_events() {
        for raw in [
            r#"{"type":"task","task_id":"6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10","function_id":"0b5c1a52-3f43-4a7e-9b59-5d1c0f6a9a11","status":"QUEUED","at":17}"#,
            r#"{"type":"task","task_id":"6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10","status":"RUNNING","worker":"w1","at":17}"#,
            r#"{"type":"task","task_id":"6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10","status":"FAILED","worker":"w1","at":17,"outcome":{"result":null,"error":{"type":"ValueError","message":"bad","traceback":"tb"}}}"#,
        ] {
            let full: Event = serde_json::from_str(raw).unwrap();
            assert_eq!(parse(raw.as_bytes()), Some(full), "{raw}");
        }
        // The result is left out (read from the gateway), the error kept.
        let raw = r#"{"type":"task","task_id":"6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10","status":"COMPLETED","worker":"w\"1","at":17,"outcome":{"result":{"big":[1,2,3]}}}"#;
        let Some(Event::Task {
            outcome, worker, ..
        }) = parse(raw.as_bytes())
        else {
            panic!("a task event");
        };
        assert_eq!(worker.as_deref(), Some("w\"1"));
        let outcome = outcome.expect("an outcome");
        assert!(outcome.result.is_null() && outcome.error.is_none());
    }

    #[test]
    fn other_events_are_read_whole_and_unknown_ones_skipped() {
        let raw = r#"{"type":"worker","worker":"w1","state":"joined","busy":0,"slots":4,"at":5}"#;
        assert!(matches!(
            parse(raw.as_bytes()),
            Some(Event::Worker {
                state: WorkerState::Joined,
                ..
            })
        ));
        assert_eq!(parse(br#"{"type":"comet","at":1}"#), None);
        assert_eq!(parse(b"not json"), None);
        // A task event missing its status is not made up.
        assert_eq!(
            parse(br#"{"type":"task","task_id":"6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10","at":1}"#),
            None
        );
    }
}
