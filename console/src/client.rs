//! A typed client of the gateway's HTTP API, used by the CLI and the console.

use std::time::Duration;

use faas_protocol::api::{
    CancelReply, ConflictReply, DeleteFunctionReply, ErrorReply, ExecuteBatch, ExecuteBatchReply,
    ExecuteFunction, ExecuteFunctionReply, FunctionDetail, PurgeQueue, PurgeReply,
    RegisterFunction, RegisterFunctionReply, ResultReply, RetryReply, StatusReply, TaskList,
};
use faas_protocol::model::{FunctionSummary, TaskRecord, WorkerInfo};
use faas_protocol::{FunctionId, TaskId, TaskStatus};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gateway answered with an error body; a 409 also says the task's status.
    #[error("{message} (HTTP {status})")]
    Api {
        status: StatusCode,
        message: String,
        conflict: Option<TaskStatus>,
    },
    #[error("cannot reach the gateway at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("unexpected reply from the gateway: {0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// Talks to one gateway. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct GatewayClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl GatewayClient {
    /// `base` like `http://127.0.0.1:8000`; `token` is sent as `Authorization: Bearer`.
    pub fn new(base: &str, token: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("a plain HTTP client builds");
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            http,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn register_source(
        &self,
        name: &str,
        source: &str,
        entrypoint: &str,
    ) -> Result<FunctionId> {
        let req = RegisterFunction {
            name: name.to_owned(),
            source: Some(source.to_owned()),
            entrypoint: Some(entrypoint.to_owned()),
            payload: None,
        };
        let r: RegisterFunctionReply = self.post("/register_function", &req).await?;
        Ok(r.function_id)
    }

    pub async fn register(&self, req: &RegisterFunction) -> Result<FunctionId> {
        let r: RegisterFunctionReply = self.post("/register_function", req).await?;
        Ok(r.function_id)
    }

    pub async fn execute(&self, req: &ExecuteFunction) -> Result<TaskId> {
        let r: ExecuteFunctionReply = self.post("/execute_function", req).await?;
        Ok(r.task_id)
    }

    /// Submits many executions in one request; the task ids come back in the same order.
    pub async fn execute_batch(&self, executions: Vec<ExecuteFunction>) -> Result<Vec<TaskId>> {
        let r: ExecuteBatchReply = self
            .post("/execute_batch", &ExecuteBatch { executions })
            .await?;
        Ok(r.task_ids)
    }

    /// Executes a source function with JSON arguments.
    pub async fn invoke(
        &self,
        function: FunctionId,
        args: serde_json::Value,
        kwargs: serde_json::Value,
    ) -> Result<TaskId> {
        self.execute(&ExecuteFunction {
            function_id: function.to_string(),
            args: Some(args),
            kwargs: Some(kwargs),
            ..ExecuteFunction::default()
        })
        .await
    }

    pub async fn status(&self, task: TaskId) -> Result<StatusReply> {
        self.get(&format!("/status/{task}")).await
    }

    /// The result; with `wait`, the gateway holds the request until the task is terminal.
    pub async fn result(&self, task: TaskId, wait: Option<Duration>) -> Result<ResultReply> {
        match wait {
            Some(w) => {
                self.get(&format!("/result/{task}?wait={}", w.as_millis()))
                    .await
            }
            None => self.get(&format!("/result/{task}")).await,
        }
    }

    pub async fn task(&self, task: TaskId) -> Result<TaskRecord> {
        self.get(&format!("/tasks/{task}")).await
    }

    /// `POST /workers/{id}/drain`: the worker finishes its tasks and leaves.
    pub async fn drain_worker(&self, worker: &str) -> Result<faas_protocol::api::DrainReply> {
        let path = format!("/workers/{}/drain", path_segment(worker));
        self.post(&path, &serde_json::json!({})).await
    }

    /// One page of `GET /tasks`, newest first.
    pub async fn list_tasks(&self, query: &[(&str, String)]) -> Result<TaskList> {
        let mut url = reqwest::Url::parse(&format!("{}/tasks", self.base))
            .map_err(|e| ClientError::Decode(format!("bad gateway URL: {e}")))?;
        url.query_pairs_mut().extend_pairs(query);
        self.send(self.http.get(url)).await
    }

    /// Cancels a QUEUED or RUNNING task; a 409 carries the status it had already ended with.
    pub async fn cancel_task(&self, task: TaskId) -> Result<CancelReply> {
        self.post(&format!("/tasks/{task}/cancel"), &serde_json::json!({}))
            .await
    }

    /// Runs an ended task again as a new task.
    pub async fn retry_task(&self, task: TaskId) -> Result<RetryReply> {
        self.post(&format!("/tasks/{task}/retry"), &serde_json::json!({}))
            .await
    }

    /// Cancels every QUEUED task.
    pub async fn purge_queue(&self) -> Result<PurgeReply> {
        self.post("/queue/purge", &PurgeQueue { confirm: true })
            .await
    }

    /// A function's metadata and statistics.
    pub async fn function(&self, function: FunctionId) -> Result<FunctionDetail> {
        self.get(&format!("/functions/{function}")).await
    }

    pub async fn delete_function(&self, function: FunctionId) -> Result<DeleteFunctionReply> {
        self.delete(&format!("/functions/{function}")).await
    }

    pub async fn functions(&self) -> Result<Vec<FunctionSummary>> {
        self.get("/functions").await
    }

    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.get("/workers").await
    }

    pub async fn healthz(&self) -> Result<()> {
        let _: serde_json::Value = self.get("/healthz").await?;
        Ok(())
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let req = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(req).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let req = self.http.delete(format!("{}{path}", self.base));
        self.send(req).await
    }

    /// Opens `GET /events` (Server-Sent Events) with `query` and, to resume, `last_event_id`;
    /// the response is read as it streams. Errors as for any request.
    pub async fn open_events(
        &self,
        query: &[(&str, String)],
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response> {
        // The values are ids and event types: nothing in them needs escaping.
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut req = self
            .http
            .get(format!("{}/events?{}", self.base, query.join("&")))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = self.dispatch(req).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap_or_default();
        Err(api_error(status, &bytes))
    }

    /// Sends `req` with the token; a transport failure is [`ClientError::Unreachable`].
    async fn dispatch(&self, mut req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req.send().await.map_err(|source| ClientError::Unreachable {
            url: self.base.clone(),
            source,
        })
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let resp = self.dispatch(req).await?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

/// The gateway's `{"error"}` message of a refused request, or its body as text.
/// Percent-encodes `s` as one URL path segment (a worker id is free text).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn api_error(status: reqwest::StatusCode, body: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<ErrorReply>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
    let conflict = (status == StatusCode::CONFLICT)
        .then(|| serde_json::from_slice::<ConflictReply>(body).ok())
        .flatten()
        .map(|c| c.status);
    ClientError::Api {
        status,
        message,
        conflict,
    }
}
