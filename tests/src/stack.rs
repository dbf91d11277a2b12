//! A whole platform for one test: a private Redis, the gateway, and a dispatcher (with remote
//! workers in push and pull mode), plus HTTP helpers that speak the gateway's API.

use std::collections::BTreeMap;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use faas_protocol::{FunctionId, Keys, TaskId};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::paths::{bin, TestDir};
use crate::python::python;
use crate::redis::RedisGuard;
use crate::{free_port, wait_until};

/// How long the gateway gets to answer `/healthz` after it starts.
const GATEWAY_START: Duration = Duration::from_secs(20);
/// The default bound of [`Stack::wait_result`].
const RESULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How tasks get from the queue to Python: the same behaviour tests run against each. The
/// platform's own mode type, under the short name the tests use.
pub use faas_protocol::model::WorkerMode as Mode;

/// Dispatcher flags for fault tests: workers are lost after 0.9 s of silence and a dead
/// dispatcher's entries are reclaimed after 2 s, so kills are noticed quickly.
pub const FAST_DISPATCHER: &[&str] = &["--heartbeat-ms", "300", "--reclaim-after-ms", "2000"];
/// Worker flags that go with [`FAST_DISPATCHER`].
pub const FAST_WORKER: &[&str] = &["--heartbeat-ms", "300"];

/// Options of a [`Stack`]; `start()` brings it up.
#[derive(Clone, Debug)]
pub struct StackBuilder {
    mode: Mode,
    procs: usize,
    gateway_args: Vec<String>,
    dispatcher_args: Vec<String>,
    dispatcher: bool,
    env: Vec<(String, String)>,
    worker_processes: usize,
    worker_args: Vec<String>,
}

impl StackBuilder {
    /// Python processes (`--procs`): the local pool's size, or each worker process's.
    pub fn procs(mut self, n: usize) -> Self {
        self.procs = n;
        self
    }

    /// Extra gateway flags, e.g. `["--body-limit", "1024"]`.
    pub fn gateway_args(mut self, args: &[&str]) -> Self {
        self.gateway_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Extra dispatcher flags, e.g. `["--default-timeout-ms", "2000"]`.
    pub fn dispatcher_args(mut self, args: &[&str]) -> Self {
        self.dispatcher_args
            .extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Remote worker processes started with the first push/pull dispatcher (default 1).
    pub fn worker_processes(mut self, n: usize) -> Self {
        self.worker_processes = n;
        self
    }

    /// Extra `faas-worker` flags for every worker the stack starts, e.g.
    /// `["--heartbeat-ms", "300"]`. A flag given here must not be given again per worker.
    pub fn worker_args(mut self, args: &[&str]) -> Self {
        self.worker_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Start only Redis and the gateway; [`Stack::start_dispatcher`] adds the rest later.
    pub fn without_dispatcher(mut self) -> Self {
        self.dispatcher = false;
        self
    }

    /// An environment variable for every daemon (and so for their Python children).
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.env.push((
            key.to_owned(),
            value.as_ref().to_string_lossy().into_owned(),
        ));
        self
    }

    pub async fn start(self) -> Stack {
        let dir = TestDir::new();
        let redis = RedisGuard::start(dir.path()).await;
        let (gateway, base_url) = start_gateway(&self, &redis, &dir).await;
        let client = reqwest::Client::builder()
            // Above the longest `?wait=` a test uses, so a hung gateway fails the test.
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let start_dispatcher = self.dispatcher;
        let mut stack = Stack {
            workers: Vec::new(),
            extra_dispatchers: Vec::new(),
            dispatcher: None,
            gateway,
            redis,
            client,
            base_url,
            dispatcher_port: free_port(),
            cfg: self,
            dir,
        };
        if start_dispatcher {
            stack.start_dispatcher();
        }
        stack
    }
}

/// Starts the gateway on a free port and waits until it is healthy. The port is probed free and
/// then handed over, so another process may grab it in between: then the gateway exits and the
/// next port is tried.
async fn start_gateway(cfg: &StackBuilder, redis: &RedisGuard, dir: &TestDir) -> (Daemon, String) {
    for _ in 0..3 {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut args = vec![
            "--listen".to_owned(),
            listen.clone(),
            "--redis".to_owned(),
            redis.url(),
        ];
        args.extend(cfg.gateway_args.iter().cloned());
        let mut gateway =
            Daemon::spawn("gateway", bin("faas-gateway"), &args, &cfg.env, dir.path());
        let base_url = format!("http://{listen}");
        let client = reqwest::Client::new();
        let healthz = format!("{base_url}/healthz");
        let up = wait_until(GATEWAY_START, async || {
            if gateway.exited().is_some() {
                return true;
            }
            matches!(client.get(&healthz).send().await, Ok(r) if r.status() == StatusCode::OK)
        })
        .await;
        if gateway.exited().is_some() {
            if gateway.log_tail(20).contains("in use") {
                continue;
            }
            gateway.assert_running();
        }
        assert!(
            up,
            "gateway did not answer GET /healthz with 200 within {GATEWAY_START:?}:\n{}",
            gateway.log_tail(30)
        );
        return (gateway, base_url);
    }
    panic!("gateway could not bind a free port");
}

/// A running platform. Dropping it stops everything, workers first and Redis last.
#[derive(Debug)]
pub struct Stack {
    // Field order is drop order: consumers of Redis go before Redis.
    workers: Vec<Daemon>,
    /// Dispatchers started with [`Stack::add_dispatcher`], beside the main one.
    extra_dispatchers: Vec<Daemon>,
    dispatcher: Option<Daemon>,
    gateway: Daemon,
    redis: RedisGuard,
    client: reqwest::Client,
    base_url: String,
    /// Where push/pull dispatchers bind; fixed for the stack so restarted workers find it.
    dispatcher_port: u16,
    cfg: StackBuilder,
    dir: TestDir,
}

impl Stack {
    /// Options for a stack dispatching in `mode`: 2 Python processes, a dispatcher, no extra flags.
    pub fn builder(mode: Mode) -> StackBuilder {
        StackBuilder {
            mode,
            procs: 2,
            gateway_args: Vec::new(),
            dispatcher_args: Vec::new(),
            dispatcher: true,
            env: Vec::new(),
            worker_processes: 1,
            worker_args: Vec::new(),
        }
    }

    /// A stack with the default options.
    pub async fn start(mode: Mode) -> Stack {
        Self::builder(mode).start().await
    }

    pub fn mode(&self) -> Mode {
        self.cfg.mode
    }

    /// `http://127.0.0.1:PORT` of the gateway.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn redis_url(&self) -> String {
        self.redis.url()
    }

    pub fn redis(&mut self) -> &mut RedisGuard {
        &mut self.redis
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The test's scratch directory (daemon logs live here too).
    pub fn dir(&self) -> &TestDir {
        &self.dir
    }

    pub fn gateway(&mut self) -> &mut Daemon {
        &mut self.gateway
    }

    pub fn dispatcher(&mut self) -> Option<&mut Daemon> {
        self.dispatcher.as_mut()
    }

    /// Starts the dispatcher (and, in push/pull mode, the workers if none run).
    pub fn start_dispatcher(&mut self) {
        assert!(self.dispatcher.is_none(), "a dispatcher is already running");
        let args = self.dispatcher_command(self.dispatcher_port, &[]);
        let cfg = &self.cfg;
        self.dispatcher = Some(Daemon::spawn(
            "dispatcher",
            bin("faas-dispatcher"),
            &args,
            &cfg.env,
            self.dir.path(),
        ));
        if cfg.mode != Mode::Local && self.workers.is_empty() {
            for _ in 0..cfg.worker_processes {
                self.add_worker(self.dispatcher_port, &[]);
            }
        }
    }

    /// Where this stack's push/pull dispatcher binds: fixed for the stack, so a restarted
    /// dispatcher is found by the workers of the old one.
    pub fn dispatcher_port(&self) -> u16 {
        self.dispatcher_port
    }

    /// Starts one more worker of the stack's mode against a dispatcher on `port`, with the
    /// builder's worker flags plus `extra`; returns its index for [`Stack::worker`]. Its log is
    /// `worker.log` for the first worker, `worker-N.log` for the N-th.
    pub fn add_worker(&mut self, port: u16, extra: &[&str]) -> usize {
        self.add_worker_of(self.cfg.mode, port, extra)
    }

    /// Like [`Stack::add_worker`] with the worker's mode chosen (e.g. the wrong one on purpose).
    pub fn add_worker_of(&mut self, mode: Mode, port: u16, extra: &[&str]) -> usize {
        assert!(mode != Mode::Local, "there are no local-mode workers");
        let mut args: Vec<String> = vec![
            mode.as_str().to_owned(),
            format!("tcp://127.0.0.1:{port}"),
            "--procs".into(),
            self.cfg.procs.to_string(),
            "--python".into(),
            python().to_string_lossy().into_owned(),
        ];
        args.extend(self.cfg.worker_args.iter().cloned());
        args.extend(extra.iter().map(|a| a.to_string()));
        let index = self.workers.len();
        let name = match index {
            0 => "worker".to_owned(),
            n => format!("worker-{}", n + 1),
        };
        self.workers.push(Daemon::spawn(
            &name,
            bin("faas-worker"),
            &args,
            &self.cfg.env,
            self.dir.path(),
        ));
        index
    }

    /// The `i`-th worker process (in start order).
    pub fn worker(&mut self, i: usize) -> &mut Daemon {
        &mut self.workers[i]
    }

    /// Worker processes started so far, running or not.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Starts another dispatcher of the stack's mode on the same Redis, binding `port` (ignored
    /// in local mode), with the builder's dispatcher flags plus `extra`; returns its index for
    /// [`Stack::extra_dispatcher`]. It stops with the stack, before the main dispatcher.
    pub fn add_dispatcher(&mut self, port: u16, extra: &[&str]) -> usize {
        let args = self.dispatcher_command(port, extra);
        let index = self.extra_dispatchers.len();
        self.extra_dispatchers.push(Daemon::spawn(
            &format!("dispatcher-{}", index + 2),
            bin("faas-dispatcher"),
            &args,
            &self.cfg.env,
            self.dir.path(),
        ));
        index
    }

    /// `faas-dispatcher` flags for this stack's mode and Redis, binding `port` in push/pull.
    fn dispatcher_command(&self, port: u16, extra: &[&str]) -> Vec<String> {
        let cfg = &self.cfg;
        let mut args: Vec<String> = vec!["-m".into(), cfg.mode.as_str().into()];
        match cfg.mode {
            Mode::Local => args.extend([
                "--procs".into(),
                cfg.procs.to_string(),
                "--python".into(),
                python().to_string_lossy().into_owned(),
            ]),
            Mode::Push | Mode::Pull => args.extend(["-p".into(), port.to_string()]),
        }
        args.extend(["--redis".into(), self.redis.url()]);
        args.extend(cfg.dispatcher_args.iter().cloned());
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    /// The `i`-th dispatcher started with [`Stack::add_dispatcher`].
    pub fn extra_dispatcher(&mut self, i: usize) -> &mut Daemon {
        &mut self.extra_dispatchers[i]
    }

    /// Waits until the registry lists exactly `n` workers and returns it; panics with what it
    /// listed last after `timeout`.
    pub async fn wait_registered_workers(
        &self,
        n: usize,
        timeout: Duration,
    ) -> BTreeMap<String, Value> {
        let mut last = BTreeMap::new();
        let ok = wait_until(timeout, async || {
            last = self.registered_workers().await;
            last.len() == n
        })
        .await;
        assert!(
            ok,
            "expected {n} registered workers within {timeout:?}; the registry holds {last:?}"
        );
        last
    }

    /// The worker registry as the dispatchers keep it in Redis (`faas:workers`): worker id →
    /// its info as JSON.
    pub async fn registered_workers(&self) -> BTreeMap<String, Value> {
        self.redis
            .hgetall(&Keys::default().workers())
            .await
            .into_iter()
            .map(|(id, info)| {
                let info = serde_json::from_str(&info)
                    .unwrap_or_else(|e| panic!("worker {id}: info is not JSON ({e}): {info}"));
                (id, info)
            })
            .collect()
    }

    /// Stops the dispatcher cleanly (SIGTERM); workers, if any, stay up to reconnect.
    pub fn stop_dispatcher(&mut self) -> Option<ExitStatus> {
        self.dispatcher.take().and_then(|mut d| d.stop())
    }

    /// Kills the dispatcher with SIGKILL, as a crash would.
    pub fn kill9_dispatcher(&mut self) {
        if let Some(mut d) = self.dispatcher.take() {
            d.kill9();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Any request; the body is parsed as JSON, or wrapped as `{"non_json_body": text}` so that
    /// assertions on the error shape show what came instead.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method.clone(), self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        read_reply(resp).await
    }

    /// A POST with a raw body and content type, for bodies `post_json` cannot produce.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        read_reply(resp).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(&body)).await
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, None).await
    }

    /// The status of `GET /healthz`, or `None` if the gateway cannot be reached.
    pub async fn healthz(&self) -> Option<StatusCode> {
        self.client
            .get(self.url("/healthz"))
            .send()
            .await
            .ok()
            .map(|r| r.status())
    }

    /// Registers a function (any body); asserts 200 and returns its id.
    pub async fn register(&self, body: Value) -> FunctionId {
        let (status, reply) = self.post_json("/register_function", body).await;
        assert_eq!(status, StatusCode::OK, "register_function: {reply}");
        parse_id(&reply, "function_id")
    }

    pub async fn register_source(&self, name: &str, source: &str, entrypoint: &str) -> FunctionId {
        self.register(json!({"name": name, "source": source, "entrypoint": entrypoint}))
            .await
    }

    /// Registers a dill function from its base64 payload.
    pub async fn register_dill(&self, name: &str, payload: &str) -> FunctionId {
        self.register(json!({"name": name, "payload": payload}))
            .await
    }

    /// Executes (any body); asserts 200 and returns the task id.
    pub async fn execute(&self, body: Value) -> TaskId {
        let (status, reply) = self.post_json("/execute_function", body).await;
        assert_eq!(status, StatusCode::OK, "execute_function: {reply}");
        parse_id(&reply, "task_id")
    }

    /// Submits `executions` in one `POST /execute_batch` (queued together, in order); asserts
    /// 200 and returns their ids, in order.
    pub async fn execute_batch(&self, executions: Vec<Value>) -> Vec<TaskId> {
        let (status, reply) = self
            .post_json("/execute_batch", json!({ "executions": executions }))
            .await;
        assert_eq!(status, StatusCode::OK, "execute_batch: {reply}");
        reply["task_ids"]
            .as_array()
            .unwrap_or_else(|| panic!("no task_ids: {reply}"))
            .iter()
            .map(|id| {
                id.as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("not a task id: {id}"))
            })
            .collect()
    }

    /// Executes a source function with JSON arguments.
    pub async fn execute_json(
        &self,
        function_id: FunctionId,
        args: Value,
        kwargs: Value,
    ) -> TaskId {
        self.execute(json!({"function_id": function_id, "args": args, "kwargs": kwargs}))
            .await
    }

    /// Executes a dill function with a base64 `((args...), {kwargs})` payload.
    pub async fn execute_dill(&self, function_id: FunctionId, payload: &str) -> TaskId {
        self.execute(json!({"function_id": function_id, "payload": payload}))
            .await
    }

    /// `GET /status/{id}`'s status string; asserts 200.
    pub async fn status(&self, task_id: TaskId) -> String {
        let (status, reply) = self.get_json(&format!("/status/{task_id}")).await;
        assert_eq!(status, StatusCode::OK, "status: {reply}");
        reply["status"]
            .as_str()
            .expect("status is a string")
            .to_owned()
    }

    /// `GET /tasks/{id}`, the full record; asserts 200.
    pub async fn task(&self, task_id: TaskId) -> Value {
        let (status, reply) = self.get_json(&format!("/tasks/{task_id}")).await;
        assert_eq!(status, StatusCode::OK, "tasks: {reply}");
        reply
    }

    /// `GET /result/{id}?wait=MS` once; asserts 200.
    pub async fn result_wait(&self, task_id: TaskId, wait_ms: u64) -> Value {
        let (status, reply) = self
            .get_json(&format!("/result/{task_id}?wait={wait_ms}"))
            .await;
        assert_eq!(status, StatusCode::OK, "result: {reply}");
        reply
    }

    /// The task's `/result` once it is COMPLETED or FAILED (bounded: panics after a minute).
    pub async fn wait_result(&self, task_id: TaskId) -> Value {
        self.wait_result_within(task_id, RESULT_TIMEOUT).await
    }

    pub async fn wait_result_within(&self, task_id: TaskId, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait_ms = left.as_millis().min(10_000) as u64;
            let reply = self.result_wait(task_id, wait_ms).await;
            if is_terminal(&reply) {
                return reply;
            }
            assert!(
                Instant::now() < deadline,
                "task {task_id} not finished after {timeout:?}; last reply {reply}"
            );
        }
    }
}

/// True for a reply whose `status` is COMPLETED or FAILED.
pub fn is_terminal(reply: &Value) -> bool {
    matches!(reply["status"].as_str(), Some("COMPLETED" | "FAILED"))
}

async fn read_reply(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "non_json_body": text }));
    (status, body)
}

fn parse_id<T: std::str::FromStr>(reply: &Value, field: &str) -> T {
    reply[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("reply has no uuid {field:?}: {reply}"))
}
