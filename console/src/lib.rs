//! Clients of the FaaS platform: the `faas` CLI ([`cli`]: the API commands, `faas up`, which
//! starts and supervises the whole platform, and `faas keygen`), `faas bench` ([`bench`]), the
//! `faas-console` operator dashboard ([`tui`], which reads the gateway and, for live views,
//! Redis), and the gateway HTTP client they share ([`client`]).

pub mod bench;
pub mod cli;
pub mod client;
pub mod timefmt;
pub mod tui;
