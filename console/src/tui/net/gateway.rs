//! The gateway side: a health watch that keeps the connection indicator and the function list
//! current, and the one-shot HTTP requests behind the forms, the task detail, the pages of the
//! task history, the operator's actions (retry, cancel, purge, delete) and the function
//! statistics (one request per function, a few at a time).

use std::future::Future;
use std::time::Duration;

use faas_protocol::model::FunctionSummary;
use faas_protocol::{FunctionFormat, TaskStatus};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::Backoff;
use crate::client::{ClientError, GatewayClient};
use crate::tui::functions::RECENT_FAILURES;
use crate::tui::msg::{Acted, ActionFailed, Command, Link, Update};
use crate::tui::now_ms;

/// How often the gateway's health is checked.
const HEALTH_EVERY: Duration = Duration::from_secs(2);
/// Every this many health checks the function list is read again.
const FUNCTIONS_EVERY: u32 = 5;
/// Bound of one request: the client itself only bounds connecting.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Function statistics read at once (one request per function).
const STATS_CONCURRENCY: usize = 8;
/// How long one `GET /result?wait=` long-poll holds; repeated until the task is terminal.
const RESULT_WAIT: Duration = Duration::from_secs(20);

/// Watches `GET /healthz` and refreshes the function list, until the UI goes away.
pub async fn watch(client: GatewayClient, tx: mpsc::Sender<Update>) {
    let mut backoff = Backoff::new();
    let mut up = false;
    let mut checks = 0u32;
    loop {
        let delay = match bounded(client.healthz()).await {
            Ok(()) => {
                // Fresh after every reconnect, then now and then.
                let refresh = !up || checks.is_multiple_of(FUNCTIONS_EVERY);
                if !up {
                    up = true;
                    backoff.reset();
                    let link = Link::Up { since_ms: now_ms() };
                    if tx.send(Update::Gateway(link)).await.is_err() {
                        return;
                    }
                }
                checks = checks.wrapping_add(1);
                if refresh {
                    if let Ok(list) = bounded(client.functions()).await {
                        if tx.send(Update::Functions(list)).await.is_err() {
                            return;
                        }
                    }
                }
                HEALTH_EVERY
            }
            Err(e) => {
                up = false;
                let (link, delay) = backoff.fail(e);
                if tx.send(Update::Gateway(link)).await.is_err() {
                    return;
                }
                delay
            }
        };
        tokio::time::sleep(delay).await;
    }
}

/// Runs one command and reports its outcome.
pub async fn command(client: GatewayClient, cmd: Command, tx: mpsc::Sender<Update>) {
    let update = match cmd {
        Command::Register {
            name,
            entrypoint,
            source,
        } => {
            let r = bounded(client.register_source(&name, &source, &entrypoint)).await;
            Update::Registered(
                r.map(|function_id| FunctionSummary {
                    function_id,
                    name,
                    format: FunctionFormat::Source,
                    created_at: now_ms(),
                })
                .map_err(|e| e.to_string()),
            )
        }
        Command::Invoke {
            function_id,
            args,
            kwargs,
        } => match bounded(client.invoke(function_id, args, kwargs)).await {
            Ok(task_id) => {
                if tx.send(Update::Invoked(Ok(task_id))).await.is_err() {
                    return;
                }
                follow_result(&client, task_id, &tx).await;
                return;
            }
            Err(e) => Update::Invoked(Err(e.to_string())),
        },
        Command::FetchTask(id) => Update::TaskDetail(
            id,
            bounded(client.task(id)).await.map_err(|e| e.to_string()),
        ),
        Command::RefreshFunctions => match bounded(client.functions()).await {
            Ok(list) => Update::Functions(list),
            // The health watch reports an unreachable gateway; nothing to add here.
            Err(_) => return,
        },
        Command::ListTasks(q) => {
            let mut query = vec![("limit", q.limit.to_string())];
            if let Some(s) = q.status {
                query.push(("status", s.to_string()));
            }
            if let Some(f) = q.function_id {
                query.push(("function_id", f.to_string()));
            }
            if let Some(w) = q.worker {
                query.push(("worker", w));
            }
            if let Some(c) = q.cursor {
                query.push(("cursor", c));
            }
            Update::TaskPage {
                generation: q.generation,
                page: bounded(client.list_tasks(&query))
                    .await
                    .map(|p| (p.tasks, p.next_cursor))
                    .map_err(|e| e.to_string()),
            }
        }
        Command::Retry(id) => Update::Acted(
            bounded(client.retry_task(id))
                .await
                .map(|r| Acted::Retried {
                    of: id,
                    new: r.task_id,
                })
                .map_err(|e| e.failed("retry")),
        ),
        Command::Cancel(id) => Update::Acted(
            bounded(client.cancel_task(id))
                .await
                .map(|r| Acted::Cancelled {
                    task: id,
                    was: r.was,
                })
                .map_err(|e| e.failed("cancel")),
        ),
        Command::Purge => Update::Acted(
            bounded(client.purge_queue())
                .await
                .map(|r| Acted::Purged(r.purged))
                .map_err(|e| e.failed("purge")),
        ),
        Command::DeleteFunction(id) => Update::Acted(
            bounded(client.delete_function(id))
                .await
                .map(|r| Acted::Deleted {
                    function: id,
                    cancelled: r.cancelled,
                })
                .map_err(|e| e.failed("delete")),
        ),
        Command::FunctionStats(ids) => {
            let reads = futures::stream::iter(ids)
                .map(|id| {
                    let client = client.clone();
                    async move { bounded(client.function(id)).await.ok() }
                })
                .buffer_unordered(STATS_CONCURRENCY)
                .filter_map(|d| async move { d })
                .collect()
                .await;
            Update::FunctionStats(reads)
        }
        Command::FunctionFailures(id) => {
            let query = [
                ("function_id", id.to_string()),
                ("status", TaskStatus::Failed.to_string()),
                ("limit", RECENT_FAILURES.to_string()),
            ];
            Update::FunctionFailures(
                id,
                bounded(client.list_tasks(&query))
                    .await
                    .map(|p| p.tasks)
                    .map_err(|e| e.to_string()),
            )
        }
        Command::Enrich(_) => return,
        Command::DrainWorker(worker) => {
            let r = bounded(client.drain_worker(&worker)).await;
            Update::Drained(worker, r.map(drop).map_err(|e| e.to_string()))
        }
    };
    let _ = tx.send(update).await;
}

/// Long-polls the result until the task is terminal, riding out gateway restarts, and gives up
/// only when the UI has gone away.
async fn follow_result(
    client: &GatewayClient,
    task: faas_protocol::TaskId,
    tx: &mpsc::Sender<Update>,
) {
    let mut backoff = Backoff::new();
    while !tx.is_closed() {
        let wait = client.result(task, Some(RESULT_WAIT));
        match tokio::time::timeout(RESULT_WAIT + REQUEST_TIMEOUT, wait).await {
            Ok(Ok(reply)) if reply.status.is_terminal() => {
                let _ = tx.send(Update::InvokeResult(reply)).await;
                return;
            }
            Ok(Ok(_)) => backoff.reset(),
            // A 404 will not heal: the task expired or never was.
            Ok(Err(e)) if e.status().is_some_and(|s| s.as_u16() == 404) => return,
            Ok(Err(_)) | Err(_) => {
                let (_, delay) = backoff.fail("");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// A request with an overall bound.
async fn bounded<T>(fut: impl Future<Output = Result<T, ClientError>>) -> Result<T, BoundedError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(r) => r.map_err(BoundedError::Client),
        Err(_) => Err(BoundedError::Timeout),
    }
}

impl BoundedError {
    fn failed(&self, action: &'static str) -> ActionFailed {
        match self {
            BoundedError::Client(e) => ActionFailed::new(action, e),
            BoundedError::Timeout => ActionFailed {
                action,
                http: None,
                conflict: None,
                message: self.to_string(),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum BoundedError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the gateway did not answer within {REQUEST_TIMEOUT:?}")]
    Timeout,
}
