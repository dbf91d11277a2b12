//! The subscription to `{prefix}:events`: every task and worker event, forwarded to the state.
//!
//! Pub/sub uses a connection of its own (commands on the shared one would time out behind it),
//! and after a Redis restart the message stream simply ends: then it is made again.

use std::time::Duration;

use faas_protocol::event::Event;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::Backoff;
use crate::tui::msg::{Link, Update};
use crate::tui::now_ms;

/// Longest wait for a connection to accept the subscription.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Subscribes to `channel` and forwards events until the UI goes away.
pub async fn subscribe(client: redis::Client, channel: String, tx: mpsc::Sender<Update>) {
    let mut backoff = Backoff::new();
    loop {
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
                    // Events this console cannot parse (a newer platform) are skipped.
                    let Ok(ev) = serde_json::from_slice::<Event>(msg.get_payload_bytes()) else {
                        continue;
                    };
                    if tx.send(Update::Event(ev)).await.is_err() {
                        return;
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
