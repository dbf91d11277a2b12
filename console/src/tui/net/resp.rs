//! A pub/sub reader of our own for the events subscription, over plain TCP (a TLS or Unix-socket
//! Redis goes through redis-rs). The subscription is the console's hot path, three messages per
//! task of the whole platform, and redis-rs builds a `Value` tree for each through a general
//! parser combinator; here the RESP2 frames are read in place from one buffer and each payload
//! is handed on as a slice, with no copy and no allocation per message.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A RESP2 value, borrowed from the read buffer.
#[derive(Debug, PartialEq)]
pub enum Frame<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Int(i64),
    Bulk(Option<&'a [u8]>),
    Array(Vec<Frame<'a>>),
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad reply from redis: {what}"),
    )
}

/// The first frame in `buf` and its length, `None` while it is incomplete.
pub fn frame(buf: &[u8]) -> io::Result<Option<(Frame<'_>, usize)>> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let (kind, line) = (buf.first().copied(), &buf[1..end]);
    let next = end + 2;
    let number = || -> io::Result<i64> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("a number"))
    };
    Ok(Some(match kind {
        Some(b'+') => (Frame::Simple(line), next),
        Some(b'-') => (Frame::Error(line), next),
        Some(b':') => (Frame::Int(number()?), next),
        Some(b'$') => {
            let n = number()?;
            if n < 0 {
                return Ok(Some((Frame::Bulk(None), next)));
            }
            let n = n as usize;
            if buf.len() < next + n + 2 {
                return Ok(None);
            }
            (Frame::Bulk(Some(&buf[next..next + n])), next + n + 2)
        }
        Some(b'*') => {
            let n = number()?.max(0) as usize;
            let mut items = Vec::with_capacity(n.min(16));
            let mut at = next;
            for _ in 0..n {
                let Some((item, len)) = frame(&buf[at..])? else {
                    return Ok(None);
                };
                items.push(item);
                at += len;
            }
            (Frame::Array(items), at)
        }
        _ => return Err(bad("an unknown frame type")),
    }))
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A subscribed connection.
pub struct Subscription {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Where the unread part of `buf` starts.
    at: usize,
}

impl Subscription {
    /// Connects as `client`'s URL says, authenticates and subscribes to `channel`; `None` for
    /// an address this reader does not handle (TLS, Unix socket): redis-rs takes those.
    pub async fn connect(client: &redis::Client, channel: &str) -> Option<io::Result<Self>> {
        let info = client.get_connection_info();
        let redis::ConnectionAddr::Tcp(host, port) = info.addr() else {
            return None;
        };
        let settings = info.redis_settings();
        let (user, password) = (settings.username(), settings.password());
        Some(
            async {
                let stream = TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                let mut sub = Self {
                    stream,
                    buf: Vec::with_capacity(64 * 1024),
                    at: 0,
                };
                if let Some(p) = password {
                    let mut args: Vec<&[u8]> = vec![b"AUTH"];
                    args.extend(user.map(str::as_bytes));
                    args.push(p.as_bytes());
                    sub.stream.write_all(&command(&args)).await?;
                    if !sub.reply().await? {
                        return Err(bad("AUTH"));
                    }
                }
                sub.stream
                    .write_all(&command(&[b"SUBSCRIBE", channel.as_bytes()]))
                    .await?;
                if !sub.reply().await? {
                    return Err(bad("SUBSCRIBE"));
                }
                Ok(sub)
            }
            .await,
        )
    }

    /// The next reply during the handshake: `Ok(true)` for `+OK` or a subscribe
    /// confirmation, a Redis error as an error.
    async fn reply(&mut self) -> io::Result<bool> {
        loop {
            if let Some((f, len)) = frame(&self.buf[self.at..])? {
                let ok = match f {
                    Frame::Simple(_) => true,
                    Frame::Array(a) => matches!(a.first(), Some(Frame::Bulk(Some(b"subscribe")))),
                    Frame::Error(e) => {
                        return Err(io::Error::other(String::from_utf8_lossy(e).into_owned()))
                    }
                    _ => false,
                };
                self.at += len;
                return Ok(ok);
            }
            self.fill().await?;
        }
    }

    /// Reads more from the socket; an end of stream is an error (the subscription is lost).
    async fn fill(&mut self) -> io::Result<()> {
        if self.at > 0 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "redis closed the subscription",
            ));
        }
        Ok(())
    }

    /// Waits for at least one frame, then calls `each` with the payload of every complete
    /// message received so far (frames already buffered, e.g. read together with the
    /// subscription's confirmation, are taken before waiting for more).
    pub async fn messages(&mut self, mut each: impl FnMut(&[u8])) -> io::Result<()> {
        loop {
            let mut any = false;
            while let Some((f, len)) = frame(&self.buf[self.at..])? {
                any = true;
                if let Frame::Array(items) = f {
                    if let [Frame::Bulk(Some(b"message")), _, Frame::Bulk(Some(payload))] =
                        items.as_slice()
                    {
                        each(payload);
                    }
                }
                self.at += len;
            }
            if any {
                return Ok(());
            }
            self.fill().await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{frame, Frame, Subscription};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A fake Redis that checks the handshake and sends a message in the same write as the
    /// confirmation, then nothing until it closes.
    #[tokio::test]
    async fn handshake_then_messages_even_those_read_with_the_confirmation() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (closed, close) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let auth = b"*3\r\n$4\r\nAUTH\r\n$2\r\nme\r\n$2\r\npw\r\n";
            let sub = b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n";
            while got.len() < auth.len() {
                let mut b = [0u8; 256];
                let n = s.read(&mut b).await.unwrap();
                got.extend_from_slice(&b[..n]);
            }
            assert_eq!(&got[..], &auth[..]);
            s.write_all(b"+OK\r\n").await.unwrap();
            got.clear();
            while got.len() < sub.len() {
                let mut b = [0u8; 256];
                let n = s.read(&mut b).await.unwrap();
                got.extend_from_slice(&b[..n]);
            }
            assert_eq!(&got[..], &sub[..]);
            s.write_all(
                b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\none\r\n",
            )
            .await
            .unwrap();
            // Nothing more until the test has seen "one": it must not wait for more data.
            let _ = close.await;
        });
        let client = redis::Client::open(format!("redis://me:pw@127.0.0.1:{port}")).unwrap();
        let mut sub = Subscription::connect(&client, "ch").await.unwrap().unwrap();
        let mut seen = Vec::new();
        let wait = std::time::Duration::from_secs(5);
        tokio::time::timeout(wait, sub.messages(|p| seen.push(p.to_vec())))
            .await
            .expect("the buffered message, without waiting for more data")
            .unwrap();
        assert_eq!(seen, vec![b"one".to_vec()]);
        drop(closed);
        server.await.unwrap();
        // The server is gone: the subscription says so.
        assert!(sub.messages(|_| {}).await.is_err());
    }

    #[test]
    fn frames_are_read_in_place_and_incomplete_ones_wait() {
        let msg = b"*3\r\n$7\r\nmessage\r\n$11\r\nfaas:events\r\n$5\r\nhello\r\n";
        let (f, len) = frame(msg).unwrap().unwrap();
        assert_eq!(len, msg.len());
        assert_eq!(
            f,
            Frame::Array(vec![
                Frame::Bulk(Some(b"message")),
                Frame::Bulk(Some(b"faas:events")),
                Frame::Bulk(Some(b"hello")),
            ])
        );
        for cut in 0..msg.len() {
            assert!(frame(&msg[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        assert_eq!(
            frame(b"+OK\r\n").unwrap().unwrap(),
            (Frame::Simple(b"OK"), 5)
        );
        assert_eq!(frame(b":12\r\n").unwrap().unwrap(), (Frame::Int(12), 5));
        assert_eq!(frame(b"$-1\r\n").unwrap().unwrap(), (Frame::Bulk(None), 5));
        assert!(frame(b"?\r\n").is_err());
        // A payload holding CRLF is read by its length.
        let (f, _) = frame(b"$4\r\na\r\nb\r\n").unwrap().unwrap();
        assert_eq!(f, Frame::Bulk(Some(b"a\r\nb")));
    }
}
