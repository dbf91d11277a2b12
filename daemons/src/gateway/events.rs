//! `GET /events`: the platform's live events (task status changes, workers joining, beating,
//! leaving) as Server-Sent Events, for `curl -N`, browsers' `EventSource` and `faas watch`.
//!
//! # Shape
//! One Redis subscription to `{p}:events` per gateway feeds an in-process fan-out, the
//! [`EventHub`]: each event gets a gateway-assigned id (decimal, strictly increasing), goes into
//! a bounded ring of recent events (the backlog) and onto a `tokio::sync::broadcast` channel of
//! bounded capacity that every connected client reads. The data of each SSE message is the
//! event's JSON exactly as `protocol::event::Event` defines it (what the console reads), with
//! `function_id` filled in from the task when the publisher did not write it, so that the
//! `function_id` filter sees every task event. Filters (`function_id`, `task_id`, `types`, each
//! repeatable or comma-separated) are applied per client; a heartbeat comment (`:heartbeat`) is
//! sent after 15 s without an event, so proxies and clients can tell a quiet stream from a dead one.
//!
//! The subscription is made when the first client connects and dropped a while (`linger`) after
//! the last one left, so a gateway nobody watches pays nothing per event; the linger lets a
//! client that reconnects resume from the backlog.
//!
//! # Resuming (`Last-Event-ID`)
//! A client that reconnects with the id of the last event it saw gets every event after it from
//! the backlog, then the live ones, with no gap and no repeat, provided the backlog still covers
//! that point. It does not when the id is older than the backlog's oldest entry, newer than the
//! newest (another gateway's id, or not an id at all), from before a restart (ids start from the
//! gateway's start time in microseconds, so a restarted gateway's ids are all larger than its
//! predecessor's), or from before a time this gateway was not subscribed (events published
//! meanwhile were lost). Then the stream begins with an `event: reset` message whose data is
//! `{"reason": "..."}` and continues with live events only: the client must treat its view as
//! stale and re-read what it needs (`/tasks`, `/status/{id}`). Live clients also receive a
//! `reset` when the gateway loses its Redis subscription (a Redis restart), since events
//! published until it is back are lost.
//!
//! # Why not a Redis stream for the backlog
//! A capped Redis stream (`XADD ... MAXLEN`) would let any gateway serve any `Last-Event-ID`, but
//! every status change would pay an extra `XADD` inside the hot-path Lua scripts (three per task),
//! whether or not anyone ever watches, and the stream would hold large outcome bodies in Redis'
//! memory. The backlog here exists for reconnects, which go to the same gateway in the common
//! case (one gateway, or sticky balancing); a client that lands on another gateway, or on a
//! restarted one, is told so by `reset` and re-reads state, which it has to be able to do anyway
//! after a long disconnection.
//!
//! # Slow consumers
//! Nothing is buffered per client. A stream that finds several events waiting when it is
//! polled sends them as one chunk (up to 64 KiB), so a socket write carries many events under
//! load instead of one each (`demo/bench/README.md`, "`/events` fan-out", has the figures).
//! The broadcast channel holds the last `buffer` events for everyone (shared `Arc`s); a client
//! that falls further behind (its socket does not drain) is disconnected the next time its
//! stream is polled (`Lagged`), and may reconnect with
//! `Last-Event-ID` to resume from the backlog. The backlog is bounded by a count and by bytes
//! (terminal events carry outcomes of up to 16 KiB). A client whose socket never drains costs
//! its socket buffers and a position in the shared channel, nothing more. At most
//! `max_subscribers` streams are open at once (beyond it: 503), like `?wait=` long polls, so
//! streams cannot take every connection.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use faas_protocol::event::Event;
use faas_protocol::{FunctionId, TaskId};
use futures::stream::{self, Stream, StreamExt};
use futures::FutureExt;
use tokio::sync::{broadcast, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::error::ApiError;
use super::AppState;
use crate::backoff::Backoff;

/// Limits and timings of `/events` (see the module docs).
#[derive(Clone, Debug)]
pub struct EventsConfig {
    /// Capacity of the broadcast channel: how far a client may fall behind before it is cut off.
    pub buffer: usize,
    /// Most events kept for `Last-Event-ID` resumes.
    pub backlog: usize,
    /// Most bytes of event JSON kept for resumes.
    pub backlog_bytes: usize,
    /// A comment is sent after this long without an event.
    pub heartbeat: Duration,
    /// How long the subscription is kept after the last client left.
    pub linger: Duration,
    /// Most streams open at once.
    pub max_subscribers: usize,
    /// Longest a new client waits for the subscription to be made before a 503.
    pub subscribe_timeout: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            buffer: 4096,
            backlog: 10_000,
            backlog_bytes: 16 * 1024 * 1024,
            heartbeat: Duration::from_secs(15),
            linger: Duration::from_secs(60),
            max_subscribers: 5_000,
            subscribe_timeout: Duration::from_secs(5),
        }
    }
}

/// Most ids one filter may list (`task_id` and `function_id` together).
pub const MAX_FILTER_IDS: usize = 1_000;

/// One event as fanned out: its id, what filters look at, and its JSON.
#[derive(Debug)]
struct Stored {
    id: u64,
    kind: Kind,
    task_id: Option<TaskId>,
    function_id: Option<FunctionId>,
    data: String,
    /// The whole SSE message (`id:` and `data:` lines), framed once for every client: each
    /// stream sends this buffer (a reference count, no copy), not a message of its own.
    frame: Bytes,
}

/// The SSE message of event `id` with JSON `data` (one `data:` line per line of it, as SSE
/// requires; event JSON has none but the first).
fn frame(id: u64, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 32);
    out.push_str("id: ");
    out.push_str(&id.to_string());
    out.push('\n');
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Task,
    Worker,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "task" => Some(Self::Task),
            "worker" => Some(Self::Worker),
            _ => None,
        }
    }
}

/// What the broadcast channel carries.
#[derive(Clone, Debug)]
enum Item {
    Event(Arc<Stored>),
    /// Events were lost (the subscription dropped): the client's view is stale.
    Reset(&'static str),
}

/// The ids handed out and the backlog (see the module docs).
#[derive(Debug)]
struct Ring {
    next_id: u64,
    /// Resuming after an id below `valid_from - 1` is not possible: events after it are gone.
    valid_from: u64,
    events: VecDeque<Arc<Stored>>,
    bytes: usize,
}

impl Ring {
    fn new() -> Self {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        Self {
            next_id: start,
            // Nothing can be resumed before the first subscription.
            valid_from: start + 1,
            events: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Events may have been missed from here on: no id handed out so far can be resumed.
    fn gap(&mut self) {
        self.next_id += 1;
        self.valid_from = self.next_id;
    }

    fn push(&mut self, ev: Arc<Stored>, max: usize, max_bytes: usize) {
        self.bytes += ev.data.len();
        self.events.push_back(ev);
        while self.events.len() > max || (self.bytes > max_bytes && self.events.len() > 1) {
            let Some(old) = self.events.pop_front() else {
                break;
            };
            self.bytes -= old.data.len();
            self.valid_from = self.valid_from.max(old.id + 1);
        }
    }

    /// The events after `last`, or `None` when the backlog does not cover that point.
    fn after(&self, last: u64) -> Option<Vec<Arc<Stored>>> {
        let next = last.checked_add(1)?;
        if next < self.valid_from || next > self.next_id {
            return None;
        }
        let start = self.events.partition_point(|e| e.id <= last);
        Some(self.events.range(start..).cloned().collect())
    }
}

/// The gateway's event fan-out: one per gateway, shared by every `/events` request.
#[derive(Debug)]
pub struct EventHub {
    config: EventsConfig,
    tx: broadcast::Sender<Item>,
    ring: Mutex<Ring>,
    /// Whether the Redis subscription is up (new clients wait for it).
    subscribed: watch::Sender<bool>,
    /// Wakes the listener when a client arrives while it is not subscribed.
    wanted: Notify,
    /// Ends every stream (gateway shutdown).
    closed: CancellationToken,
    slots: Arc<Semaphore>,
}

impl EventHub {
    pub fn new(config: EventsConfig) -> Self {
        let (tx, _) = broadcast::channel(config.buffer.max(1));
        Self {
            tx,
            ring: Mutex::new(Ring::new()),
            subscribed: watch::Sender::new(false),
            wanted: Notify::new(),
            closed: CancellationToken::new(),
            slots: Arc::new(Semaphore::new(config.max_subscribers.max(1))),
            config,
        }
    }

    /// Ends every open stream; new ones are refused.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// How many streams are open.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    fn publish(
        &self,
        kind: Kind,
        task_id: Option<TaskId>,
        function_id: Option<FunctionId>,
        data: String,
    ) {
        let mut ring = self.ring.lock().expect("events ring lock");
        let ev = Arc::new(Stored {
            id: ring.next_id,
            kind,
            task_id,
            function_id,
            frame: frame(ring.next_id, &data),
            data,
        });
        ring.next_id += 1;
        ring.push(ev.clone(), self.config.backlog, self.config.backlog_bytes);
        // Sent under the lock, so a client subscribing sees each event either in its backlog
        // snapshot or on its receiver, never both and never neither.
        let _ = self.tx.send(Item::Event(ev));
    }

    fn lost(&self) {
        self.ring.lock().expect("events ring lock").gap();
        self.subscribed.send_replace(false);
        let _ = self.tx.send(Item::Reset(
            "the gateway lost its event subscription; events may be missing",
        ));
    }

    /// A receiver and what to replay first: the backlog after `last`, or a reset.
    fn join(&self, last: Option<&str>) -> (broadcast::Receiver<Item>, Vec<Item>) {
        let ring = self.ring.lock().expect("events ring lock");
        let rx = self.tx.subscribe();
        let first = match last {
            None => Vec::new(),
            Some(last) => match last.trim().parse::<u64>().ok().and_then(|l| ring.after(l)) {
                Some(events) => events.into_iter().map(Item::Event).collect(),
                None => vec![Item::Reset(
                    "Last-Event-ID is not in this gateway's backlog (too old, from another gateway or before a restart); events may be missing",
                )],
            },
        };
        (rx, first)
    }

    /// Subscribes to `channel` while anyone listens (and `linger` after), resubscribing with
    /// back-off when the subscription is lost, until `shutdown`.
    pub async fn listen(
        self: Arc<Self>,
        client: redis::Client,
        channel: String,
        task_prefix: String,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut enricher = Enricher::new(task_prefix);
        loop {
            while self.subscribers() == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.wanted.notified() => {}
                }
            }
            let subscribed = tokio::select! {
                _ = shutdown.cancelled() => return,
                s = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    let conn = client.get_multiplexed_async_connection().await?;
                    Ok::<_, redis::RedisError>((pubsub, conn))
                } => s,
            };
            let (mut pubsub, conn) = match subscribed {
                Ok(s) => s,
                Err(e) => {
                    debug!(error = %e, "cannot subscribe to events for /events");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                    continue;
                }
            };
            backoff.reset();
            enricher.conn = Some(conn);
            info!(event = "subscribed", subscriber = "events", %channel, "subscribed to events for /events");
            {
                // Events before this point were not received: no earlier id can be resumed.
                self.ring.lock().expect("events ring lock").gap();
            }
            self.subscribed.send_replace(true);
            let mut messages = pubsub.on_message();
            let mut tick = tokio::time::interval(self.config.linger / 4 + Duration::from_millis(1));
            let mut idle_since: Option<tokio::time::Instant> = None;
            let mut batch = Vec::new();
            let ended = loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    msg = messages.next() => match msg {
                        Some(msg) => {
                            batch.push(msg.get_payload_bytes().to_vec());
                            // Whatever else has arrived goes with it, so one Redis read fills
                            // in the function ids of a whole burst.
                            while batch.len() < 1024 {
                                match messages.next().now_or_never() {
                                    Some(Some(m)) => batch.push(m.get_payload_bytes().to_vec()),
                                    Some(None) => break,
                                    None => break,
                                }
                            }
                            enricher.run(&self, std::mem::take(&mut batch)).await;
                        }
                        None => break true,
                    },
                    _ = tick.tick() => {
                        if self.subscribers() > 0 {
                            idle_since = None;
                        } else if idle_since.get_or_insert_with(tokio::time::Instant::now).elapsed() >= self.config.linger {
                            break false;
                        }
                    }
                }
            };
            drop(messages);
            if ended {
                warn!(event = "subscription_lost", subscriber = "events", %channel, "event subscription for /events lost; resubscribing");
                self.lost();
            } else {
                debug!("no /events client for a while: unsubscribing");
                self.ring.lock().expect("events ring lock").gap();
                self.subscribed.send_replace(false);
            }
        }
    }
}

/// Fills in the function of task events that lack it: from a bounded cache of the tasks seen,
/// else from the task hash, one pipelined read per burst.
struct Enricher {
    task_prefix: String,
    conn: Option<redis::aio::MultiplexedConnection>,
    functions: HashMap<TaskId, FunctionId>,
}

/// Most task -> function entries cached; past it the cache starts over (tasks are forgotten
/// when they finish, so only tasks in flight stay).
const CACHE_MAX: usize = 100_000;

impl Enricher {
    fn new(task_prefix: String) -> Self {
        Self {
            task_prefix,
            conn: None,
            functions: HashMap::new(),
        }
    }

    async fn run(&mut self, hub: &EventHub, payloads: Vec<Vec<u8>>) {
        let parsed: Vec<(Vec<u8>, Option<Event>)> = payloads
            .into_iter()
            .map(|p| {
                let ev = serde_json::from_slice::<Event>(&p)
                    .map_err(|e| debug!(error = %e, "ignoring an event that does not parse"))
                    .ok();
                (p, ev)
            })
            .collect();
        let mut missing: Vec<TaskId> = Vec::new();
        for (_, ev) in &parsed {
            match ev {
                Some(Event::Task {
                    task_id,
                    function_id: Some(f),
                    ..
                }) => {
                    self.remember(*task_id, *f);
                }
                Some(Event::Task {
                    task_id,
                    function_id: None,
                    ..
                }) if !self.functions.contains_key(task_id) && !missing.contains(task_id) => {
                    missing.push(*task_id)
                }
                _ => {}
            }
        }
        if let (false, Some(conn)) = (missing.is_empty(), self.conn.as_mut()) {
            let mut pipe = redis::pipe();
            for id in &missing {
                pipe.hget(format!("{}{id}", self.task_prefix), "function_id");
            }
            match pipe.query_async::<Vec<Option<String>>>(conn).await {
                Ok(found) => {
                    for (id, f) in missing.iter().zip(found) {
                        if let Some(f) = f.and_then(|f| f.parse().ok()) {
                            self.remember(*id, f);
                        }
                    }
                }
                Err(e) => debug!(error = %e, "cannot read the functions of task events"),
            }
        }
        for (raw, ev) in parsed {
            let Some(ev) = ev else { continue };
            match ev {
                Event::Task {
                    task_id,
                    function_id,
                    status,
                    worker,
                    at,
                    outcome,
                } => {
                    let known = function_id.or_else(|| self.functions.get(&task_id).copied());
                    let data = if function_id.is_none() && known.is_some() {
                        serde_json::to_string(&Event::Task {
                            task_id,
                            function_id: known,
                            status,
                            worker,
                            at,
                            outcome,
                        })
                        .expect("events serialise")
                    } else {
                        String::from_utf8_lossy(&raw).into_owned()
                    };
                    if status.is_terminal() {
                        self.functions.remove(&task_id);
                    }
                    hub.publish(Kind::Task, Some(task_id), known, data);
                }
                Event::Worker { .. } => hub.publish(
                    Kind::Worker,
                    None,
                    None,
                    String::from_utf8_lossy(&raw).into_owned(),
                ),
                // `faas up`'s reports of daemons it restarted are for the console, which reads
                // Redis itself; the API's stream keeps to tasks and workers.
                Event::Daemon { .. } => {}
            }
        }
    }

    fn remember(&mut self, task: TaskId, function: FunctionId) {
        if self.functions.len() >= CACHE_MAX {
            self.functions.clear();
        }
        self.functions.insert(task, function);
    }
}

/// Which events a client wants (empty sets: all).
#[derive(Debug, Default)]
struct Filter {
    kinds: HashSet<Kind>,
    tasks: HashSet<TaskId>,
    functions: HashSet<FunctionId>,
}

impl Filter {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut f = Filter::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            for v in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                match &*key {
                    "types" => {
                        f.kinds.insert(Kind::parse(v).ok_or_else(|| {
                            ApiError::bad(format!(
                                "unknown event type {v:?} in `types`: use task or worker"
                            ))
                        })?);
                    }
                    "task_id" => {
                        f.tasks.insert(v.parse().map_err(|_| {
                            ApiError::bad(format!("`task_id` {v:?} is not a task id (a UUID)"))
                        })?);
                    }
                    "function_id" => {
                        f.functions.insert(v.parse().map_err(|_| {
                            ApiError::bad(format!(
                                "`function_id` {v:?} is not a function id (a UUID)"
                            ))
                        })?);
                    }
                    other => {
                        return Err(ApiError::bad(format!(
                        "unknown parameter {other:?}: /events takes function_id, task_id and types"
                    )))
                    }
                }
            }
        }
        if f.tasks.len() + f.functions.len() > MAX_FILTER_IDS {
            return Err(ApiError::bad(format!(
                "at most {MAX_FILTER_IDS} ids may be given in `task_id` and `function_id`"
            )));
        }
        Ok(f)
    }

    fn wants(&self, ev: &Stored) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&ev.kind))
            && (self.tasks.is_empty() || ev.task_id.is_some_and(|t| self.tasks.contains(&t)))
            && (self.functions.is_empty()
                || ev.function_id.is_some_and(|f| self.functions.contains(&f)))
    }
}

/// The filters of `GET /events` (each repeatable, or comma-separated).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct EventsQuery {
    /// Only task events of these functions.
    function_id: Option<Vec<String>>,
    /// Only events of these tasks.
    task_id: Option<Vec<String>>,
    /// Only these kinds of event: `task`, `worker`.
    types: Option<Vec<String>>,
}

/// Live task and worker events as Server-Sent Events (see the module docs of `events.rs`).
#[utoipa::path(
    get,
    path = "/events",
    tag = "operations",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (from this gateway's backlog); if it cannot be, the stream starts with an `event: reset` message"),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`: one message per event, `id:` the gateway's event id, `data:` the event's JSON (`{\"type\":\"task\",...}` or `{\"type\":\"worker\",...}`); `event: reset` when events may have been missed; a `:heartbeat` comment after 15 s of quiet", body = String, content_type = "text/event-stream"),
        (status = 400, description = "A filter is not valid", body = faas_protocol::api::ErrorReply),
        (status = 401, description = "Missing or wrong token", body = faas_protocol::api::ErrorReply),
        (status = 503, description = "Too many streams open, or Redis is unavailable", body = faas_protocol::api::ErrorReply),
    )
)]
pub async fn events(
    State(st): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    match open(
        &st.events,
        query.as_deref(),
        &headers,
        st.events.config.heartbeat,
    )
    .await
    {
        Ok(stream) => (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Body::from_stream(stream),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Why a stream cannot be opened now.
fn unavailable(message: &str) -> Response {
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(faas_protocol::api::ErrorReply {
            error: message.to_owned(),
        }),
    )
        .into_response()
}

async fn open(
    hub: &Arc<EventHub>,
    query: Option<&str>,
    headers: &HeaderMap,
    heartbeat: Duration,
) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static, Response> {
    let filter = Filter::parse(query).map_err(IntoResponse::into_response)?;
    let last = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad("Last-Event-ID is not text").into_response())?
                .to_owned(),
        ),
    };
    if hub.closed.is_cancelled() {
        return Err(unavailable("the gateway is shutting down"));
    }
    let permit = hub.slots.clone().try_acquire_owned().map_err(|_| {
        unavailable("too many /events streams are open on this gateway; try again later")
    })?;
    let (rx, first) = hub.join(last.as_deref());
    hub.wanted.notify_one();
    let mut up = hub.subscribed.subscribe();
    if tokio::time::timeout(hub.config.subscribe_timeout, up.wait_for(|s| *s))
        .await
        .is_err()
    {
        return Err(unavailable(
            "redis is unreachable: cannot subscribe to events; try again shortly",
        ));
    }
    Ok(stream_of(rx, first, filter, permit, heartbeat)
        .take_until(hub.closed.clone().cancelled_owned()))
}

/// A comment line: SSE clients ignore it, proxies and clients see the stream is alive.
const HEARTBEAT: &[u8] = b":heartbeat\n\n";

fn stream_of(
    rx: broadcast::Receiver<Item>,
    first: Vec<Item>,
    filter: Filter,
    permit: OwnedSemaphorePermit,
    heartbeat: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    struct St {
        rx: broadcast::Receiver<Item>,
        first: std::vec::IntoIter<Item>,
        filter: Filter,
        /// The client fell behind after its last batch was taken: end after sending it.
        cut: bool,
        _permit: OwnedSemaphorePermit,
    }
    impl St {
        /// The SSE message of `item` for this client, if its filter wants it.
        fn message(&self, item: Item) -> Option<Bytes> {
            match item {
                Item::Event(ev) if self.filter.wants(&ev) => Some(ev.frame.clone()),
                Item::Event(_) => None,
                Item::Reset(reason) => Some(Bytes::from(format!(
                    "event: reset\ndata: {}\n\n",
                    serde_json::json!({ "reason": reason })
                ))),
            }
        }
    }
    let st = St {
        rx,
        first: first.into_iter(),
        filter,
        cut: false,
        _permit: permit,
    };
    stream::unfold(st, move |mut st| async move {
        if st.cut {
            return None;
        }
        loop {
            let item = match st.first.next() {
                Some(i) => i,
                None => match tokio::time::timeout(heartbeat, st.rx.recv()).await {
                    Err(_quiet) => return Some((Ok(Bytes::from_static(HEARTBEAT)), st)),
                    Ok(Ok(i)) => i,
                    Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                        lagged(n);
                        return None;
                    }
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                },
            };
            let Some(first) = st.message(item) else {
                continue;
            };
            // Under load more events are already waiting: send them in the same write, as
            // one chunk, rather than one socket write per event.
            let mut batch: Option<bytes::BytesMut> = None;
            while batch.as_ref().map_or(first.len(), |b| b.len()) < BATCH_BYTES {
                let next = match st.rx.try_recv() {
                    Ok(i) => i,
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        lagged(n);
                        st.cut = true;
                        break;
                    }
                    Err(broadcast::error::TryRecvError::Closed) => {
                        st.cut = true;
                        break;
                    }
                    Err(broadcast::error::TryRecvError::Empty) => break,
                };
                if let Some(more) = st.message(next) {
                    batch
                        .get_or_insert_with(|| bytes::BytesMut::from(&first[..]))
                        .extend_from_slice(&more);
                }
            }
            let bytes = batch.map_or(first, bytes::BytesMut::freeze);
            return Some((Ok(bytes), st));
        }
    })
}

/// Most bytes of events sent as one chunk (see `stream_of`).
const BATCH_BYTES: usize = 64 * 1024;

/// A client fell behind the broadcast channel: it is disconnected (nothing is buffered for
/// one client) and resumes with Last-Event-ID.
fn lagged(missed: u64) {
    debug!(missed, "an /events client fell behind; disconnecting it");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: u64, size: usize) -> Arc<Stored> {
        Arc::new(Stored {
            id,
            kind: Kind::Task,
            task_id: None,
            function_id: None,
            frame: frame(id, &"x".repeat(size)),
            data: "x".repeat(size),
        })
    }

    #[test]
    fn the_backlog_resumes_only_points_it_covers() {
        let mut ring = Ring::new();
        let before = ring.next_id;
        // Before the first subscription nothing resumes.
        assert!(ring.after(before - 1).is_none());
        ring.gap();
        let start = ring.next_id - 1;
        assert_eq!(ring.after(start).unwrap().len(), 0);
        for _ in 0..5 {
            let id = ring.next_id;
            ring.next_id += 1;
            ring.push(ev(id, 10), 3, 1 << 20);
        }
        let last = ring.next_id - 1;
        assert_eq!(ring.after(last).unwrap().len(), 0);
        assert_eq!(ring.after(last - 2).unwrap().len(), 2);
        assert_eq!(ring.after(last - 3).unwrap().len(), 3, "the oldest kept");
        assert!(ring.after(last - 4).is_none(), "evicted");
        assert!(ring.after(last + 1).is_none(), "from the future");
        // A gap: the last id handed out no longer resumes.
        ring.gap();
        assert!(ring.after(last).is_none());
        assert_eq!(ring.after(ring.next_id - 1).unwrap().len(), 0);
    }

    #[test]
    fn an_event_is_framed_once_as_an_sse_message() {
        assert_eq!(&frame(7, r#"{"a":1}"#)[..], b"id: 7\ndata: {\"a\":1}\n\n");
        assert_eq!(&frame(8, "x\ny")[..], b"id: 8\ndata: x\ndata: y\n\n");
    }

    #[test]
    fn the_backlog_is_bounded_by_bytes() {
        let mut ring = Ring::new();
        ring.gap();
        for _ in 0..10 {
            let id = ring.next_id;
            ring.next_id += 1;
            ring.push(ev(id, 100), 1000, 350);
        }
        assert_eq!(ring.events.len(), 3);
        assert_eq!(ring.bytes, 300);
    }

    #[test]
    fn filters_parse_or_say_what_is_wrong() {
        let t = TaskId::new();
        let f = Filter::parse(Some(&format!("task_id={t}&types=task,worker&types=task"))).unwrap();
        assert!(f.tasks.contains(&t) && f.kinds.len() == 2);
        assert!(Filter::parse(None).unwrap().kinds.is_empty());
        for bad in [
            "types=tasks",
            "task_id=nope",
            "function_id=1",
            "status=QUEUED",
        ] {
            let Err(ApiError::BadRequest(msg)) = Filter::parse(Some(bad)) else {
                panic!("{bad} accepted")
            };
            assert!(!msg.is_empty());
        }
    }
}
