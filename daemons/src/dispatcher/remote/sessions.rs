//! The dispatcher's sessions: one per ZeroMQ routing identity (one worker socket), each with
//! its [`Link`] and the worker it joined as.
//!
//! A ZeroMQ peer may choose its own routing identity, so the identity only finds the session;
//! what makes a message come from worker W is that it opened under the session that joined as
//! W (with a key, only the holder of that connection's Noise keys can produce such a frame).
//! A session joins with `hello` (a push DEALER, a pull control socket) or, for a pull work
//! socket, with its first `poll` naming a worker that joined; after that it speaks for that
//! worker only.
//!
//! Sessions idle longer than the idle limit are forgotten (a worker beats every heartbeat, so
//! only dead connections and long-idle pull work sockets go); a frame on a forgotten session is
//! answered [`tag::NO_SESSION`] and the worker handshakes again on a fresh socket.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::channel::{self, tag, ChannelError, ChannelKey, Link};

/// Most sessions kept at once; handshakes beyond it are refused until some expire.
const MAX_SESSIONS: usize = 65_536;

#[derive(Debug)]
struct Entry {
    link: Link,
    worker: Option<String>,
    last_used: Instant,
}

/// What became of an incoming frame.
#[derive(Debug)]
pub enum Inbound {
    /// A protocol message, opened; `worker` is who this session joined as.
    Message {
        payload: Vec<u8>,
        worker: Option<String>,
    },
    /// Answer with these bytes as they are (handshake answer or plaintext refusal).
    Answer(Bytes, &'static str),
    /// Dropped (logged by the caller, rate-limited) and not answered.
    Dropped(ChannelError),
}

#[derive(Debug)]
pub struct Sessions {
    key: Option<ChannelKey>,
    map: HashMap<Bytes, Entry>,
    idle: Duration,
}

impl Sessions {
    pub fn new(key: Option<ChannelKey>, idle: Duration) -> Self {
        Self {
            key,
            map: HashMap::new(),
            idle,
        }
    }

    /// Handshakes, opens or refuses one frame from the peer `id`.
    pub fn inbound(&mut self, id: &Bytes, frame: &[u8], now: Instant) -> Inbound {
        let Some(key) = &self.key else {
            let e = self.map.entry(id.clone()).or_insert(Entry {
                link: Link::Plain,
                worker: None,
                last_used: now,
            });
            e.last_used = now;
            return Inbound::Message {
                payload: frame.to_vec(),
                worker: e.worker.clone(),
            };
        };
        match frame.first() {
            Some(&tag::HANDSHAKE) => {
                if self.map.len() >= MAX_SESSIONS && !self.map.contains_key(id) {
                    return Inbound::Dropped(ChannelError::BadFrame);
                }
                match channel::respond(key, frame) {
                    // A new handshake on a known identity replaces its session: only a holder
                    // of the key gets this far.
                    Ok((session, answer)) => {
                        self.map.insert(
                            id.clone(),
                            Entry {
                                link: Link::Sealed(session),
                                worker: None,
                                last_used: now,
                            },
                        );
                        Inbound::Answer(answer, "handshake")
                    }
                    Err(_) => Inbound::Answer(Bytes::from_static(&[tag::REFUSED]), "refusal"),
                }
            }
            Some(&tag::DATA) => match self.map.get_mut(id) {
                Some(e) => match e.link.open(frame) {
                    Ok(payload) => {
                        e.last_used = now;
                        Inbound::Message {
                            payload,
                            worker: e.worker.clone(),
                        }
                    }
                    Err(err) => Inbound::Dropped(err),
                },
                None => Inbound::Answer(Bytes::from_static(&[tag::NO_SESSION]), "no session"),
            },
            // An old-style (or keyless) worker: it learns why, in words it can read.
            Some(b'{') => Inbound::Answer(
                Bytes::from(faas_protocol::wire::encode(
                    &faas_protocol::wire::ToWorker::Refused {
                        reason: "this dispatcher requires the worker key: start the worker with --worker-key-file".into(),
                        rejoin: false,
                    },
                )),
                "plaintext refusal",
            ),
            _ => Inbound::Dropped(ChannelError::BadFrame),
        }
    }

    /// Seals a message for the peer `id`; `None` when it has no session (any more).
    pub fn outbound(&mut self, id: &Bytes, msg: Vec<u8>) -> Option<Bytes> {
        match self.map.get_mut(id) {
            Some(e) => Some(e.link.seal(msg)),
            None if self.key.is_none() => Some(Bytes::from(msg)),
            None => None,
        }
    }

    /// Records that the session `id` now speaks for `worker`.
    pub fn join(&mut self, id: &Bytes, worker: &str) {
        if let Some(e) = self.map.get_mut(id) {
            e.worker = Some(worker.to_owned());
        }
    }

    /// Forgets sessions idle past the limit.
    pub fn expire(&mut self, now: Instant) {
        let idle = self.idle;
        self.map
            .retain(|_, e| now.saturating_duration_since(e.last_used) <= idle);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Initiator;
    use faas_protocol::worker_key::WorkerKey;

    #[test]
    fn a_session_opens_only_its_own_frames_and_joins_once_told() {
        let key = ChannelKey::derive(&WorkerKey::generate());
        let mut s = Sessions::new(Some(key.clone()), Duration::from_secs(60));
        let now = Instant::now();
        let id = Bytes::from_static(b"peer-1");
        let (init, first) = Initiator::start(&key);
        let Inbound::Answer(answer, _) = s.inbound(&id, &first, now) else {
            panic!("a handshake is answered")
        };
        let mut worker = init.finish(&answer).unwrap();
        s.join(&id, "w1");
        match s.inbound(&id, &worker.seal(b"{}"), now) {
            Inbound::Message { payload, worker } => {
                assert_eq!(payload, b"{}");
                assert_eq!(worker.as_deref(), Some("w1"));
            }
            other => panic!("{other:?}"),
        }
        // Another peer cannot use w1's frames, and a frame on an unknown identity is told to
        // handshake again.
        let other = Bytes::from_static(b"peer-2");
        assert!(matches!(
            s.inbound(&other, &worker.seal(b"{}"), now),
            Inbound::Answer(b, _) if b[..] == [tag::NO_SESSION]
        ));
        assert!(matches!(
            s.inbound(&other, br#"{"v":2,"type":"hello"}"#, now),
            Inbound::Answer(b, _) if b.starts_with(b"{")
        ));
        let wrong = ChannelKey::derive(&WorkerKey::generate());
        assert!(matches!(
            s.inbound(&other, &Initiator::start(&wrong).1, now),
            Inbound::Answer(b, _) if b[..] == [tag::REFUSED]
        ));
        assert_eq!(s.len(), 1, "failed handshakes keep nothing");
        s.expire(now + Duration::from_secs(61));
        assert_eq!(s.len(), 0);
    }
}
