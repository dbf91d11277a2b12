//! The worker channel's security layer: the shared worker key, the Noise handshake and the
//! sealing of every frame between dispatcher and worker. Push and pull, dispatcher and worker
//! all go through this one seam.
//!
//! With a key (`--worker-key-file`), each ZeroMQ connection (a push worker's DEALER, each of a
//! pull worker's REQ sockets) starts with a `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s` handshake:
//! the worker sends the first message, the dispatcher answers. The pre-shared key is derived
//! from the key file, so each side learns that the other holds the key before either sends a
//! protocol message, and the ephemeral Diffie-Hellman gives every connection fresh keys
//! (forward secrecy). After it every frame is a Noise transport message: encrypted,
//! authenticated and in order (a replayed, reordered or altered frame fails to open).
//!
//! Frames start with a one-byte tag: [`tag::HANDSHAKE`], [`tag::DATA`], and two plaintext
//! answers of the dispatcher, [`tag::NO_SESSION`] ("handshake again", e.g. after a restart)
//! and [`tag::REFUSED`] (the handshake failed: another key). Those two carry nothing secret;
//! someone on the path could forge them, which only cuts a connection they could cut anyway.
//! A DATA frame is one or more Noise messages back to back (a Noise message holds at most
//! 64 KiB, a task message may be larger): every chunk but the last is exactly
//! 65,535 bytes (Noise's limit).
//!
//! Without a key the channel is [`Link::Plain`]: frames are the bare JSON of `wire`, as before
//! keys existed. The dispatcher allows that on loopback only (or with
//! `--insecure-no-worker-key`).

use std::path::Path;

use bytes::Bytes;
use faas_protocol::worker_key::WorkerKey;

/// Frame tags (first byte of every frame when a key is configured).
pub mod tag {
    pub const HANDSHAKE: u8 = 1;
    pub const DATA: u8 = 2;
    /// Dispatcher → worker: this connection has no session here; handshake again.
    pub const NO_SESSION: u8 = 3;
    /// Dispatcher → worker: the handshake failed (the keys differ).
    pub const REFUSED: u8 = 4;
}

const PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// Binds the handshake to this protocol: a key reused elsewhere cannot be replayed here.
const PROLOGUE: &[u8] = b"faas worker channel v1";
/// Noise's limit on one message, and its authentication tag (the spec's constants; snow keeps
/// its own private).
const MAXMSGLEN: usize = 65535;
const TAGLEN: usize = 16;
/// Largest plaintext in one Noise message.
const CHUNK: usize = MAXMSGLEN - TAGLEN;

/// The pre-shared key of the handshake, derived from a worker key file.
#[derive(Clone)]
pub struct ChannelKey([u8; 32]);

impl std::fmt::Debug for ChannelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelKey(redacted)")
    }
}

impl ChannelKey {
    /// BLAKE2s over a label and the secret: a key file of any length ≥ 32 bytes gives the
    /// 32-byte PSK Noise needs, and the PSK is not the file's bytes themselves.
    pub fn derive(key: &WorkerKey) -> Self {
        use blake2::{Blake2s256, Digest};
        let digest = Blake2s256::new()
            .chain_update(b"faas worker key psk v1\0")
            .chain_update(key.secret())
            .finalize();
        Self(digest.into())
    }

    /// Reads and derives the key of a key file. A file others can read is used, with a warning.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the worker key file {}: {e}", path.display()))?;
        let key = WorkerKey::parse(&text)
            .map_err(|e| format!("the worker key file {} is not usable: {e}", path.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(event = "worker_key_permissions", path = %path.display(), "the worker key file can be read by other users; `chmod 600` it");
                }
            }
        }
        Ok(Self::derive(&key))
    }

    fn builder(&self) -> snow::Builder<'_> {
        snow::Builder::new(PATTERN.parse().expect("a valid Noise pattern"))
            .prologue(PROLOGUE)
            .expect("a prologue is accepted")
            .psk(0, &self.0)
            .expect("psk position 0 exists in NNpsk0")
    }
}

/// Why a frame or handshake failed. Each message says what the operator can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("the dispatcher refused the handshake: its worker key differs from this worker's (--worker-key-file)")]
    Refused,
    #[error(
        "the dispatcher answered in plaintext: it runs without a worker key, this worker has one"
    )]
    PlaintextPeer,
    #[error("the dispatcher has no session for this connection (it restarted or expired it)")]
    NoSession,
    #[error("the handshake failed: the peer does not hold the same worker key")]
    Handshake,
    #[error("a frame failed to decrypt or authenticate")]
    Decrypt,
    #[error("an empty or unknown frame")]
    BadFrame,
    #[error("no answer to the handshake")]
    Unanswered,
}

/// One connection's encrypted session: transport keys and nonces of both directions.
pub struct Session(Box<snow::TransportState>);

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session")
    }
}

impl Session {
    /// Encrypts one message into a DATA frame.
    pub fn seal(&mut self, plaintext: &[u8]) -> Bytes {
        let chunks = plaintext.len().div_ceil(CHUNK).max(1);
        let mut out = vec![0u8; 1 + plaintext.len() + chunks * TAGLEN];
        out[0] = tag::DATA;
        let mut at = 1;
        let mut pieces = plaintext.chunks(CHUNK).peekable();
        if pieces.peek().is_none() {
            at += self.0.write_message(&[], &mut out[at..]).expect("fits");
        }
        for piece in pieces {
            at += self
                .0
                .write_message(piece, &mut out[at..])
                .expect("a chunk fits one Noise message");
        }
        out.truncate(at);
        Bytes::from(out)
    }

    /// Decrypts a DATA frame. A frame that fails leaves the session as it was, so a forged
    /// frame cannot desynchronise a live connection.
    pub fn open(&mut self, frame: &[u8]) -> Result<Vec<u8>, ChannelError> {
        match frame.first() {
            Some(&tag::DATA) => {}
            Some(&tag::NO_SESSION) => return Err(ChannelError::NoSession),
            _ => return Err(ChannelError::BadFrame),
        }
        let body = &frame[1..];
        if body.len() < TAGLEN {
            return Err(ChannelError::Decrypt);
        }
        let nonce = self.0.receiving_nonce();
        let mut out = vec![0u8; body.len()];
        let mut len = 0;
        for piece in body.chunks(MAXMSGLEN) {
            match self.0.read_message(piece, &mut out[len..]) {
                Ok(n) => len += n,
                Err(_) => {
                    self.0.set_receiving_nonce(nonce);
                    return Err(ChannelError::Decrypt);
                }
            }
        }
        out.truncate(len);
        Ok(out)
    }
}

/// A worker's half-done handshake, waiting for the dispatcher's answer.
pub struct Initiator(Box<snow::HandshakeState>);

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Initiator")
    }
}

impl Initiator {
    /// Starts a handshake; returns the first frame to send.
    pub fn start(key: &ChannelKey) -> (Self, Bytes) {
        let mut hs = key.builder().build_initiator().expect("valid parameters");
        let mut buf = vec![0u8; 256];
        buf[0] = tag::HANDSHAKE;
        let n = hs.write_message(&[], &mut buf[1..]).expect("fits");
        buf.truncate(1 + n);
        (Self(Box::new(hs)), Bytes::from(buf))
    }

    /// Reads the dispatcher's answer; on success the connection has its session.
    pub fn finish(mut self, reply: &[u8]) -> Result<Session, ChannelError> {
        match reply.first() {
            Some(&tag::HANDSHAKE) => {}
            Some(&tag::REFUSED) => return Err(ChannelError::Refused),
            Some(b'{') => return Err(ChannelError::PlaintextPeer),
            _ => return Err(ChannelError::BadFrame),
        }
        let mut scratch = vec![0u8; reply.len()];
        self.0
            .read_message(&reply[1..], &mut scratch)
            .map_err(|_| ChannelError::Handshake)?;
        let transport = self
            .0
            .into_transport_mode()
            .map_err(|_| ChannelError::Handshake)?;
        Ok(Session(Box::new(transport)))
    }
}

/// The dispatcher's side: answers a worker's first handshake frame. Fails, without any
/// state kept, when the worker does not hold the key.
pub fn respond(key: &ChannelKey, frame: &[u8]) -> Result<(Session, Bytes), ChannelError> {
    if frame.first() != Some(&tag::HANDSHAKE) || frame.len() > MAXMSGLEN {
        return Err(ChannelError::BadFrame);
    }
    let mut hs = key.builder().build_responder().expect("valid parameters");
    let mut scratch = vec![0u8; frame.len()];
    hs.read_message(&frame[1..], &mut scratch)
        .map_err(|_| ChannelError::Handshake)?;
    let mut buf = vec![0u8; 256];
    buf[0] = tag::HANDSHAKE;
    let n = hs.write_message(&[], &mut buf[1..]).expect("fits");
    buf.truncate(1 + n);
    let transport = hs
        .into_transport_mode()
        .map_err(|_| ChannelError::Handshake)?;
    Ok((Session(Box::new(transport)), Bytes::from(buf)))
}

/// The worker's side of a connection's start, over a DEALER or a REQ socket alike: with a key,
/// the handshake (first frame out, the answer in, within `timeout`); without one, nothing.
pub async fn connect<S>(
    socket: &mut S,
    key: Option<&ChannelKey>,
    timeout: std::time::Duration,
) -> Result<Link, ChannelError>
where
    S: zeromq::SocketSend + zeromq::SocketRecv,
{
    let Some(key) = key else {
        return Ok(Link::Plain);
    };
    let (initiator, first) = Initiator::start(key);
    socket
        .send(zeromq::ZmqMessage::from(first))
        .await
        .map_err(|_| ChannelError::Unanswered)?;
    let answer = tokio::time::timeout(timeout, socket.recv())
        .await
        .map_err(|_| ChannelError::Unanswered)?
        .map_err(|_| ChannelError::Unanswered)?;
    let answer = answer.into_vec().pop().ok_or(ChannelError::BadFrame)?;
    initiator.finish(&answer).map(Link::Sealed)
}

/// A connection's framing: bare JSON without a key, Noise transport messages with one.
#[derive(Debug)]
pub enum Link {
    Plain,
    Sealed(Session),
}

impl Link {
    pub fn seal(&mut self, msg: Vec<u8>) -> Bytes {
        match self {
            Link::Plain => Bytes::from(msg),
            Link::Sealed(s) => s.seal(&msg),
        }
    }

    pub fn open(&mut self, frame: &[u8]) -> Result<Vec<u8>, ChannelError> {
        match self {
            Link::Plain => Ok(frame.to_vec()),
            Link::Sealed(s) => s.open(frame),
        }
    }
}

/// Logs at most once per interval, counting what it held back, so that a peer sending
/// garbage cannot flood the log.
#[derive(Debug, Default)]
pub struct RateLimit {
    last: Option<std::time::Instant>,
    held_back: u64,
}

impl RateLimit {
    /// Whether to log now; returns how many were held back since the last line.
    pub fn allow(&mut self, every: std::time::Duration) -> Option<u64> {
        let now = std::time::Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < every) {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a: &ChannelKey, b: &ChannelKey) -> Result<(Session, Session), ChannelError> {
        let (init, first) = Initiator::start(a);
        let (responder, answer) = respond(b, &first)?;
        Ok((init.finish(&answer)?, responder))
    }

    #[test]
    fn the_same_key_gives_a_session_that_carries_large_messages_both_ways() {
        let k = ChannelKey::derive(&WorkerKey::generate());
        let (mut w, mut d) = pair(&k, &k).unwrap();
        for len in [0, 5, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert_eq!(d.open(&w.seal(&msg)).unwrap(), msg);
            assert_eq!(w.open(&d.seal(&msg)).unwrap(), msg);
        }
    }

    #[test]
    fn another_key_fails_the_handshake_and_frames_cannot_be_forged_or_replayed() {
        let k = ChannelKey::derive(&WorkerKey::generate());
        let other = ChannelKey::derive(&WorkerKey::generate());
        assert_eq!(pair(&other, &k).unwrap_err(), ChannelError::Handshake);
        let (mut w, mut d) = pair(&k, &k).unwrap();
        let frame = w.seal(b"hello");
        let mut altered = frame.to_vec();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(d.open(&altered), Err(ChannelError::Decrypt));
        assert_eq!(d.open(b"{\"v\":2}"), Err(ChannelError::BadFrame));
        assert_eq!(
            d.open(&frame).unwrap(),
            b"hello",
            "a failed frame leaves the session"
        );
        assert_eq!(d.open(&frame), Err(ChannelError::Decrypt), "no replay");
        assert_eq!(
            Initiator::start(&k).0.finish(&[tag::REFUSED]).unwrap_err(),
            ChannelError::Refused
        );
    }
}
