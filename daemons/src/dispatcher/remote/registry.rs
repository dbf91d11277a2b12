//! The dispatcher's view of its remote workers: capacity, held polls, tasks in flight.
//!
//! Pure state with no I/O, so the rules (who gets the next task, what a lost worker takes
//! with it) are tested without sockets. Envelopes are the ZeroMQ routing frames of a peer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use faas_protocol::model::{WorkerInfo, WorkerMode};
use faas_protocol::{FunctionId, TaskId};
use tokio::sync::oneshot;

use crate::dispatcher::RunResult;

/// Routing frames that address one peer socket (identity, and the empty delimiter for REQ).
pub type Envelope = Vec<Bytes>;

#[derive(Debug)]
struct Remote {
    info: WorkerInfo,
    /// Push: where tasks go (the worker's DEALER).
    route: Envelope,
    /// Push: free slots not yet promised to a task.
    credit: u32,
    /// Pull: polls held until there is a task or the long-poll ends.
    polls: VecDeque<(Envelope, Instant)>,
    /// Said `leaving`, or an operator drains it: gets no new tasks.
    leaving: bool,
    /// An operator drains it (`POST /workers/{id}/drain`): its polls are answered `drain`.
    drain_asked: bool,
    /// Pull: `drain` not yet given as the answer to a control request.
    drain_unsent: bool,
    last_seen: Instant,
    /// Tasks sent and awaited, with the lease each was sent under.
    inflight: HashMap<TaskId, (u32, oneshot::Sender<RunResult>)>,
    /// Functions whose body this worker has been sent.
    known: HashSet<FunctionId>,
    /// Pull: cancels waiting for the worker's next control request (a REQ socket takes
    /// nothing unasked).
    cancels: VecDeque<TaskId>,
}

/// A worker taken out of the registry: its entry, and its held polls to answer `no_work`.
#[derive(Debug)]
pub struct Gone {
    pub info: WorkerInfo,
    pub polls: Vec<Envelope>,
}

/// A worker that started draining: its entry (now saying so) and its held polls to answer.
#[derive(Debug)]
pub struct Drained {
    pub info: WorkerInfo,
    pub polls: Vec<Envelope>,
    /// It was not draining before: announce it.
    pub first: bool,
    /// Push: where to send `drain` now. Pull: `None`, it is given with the next answer.
    pub send: Option<Envelope>,
}

/// How a cancel reaches the worker that runs the task.
#[derive(Debug, PartialEq, Eq)]
pub enum CancelRoute {
    /// Push: send it now, to this DEALER.
    Send(Envelope),
    /// Pull: queued; it answers the worker's next control request.
    Queued,
}

/// Where a promised task goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub worker: String,
    pub route: Envelope,
    /// Pull: when the poll arrived; it keeps its age if given back, so it still expires.
    pub since: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Registry {
    workers: HashMap<String, Remote>,
}

impl Registry {
    /// Workers joined now.
    pub fn online(&self) -> usize {
        self.workers.len()
    }

    /// The mode a joined worker said hello with.
    pub fn mode(&self, worker: &str) -> Option<WorkerMode> {
        self.workers.get(worker).map(|w| w.info.mode)
    }

    /// Whether a joined worker said `leaving`; `None` for an unknown worker.
    pub fn is_leaving(&self, worker: &str) -> Option<bool> {
        self.workers.get(worker).map(|w| w.leaving)
    }

    /// The worker was heard from (any message): it is not lost. False for an unknown worker.
    pub fn seen(&mut self, worker: &str, now: Instant) -> bool {
        match self.workers.get_mut(worker) {
            Some(w) => {
                w.last_seen = now;
                true
            }
            None => false,
        }
    }

    /// A heartbeat: seen now, and its registry entry says so. False for an unknown worker.
    pub fn heartbeat(&mut self, worker: &str, now: Instant, now_ms: u64) -> bool {
        match self.workers.get_mut(worker) {
            Some(w) => {
                w.last_seen = now;
                w.info.last_heartbeat = now_ms;
                true
            }
            None => false,
        }
    }

    /// Tasks a worker runs for this dispatcher now.
    pub fn running(&self, worker: &str) -> usize {
        self.workers.get(worker).map_or(0, |w| w.inflight.len())
    }

    /// The registry entries of every joined worker.
    pub fn infos(&self) -> Vec<WorkerInfo> {
        self.workers.values().map(|w| w.info.clone()).collect()
    }

    /// Adds a worker, or refreshes one that reconnected (its tasks in flight stay).
    /// Returns true when the worker is new.
    pub fn hello(&mut self, info: WorkerInfo, route: Envelope, now: Instant) -> bool {
        match self.workers.get_mut(&info.id) {
            Some(w) => {
                // Tasks it still runs count once, whether it or this side reports them.
                let busy = info.busy.max(w.inflight.len() as u32);
                w.route = route;
                w.credit = info.slots.saturating_sub(busy);
                w.info.slots = info.slots;
                w.last_seen = now;
                // A drained worker that reconnects is still draining.
                w.leaving = w.drain_asked;
                w.info.draining = w.drain_asked;
                if w.leaving {
                    w.credit = 0;
                }
                false
            }
            None => {
                self.workers.insert(
                    info.id.clone(),
                    Remote {
                        credit: info.slots.saturating_sub(info.busy),
                        info,
                        route,
                        polls: VecDeque::new(),
                        leaving: false,
                        drain_asked: false,
                        drain_unsent: false,
                        last_seen: now,
                        inflight: HashMap::new(),
                        known: HashSet::new(),
                        cancels: VecDeque::new(),
                    },
                );
                true
            }
        }
    }

    /// Promises the next task to the worker with the most free capacity (push) or the oldest
    /// held poll (pull).
    pub fn claim(&mut self) -> Option<Claim> {
        let now = Instant::now();
        let (id, w) = self
            .workers
            .iter_mut()
            .filter(|(_, w)| !w.leaving)
            .filter(|(_, w)| match w.info.mode {
                WorkerMode::Pull => !w.polls.is_empty(),
                _ => w.credit > 0,
            })
            .max_by_key(|(_, w)| match w.info.mode {
                // The longest-held poll wins (its age, measured from one `now`).
                WorkerMode::Pull => now.saturating_duration_since(w.polls[0].1).as_nanos() as u64,
                _ => w.credit as u64,
            })?;
        let (route, since) = match w.info.mode {
            WorkerMode::Pull => {
                let (route, since) = w.polls.pop_front().expect("filtered non-empty");
                (route, Some(since))
            }
            _ => {
                w.credit -= 1;
                (w.route.clone(), None)
            }
        };
        Some(Claim {
            worker: id.clone(),
            route,
            since,
        })
    }

    /// Gives back a claim that carried no task. Returns a pull poll that must be answered
    /// `no_work` now, because its worker left or is leaving and will not be given tasks.
    pub fn unclaim(&mut self, claim: Claim) -> Option<Envelope> {
        let Some(w) = self.workers.get_mut(&claim.worker) else {
            return claim.since.map(|_| claim.route);
        };
        match w.info.mode {
            WorkerMode::Pull if w.leaving => Some(claim.route),
            WorkerMode::Pull => {
                w.polls
                    .push_front((claim.route, claim.since.unwrap_or_else(Instant::now)));
                None
            }
            _ => {
                if !w.leaving {
                    w.credit += 1;
                }
                None
            }
        }
    }

    /// A pull worker asks for work. It has one work socket, so a new poll means any older
    /// one it still has here came from a socket it has since rebuilt: those are dropped.
    /// Returns false for an unknown worker.
    pub fn poll(&mut self, worker: &str, route: Envelope, now: Instant) -> bool {
        match self.workers.get_mut(worker) {
            Some(w) => {
                w.last_seen = now;
                w.polls.clear();
                w.polls.push_back((route, now));
                true
            }
            None => false,
        }
    }

    /// Records a task sent under `claim` with its lease. Returns whether the body of `function`
    /// must go along, or `None` when the worker is gone.
    pub fn send(
        &mut self,
        claim: &Claim,
        task: TaskId,
        lease: u32,
        function: FunctionId,
        done: oneshot::Sender<RunResult>,
    ) -> Option<bool> {
        let w = self.workers.get_mut(&claim.worker)?;
        w.inflight.insert(task, (lease, done));
        w.info.busy = w.inflight.len() as u32;
        Some(w.known.insert(function))
    }

    /// A result arrived. Returns the waiting run's channel, if the task is still awaited under
    /// that lease (a result of an earlier attempt of the same task does not answer this one).
    /// A result nobody awaits (a task from before this worker's reconnect, which its hello
    /// counted as busy) frees a slot all the same.
    pub fn result(
        &mut self,
        worker: &str,
        task: TaskId,
        lease: u32,
    ) -> Option<oneshot::Sender<RunResult>> {
        let w = self.workers.get_mut(worker)?;
        let done = match w.inflight.get(&task) {
            Some((l, _)) if *l == lease => w.inflight.remove(&task).map(|(_, done)| done),
            _ => None,
        };
        w.info.busy = w.inflight.len() as u32;
        w.info.tasks_done += 1;
        w.cancels.retain(|t| *t != task);
        if w.info.mode != WorkerMode::Pull && !w.leaving {
            let most = w.info.slots.saturating_sub(w.info.busy);
            w.credit = (w.credit + 1).min(most);
        }
        done
    }

    /// A cancel for `task`: where it goes, or `None` when no worker here runs it.
    pub fn cancel(&mut self, task: TaskId) -> Option<CancelRoute> {
        let w = self
            .workers
            .values_mut()
            .find(|w| w.inflight.contains_key(&task))?;
        match w.info.mode {
            WorkerMode::Pull => {
                if !w.cancels.contains(&task) {
                    w.cancels.push_back(task);
                }
                Some(CancelRoute::Queued)
            }
            _ => Some(CancelRoute::Send(w.route.clone())),
        }
    }

    /// Whether an operator drains this worker.
    pub fn drain_asked(&self, worker: &str) -> bool {
        self.workers.get(worker).is_some_and(|w| w.drain_asked)
    }

    /// Whether a pull worker is still to be told `drain`; true once per drain.
    pub fn take_drain(&mut self, worker: &str) -> bool {
        self.workers
            .get_mut(worker)
            .is_some_and(|w| std::mem::take(&mut w.drain_unsent))
    }

    /// The next cancel waiting for a pull worker, if any.
    pub fn take_cancel(&mut self, worker: &str) -> Option<TaskId> {
        self.workers.get_mut(worker)?.cancels.pop_front()
    }

    /// Forgets a task whose deadline passed.
    pub fn abandon(&mut self, worker: &str, task: TaskId) {
        if let Some(w) = self.workers.get_mut(worker) {
            w.inflight.remove(&task);
            w.info.busy = w.inflight.len() as u32;
        }
    }

    /// A task whose message never left: forgets it, and that the worker knows the function
    /// (this message may have been the one carrying its body).
    pub fn unsent(&mut self, worker: &str, task: TaskId, function: FunctionId) {
        self.abandon(worker, task);
        if let Some(w) = self.workers.get_mut(worker) {
            w.known.remove(&function);
        }
    }

    /// The worker said `leaving` (its own SIGTERM, or the `drain` it was sent): no new tasks;
    /// its held polls are to be answered `no_work`. `None` for an unknown worker.
    pub fn leaving(&mut self, worker: &str) -> Option<Drained> {
        let w = self.workers.get_mut(worker)?;
        let first = !w.info.draining;
        w.leaving = true;
        w.info.draining = true;
        w.credit = 0;
        Some(Drained {
            info: w.info.clone(),
            polls: w.polls.drain(..).map(|(e, _)| e).collect(),
            first,
            send: None,
        })
    }

    /// An operator drains the worker: no new tasks, as for `leaving`, and the worker is to be
    /// told `drain` (push: now, at `send`; pull: with its next answer). `None` when the worker
    /// is not joined here.
    pub fn drain(&mut self, worker: &str) -> Option<Drained> {
        let mut drained = self.leaving(worker)?;
        let w = self.workers.get_mut(worker)?;
        w.drain_asked = true;
        match w.info.mode {
            WorkerMode::Pull => w.drain_unsent = true,
            _ => drained.send = Some(w.route.clone()),
        }
        Some(drained)
    }

    /// Removes a worker; its tasks in flight are lost (the caller re-queues them).
    pub fn remove(&mut self, worker: &str, why: &str) -> Option<Gone> {
        let mut w = self.workers.remove(worker)?;
        for (_, (_, done)) in w.inflight.drain() {
            let _ = done.send(RunResult::Lost(why.to_owned()));
        }
        Some(Gone {
            info: w.info,
            polls: w.polls.into_iter().map(|(e, _)| e).collect(),
        })
    }

    /// Workers silent for longer than `limit`.
    pub fn silent(&self, limit: Duration) -> Vec<String> {
        self.workers
            .iter()
            .filter(|(_, w)| w.last_seen.elapsed() > limit)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Held polls older than `long_poll`, removed, to be answered `no_work`.
    pub fn expired_polls(&mut self, long_poll: Duration) -> Vec<Envelope> {
        let mut out = Vec::new();
        for w in self.workers.values_mut() {
            while w
                .polls
                .front()
                .is_some_and(|(_, t)| t.elapsed() >= long_poll)
            {
                out.push(w.polls.pop_front().expect("checked").0);
            }
        }
        out
    }

    /// Free capacity right now (push credit plus held polls).
    pub fn free(&self) -> usize {
        self.workers
            .values()
            .filter(|w| !w.leaving)
            .map(|w| match w.info.mode {
                WorkerMode::Pull => w.polls.len(),
                _ => w.credit as usize,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, mode: WorkerMode, slots: u32) -> WorkerInfo {
        WorkerInfo {
            id: id.into(),
            mode,
            host: "h".into(),
            pid: 1,
            dispatcher: "d".into(),
            slots,
            busy: 0,
            tasks_done: 0,
            joined_at: 0,
            last_heartbeat: 0,
            draining: false,
        }
    }

    fn env(id: &str) -> Envelope {
        vec![Bytes::from(id.to_owned())]
    }

    #[test]
    fn push_claims_balance_across_workers_and_respect_credit() {
        let mut r = Registry::default();
        let now = Instant::now();
        r.hello(info("a", WorkerMode::Push, 2), env("a"), now);
        r.hello(info("b", WorkerMode::Push, 1), env("b"), now);
        let first = r.claim().unwrap();
        assert_eq!(first.worker, "a");
        let second = r.claim().unwrap();
        let third = r.claim().unwrap();
        let mut got = vec![second.worker.clone(), third.worker.clone()];
        got.sort();
        assert_eq!(got, ["a", "b"]);
        assert!(r.claim().is_none(), "no credit left");
        r.unclaim(third);
        assert_eq!(r.free(), 1);
    }

    #[test]
    fn a_result_returns_credit_and_a_lost_worker_loses_its_tasks() {
        let mut r = Registry::default();
        r.hello(info("a", WorkerMode::Push, 2), env("a"), Instant::now());
        let (first, second) = (r.claim().unwrap(), r.claim().unwrap());
        let task = TaskId::new();
        let f = FunctionId::new();
        let (tx, mut rx) = oneshot::channel();
        assert_eq!(r.send(&first, task, 1, f, tx), Some(true));
        let (tx2, _rx2) = oneshot::channel();
        let again = r.send(&second, TaskId::new(), 1, f, tx2);
        assert_eq!(again, Some(false), "body sent once");
        assert_eq!(r.workers["a"].credit, 0);
        assert!(r.result("a", task, 2).is_none(), "another attempt's result");
        assert!(r.result("a", task, 1).is_some());
        assert_eq!(r.workers["a"].credit, 1);
        assert_eq!(r.workers["a"].info.tasks_done, 2);
        r.remove("a", "gone");
        assert!(
            rx.try_recv().is_err(),
            "the finished task's channel was taken by result()"
        );
    }

    #[test]
    fn a_result_from_before_a_reconnect_frees_the_slot_it_held() {
        let mut r = Registry::default();
        let mut busy = info("a", WorkerMode::Push, 1);
        busy.busy = 1;
        r.hello(busy, env("a"), Instant::now());
        assert!(r.claim().is_none(), "its one slot runs an earlier task");
        assert!(r.result("a", TaskId::new(), 1).is_none());
        assert!(r.claim().is_some(), "the slot is free again");
        assert!(r.result("a", TaskId::new(), 1).is_none());
        assert_eq!(r.workers["a"].credit, 1, "never more credit than slots");
    }

    #[test]
    fn pull_claims_take_the_oldest_poll_and_expire() {
        let mut r = Registry::default();
        let now = Instant::now();
        r.hello(info("p", WorkerMode::Pull, 4), env("p"), now);
        assert!(r.claim().is_none(), "no poll held yet");
        r.workers
            .get_mut("p")
            .unwrap()
            .polls
            .push_back((env("poll1"), now));
        let c = r.claim().unwrap();
        assert_eq!(c.route, env("poll1"));
        r.unclaim(c);
        assert_eq!(r.expired_polls(Duration::ZERO).len(), 1);
        assert_eq!(r.free(), 0);
    }

    #[test]
    fn pull_hands_each_task_to_the_oldest_held_poll() {
        let mut r = Registry::default();
        let now = Instant::now();
        let ago = |ms| now.checked_sub(Duration::from_millis(ms)).unwrap();
        // Polls arrive newest-last but in a worker order that is neither age nor name order.
        for (name, age) in [("b", 300), ("d", 100), ("a", 400), ("c", 200)] {
            r.hello(info(name, WorkerMode::Pull, 1), env(name), ago(1_000));
            r.poll(name, env(&format!("poll-{name}")), ago(age));
        }
        let order: Vec<String> = std::iter::from_fn(|| r.claim().map(|c| c.worker)).collect();
        assert_eq!(order, ["a", "b", "c", "d"], "oldest poll first");
    }

    #[test]
    fn leaving_workers_get_nothing_and_removal_fails_their_tasks() {
        let mut r = Registry::default();
        r.hello(info("a", WorkerMode::Push, 2), env("a"), Instant::now());
        let claim = r.claim().unwrap();
        let (tx, mut rx) = oneshot::channel();
        r.send(&claim, TaskId::new(), 1, FunctionId::new(), tx);
        r.leaving("a");
        assert!(r.claim().is_none());
        r.remove("a", "worker lost");
        assert!(matches!(rx.try_recv(), Ok(RunResult::Lost(why)) if why == "worker lost"));
    }

    #[test]
    fn a_poll_given_back_by_a_leaving_pull_worker_is_answered_at_once() {
        let mut r = Registry::default();
        let now = Instant::now();
        r.hello(info("p", WorkerMode::Pull, 1), env("p"), now);
        r.poll("p", env("poll1"), now);
        let c = r.claim().unwrap();
        r.leaving("p");
        assert_eq!(
            r.unclaim(c),
            Some(env("poll1")),
            "not held for a worker that leaves"
        );
        assert_eq!(r.free(), 0);
        r.poll("p", env("poll2"), now);
        let c = r.claim();
        assert!(c.is_none(), "a leaving worker is given nothing");
    }

    #[test]
    fn a_drained_worker_gets_no_task_and_is_told_once() {
        let mut r = Registry::default();
        let now = Instant::now();
        r.hello(info("a", WorkerMode::Push, 2), env("a"), now);
        r.hello(info("p", WorkerMode::Pull, 1), env("p"), now);
        r.poll("p", env("poll"), now);
        assert!(r.drain("nobody").is_none());
        let a = r.drain("a").expect("joined");
        assert!(a.first && a.info.draining);
        assert_eq!(a.send, Some(env("a")), "push: told at once");
        let p = r.drain("p").expect("joined");
        assert_eq!(p.polls, vec![env("poll")], "its held poll is answered");
        assert_eq!(p.send, None, "pull: told with its next answer");
        assert!(r.claim().is_none(), "neither gets a task");
        assert!(r.take_drain("p") && !r.take_drain("p"), "told once");
        assert!(!r.take_drain("a"));
        assert!(!r.drain("a").unwrap().first, "announced once");
        assert!(!r.leaving("a").unwrap().first);
        // A reconnect does not undo the drain.
        r.hello(info("a", WorkerMode::Push, 2), env("a2"), now);
        assert!(r.claim().is_none() && r.drain_asked("a"));
        assert!(r.infos().iter().all(|i| i.draining));
    }

    #[test]
    fn a_cancel_goes_to_the_worker_that_runs_the_task() {
        let mut r = Registry::default();
        let now = Instant::now();
        r.hello(info("a", WorkerMode::Push, 1), env("a"), now);
        r.hello(info("p", WorkerMode::Pull, 1), env("p"), now);
        r.poll("p", env("poll"), now);
        let (push_task, pull_task) = (TaskId::new(), TaskId::new());
        let mut waiting = Vec::new();
        while let Some(c) = r.claim() {
            let task = if c.worker == "a" {
                push_task
            } else {
                pull_task
            };
            let (tx, rx) = oneshot::channel();
            waiting.push(rx);
            r.send(&c, task, 1, FunctionId::new(), tx);
        }
        assert_eq!(r.cancel(TaskId::new()), None, "nobody runs it");
        assert_eq!(r.cancel(push_task), Some(CancelRoute::Send(env("a"))));
        assert_eq!(r.cancel(pull_task), Some(CancelRoute::Queued));
        assert_eq!(r.cancel(pull_task), Some(CancelRoute::Queued));
        assert_eq!(r.take_cancel("p"), Some(pull_task), "queued once");
        assert_eq!(r.take_cancel("p"), None);
        r.cancel(pull_task);
        r.result("p", pull_task, 1);
        assert_eq!(r.take_cancel("p"), None, "a finished task needs no cancel");
    }

    #[test]
    fn an_unsent_task_forgets_that_the_worker_has_the_body() {
        let mut r = Registry::default();
        r.hello(info("a", WorkerMode::Push, 2), env("a"), Instant::now());
        let f = FunctionId::new();
        let (c1, c2) = (r.claim().unwrap(), r.claim().unwrap());
        let (tx, _rx) = oneshot::channel();
        let task = TaskId::new();
        assert_eq!(r.send(&c1, task, 1, f, tx), Some(true));
        r.unsent("a", task, f);
        let (tx, _rx) = oneshot::channel();
        assert_eq!(
            r.send(&c2, TaskId::new(), 1, f, tx),
            Some(true),
            "the body goes again"
        );
    }
}
