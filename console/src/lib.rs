//! Clients of the FaaS platform: the gateway HTTP client shared by the `faas` CLI and the
//! `faas-console` operator dashboard.

pub mod bench;
pub mod cli;
pub mod client;
pub mod tui;
