//! `faas-console`: the interactive operator dashboard, what Flower is for Celery, in a terminal.
//!
//! Data flows one way: network tasks (`net`) → `Update`s on a channel → the state (`app::App`)
//! → `render`. The loop owns the state and selects on keys first (`biased`), then the redraw
//! tick, then updates, so keys stay responsive however many events arrive; events are applied
//! as they come but drawn only on the tick, never once per event. A tick with nothing new
//! (`App::take_dirty`) draws only once a second, for the clock-driven parts (ages, the chart's
//! window): an idle console costs next to nothing.

pub mod app;
pub mod forms;
pub mod functions;
pub mod msg;
pub mod net;
pub mod render;
pub mod tasks;
pub mod throughput;
pub mod timeline;
pub mod workers;

use std::io::IsTerminal;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use ratatui::crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event as TermEvent, EventStream, KeyEventKind,
};
use ratatui::crossterm::execute;
use ratatui::DefaultTerminal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::client::GatewayClient;
use app::App;
use msg::Update;
use net::{Endpoints, Net};

/// Redraw period: fast enough to feel live, slow enough that a flood of events costs nothing.
pub const TICK: Duration = Duration::from_millis(200);
/// Redraw period when nothing changed but the clock.
const IDLE_REDRAW: Duration = Duration::from_secs(1);
/// Updates waiting for the UI; a full queue holds back the network tasks, not the keys.
const UPDATE_QUEUE: usize = 16 * 1024;
/// Most updates applied between two looks at the keyboard.
const UPDATE_BATCH: usize = 4096;

/// What the console connects to.
#[derive(Clone, Debug)]
pub struct Config {
    pub redis_url: String,
    pub gateway_url: String,
    pub token: Option<String>,
    pub prefix: String,
    /// Started by `faas up`: quitting stops the platform, so `q` and Ctrl-C ask first.
    pub supervised: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("faas-console is interactive and needs a terminal (stdin and stdout must be a TTY); for scripts use the `faas` CLI")]
    NoTerminal,
    #[error("invalid redis URL {url:?}: {source}")]
    RedisUrl {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("invalid gateway URL {0:?}: it must start with http:// or https://")]
    GatewayUrl(String),
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

impl Error {
    /// A mistake in the flags or environment (exit 64), as opposed to a runtime failure.
    pub fn is_config(&self) -> bool {
        matches!(self, Error::RedisUrl { .. } | Error::GatewayUrl(_))
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Checks the configuration and builds the clients, without touching the network.
pub fn endpoints(config: &Config) -> Result<Endpoints, Error> {
    let redis =
        redis::Client::open(config.redis_url.as_str()).map_err(|source| Error::RedisUrl {
            url: config.redis_url.clone(),
            source,
        })?;
    let url = &config.gateway_url;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::GatewayUrl(url.clone()));
    }
    Ok(Endpoints {
        redis,
        keys: faas_protocol::Keys::new(config.prefix.clone()),
        gateway: GatewayClient::new(url, config.token.clone()),
    })
}

/// Runs the console until the operator quits. The terminal is restored on every way out, mouse
/// capture included; `ratatui::init` also restores it before a panic message is printed, and
/// the hook installed here turns mouse capture off first.
pub async fn run(config: Config) -> Result<(), Error> {
    let endpoints = endpoints(&config)?;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(Error::NoTerminal);
    }
    let (tx, rx) = mpsc::channel(UPDATE_QUEUE);
    let net = Net::start(endpoints, tx);
    let mut app = App::new(&config.redis_url, &config.gateway_url, now_ms());
    app.supervised = config.supervised;
    let result = match ratatui::try_init() {
        Ok(mut terminal) => {
            mouse_capture_off_on_panic();
            match execute!(std::io::stdout(), EnableMouseCapture) {
                Ok(()) => event_loop(&mut terminal, app, rx, &net).await,
                Err(e) => Err(e.into()),
            }
        }
        // Raw mode may be on even though the rest failed.
        Err(e) => Err(e.into()),
    };
    let _ = execute!(std::io::stdout(), DisableMouseCapture);
    ratatui::restore();
    result
}

/// Wraps the panic hook (ratatui's, which restores the terminal) so that mouse capture is
/// turned off too: a shell left capturing the mouse prints escape codes on every move.
fn mouse_capture_off_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(std::io::stdout(), DisableMouseCapture);
        previous(info);
    }));
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    mut app: App,
    mut updates: mpsc::Receiver<Update>,
    net: &Net,
) -> Result<(), Error> {
    let mut keys = EventStream::new();
    // Killed or hung up on: leave through the same door as `q`, so the terminal is restored.
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut batch = Vec::with_capacity(UPDATE_BATCH);
    let mut last_draw = std::time::Instant::now();
    loop {
        let mut redraw = false;
        tokio::select! {
            biased;
            ev = keys.next() => match ev {
                Some(Ok(TermEvent::Key(k))) if k.kind != KeyEventKind::Release => {
                    app.on_key(k);
                    redraw = true;
                }
                Some(Ok(TermEvent::Mouse(m))) => redraw = app.on_mouse(m),
                Some(Ok(TermEvent::Resize(..))) => redraw = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                // The terminal went away: nothing left to show.
                None => return Ok(()),
            },
            _ = term.recv() => return Ok(()),
            _ = hup.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = tick.tick() => {
                app.tick(now_ms());
                redraw = app.take_dirty() || last_draw.elapsed() >= IDLE_REDRAW;
            }
            n = updates.recv_many(&mut batch, UPDATE_BATCH) => {
                if n == 0 {
                    return Ok(());
                }
                for u in batch.drain(..) {
                    app.apply(u);
                }
            }
        }
        for cmd in app.take_commands() {
            net.run(cmd);
        }
        if app.quit {
            return Ok(());
        }
        if redraw {
            terminal.draw(|f| render::render(&app, f))?;
            last_draw = std::time::Instant::now();
        }
    }
}
