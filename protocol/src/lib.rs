//! Wire types of the FaaS platform: ids, the task and function model, HTTP bodies, live events
//! and the Redis key schema. No I/O lives here, so every daemon and client agrees on the bytes.
//! With the `backoff` feature, also the one retry-delay policy they all share.

pub mod api;
#[cfg(feature = "backoff")]
pub mod backoff;
pub mod event;
pub mod ids;
pub mod keys;
pub mod model;
pub mod wire;
pub mod worker_key;

pub use ids::{FunctionId, TaskId};
pub use keys::Keys;
pub use model::{FunctionFormat, TaskStatus};
