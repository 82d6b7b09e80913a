//! A live dashboard of a run (design §10.7): a page that plots loss, metrics, memory and
//! firing rates as the run trains, fed by server-sent events, and that shows the final state
//! when the run ends.
//!
//! [`Dashboard::start`] binds the address (loopback by default) and serves from background
//! threads; [`Dashboard::on_event`] is called with each trainer event on the training thread
//! and costs one JSON line and one short lock; [`Dashboard::finish`] sends the end state,
//! closes every stream and joins the threads.
//!
//! ```no_run
//! use lsnn_train::record::dashboard::{Dashboard, DashboardOptions};
//! let mut board = Dashboard::start("127.0.0.1:0", DashboardOptions::default())?;
//! eprintln!("dashboard: {}", board.url());
//! // trainer.run(&mut |e| board.on_event(e))
//! board.finish(Err("not run"));
//! # Ok::<(), lsnn_train::record::dashboard::DashboardError>(())
//! ```

mod http;
mod hub;
mod messages;

use crate::trainer::{Event, TrainSummary};
use hub::Hub;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The address `lsnn train --dashboard` binds without one: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8050";

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The address did not parse.
    #[error("dashboard address {given:?}: expected HOST:PORT (e.g. 127.0.0.1:8050) or a PORT")]
    BadAddress {
        /// What was given.
        given: String,
    },
    /// Another program holds the address.
    #[error("dashboard address {addr} is in use by another program; give another with --dashboard HOST:PORT (port 0 picks a free one)")]
    InUse {
        /// The address.
        addr: SocketAddr,
    },
    /// An option out of its range.
    #[error("dashboard option {field} = {value}: expected at least 1")]
    BadOption {
        /// The option.
        field: &'static str,
        /// What was given.
        value: usize,
    },
    /// Binding failed otherwise (no such interface, a privileged port).
    #[error("cannot serve the dashboard on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The system's error.
        source: std::io::Error,
    },
}

/// Options of a [`Dashboard`].
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    /// Most messages each series of points keeps (steps, memory lines, epochs, firing), at
    /// least 1: a full series keeps every stride-th point, doubling the stride, plus the
    /// newest; the log keeps its newest this many.
    pub points: usize,
    /// Most pages streaming at once, at least 1; one more is answered 503.
    pub max_clients: usize,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        DashboardOptions {
            points: 4096,
            max_clients: 16,
        }
    }
}

/// `given` as a socket address: `HOST:PORT`, or a bare `PORT` on loopback.
pub fn parse_addr(given: &str) -> Result<SocketAddr, DashboardError> {
    let bad = || DashboardError::BadAddress {
        given: given.to_string(),
    };
    let g = given.trim();
    if let Ok(port) = g.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    g.to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

/// A live dashboard serving one run.
#[derive(Debug)]
pub struct Dashboard {
    hub: Arc<Hub>,
    addr: SocketAddr,
    messages: messages::Messages,
    acceptor: Option<JoinHandle<()>>,
}

impl Dashboard {
    /// Binds `addr` (see [`parse_addr`]) and starts serving.
    pub fn start(addr: &str, options: DashboardOptions) -> Result<Self, DashboardError> {
        for (field, value) in [
            ("points", options.points),
            ("max_clients", options.max_clients),
        ] {
            if value == 0 {
                return Err(DashboardError::BadOption { field, value });
            }
        }
        let want = parse_addr(addr)?;
        let listener = TcpListener::bind(want).map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => DashboardError::InUse { addr: want },
            _ => DashboardError::Bind { addr: want, source },
        })?;
        let addr = listener
            .local_addr()
            .map_err(|source| DashboardError::Bind { addr: want, source })?;
        // Polled, not blocking: the acceptor sees the close within one poll, whatever the
        // network does.
        listener
            .set_nonblocking(true)
            .map_err(|source| DashboardError::Bind { addr, source })?;
        let hub = Arc::new(Hub::new(options.points, options.max_clients));
        let acceptor = {
            let hub = hub.clone();
            let loopback = addr.ip().is_loopback();
            // Event streams, pages being sent and requests being read, together.
            let max_connections = options.max_clients + 16;
            std::thread::Builder::new()
                .name("lsnn-dashboard".into())
                .spawn(move || accept(listener, hub, loopback, max_connections))
                .map_err(|source| DashboardError::Bind { addr, source })?
        };
        Ok(Dashboard {
            hub,
            addr,
            messages: messages::Messages::default(),
            acceptor: Some(acceptor),
        })
    }

    /// The address served (with the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL (on loopback when the server listens on every interface: browsers
    /// refuse `0.0.0.0`).
    pub fn url(&self) -> String {
        let host = match self.addr.ip() {
            ip if ip.is_unspecified() && self.addr.is_ipv4() => "127.0.0.1".to_string(),
            ip if ip.is_unspecified() => "[::1]".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("http://{host}:{}/", self.addr.port())
    }

    /// Shows `e` (call it with every trainer event).
    pub fn on_event(&mut self, e: &Event) {
        if let Some((kind, name, data)) = self.messages.of(e) {
            self.hub.push(kind, name, &data.to_string());
        }
    }

    /// Waits until every open page was sent everything so far, at most `timeout` (false when it
    /// ran out).
    pub fn wait_sent(&self, timeout: Duration) -> bool {
        self.hub.wait_sent(timeout)
    }

    /// Pages streaming now.
    pub fn clients(&self) -> usize {
        self.hub.clients()
    }

    /// Messages held for pages that connect later (bounded by [`DashboardOptions::points`]).
    pub fn held(&self) -> usize {
        self.hub.held()
    }

    /// Sends the run's end (its summary, or why it failed), closes every stream and stops
    /// serving.
    pub fn finish(mut self, outcome: Result<&TrainSummary, &str>) {
        self.close(outcome);
    }

    fn close(&mut self, outcome: Result<&TrainSummary, &str>) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.hub.close(&messages::end(outcome).to_string());
        let _ = acceptor.join();
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.close(Err("the dashboard was dropped before the run's end"));
    }
}

/// How often the acceptor looks for a connection or the close.
const POLL: Duration = Duration::from_millis(25);

/// How long, once the hub is closed, the connections get to finish (a page to read the end)
/// before their sockets are shut down under them.
const GRACE: Duration = Duration::from_secs(2);

/// Accepts connections until the hub closes, one thread each (at most `max_connections` at
/// once; one more is closed at once), then joins them all: each has [`GRACE`] to finish, then
/// its socket is shut down, which ends any read or write in flight, however slow the client.
fn accept(listener: TcpListener, hub: Arc<Hub>, loopback: bool, max_connections: usize) {
    let mut served: Vec<(JoinHandle<()>, Option<TcpStream>)> = Vec::new();
    while !hub.is_closed() {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            // Nothing waiting, or a failure such as too many open files: wait and look again.
            Err(_) => {
                std::thread::sleep(POLL);
                continue;
            }
        };
        served.retain(|(h, _)| !h.is_finished());
        if served.len() >= max_connections || stream.set_nonblocking(false).is_err() {
            continue;
        }
        let handle = stream.try_clone().ok();
        let h = hub.clone();
        if let Ok(thread) = std::thread::Builder::new()
            .name("lsnn-dashboard-client".into())
            .spawn(move || http::serve(stream, h, loopback))
        {
            served.push((thread, handle));
        }
    }
    drop(listener);
    let deadline = std::time::Instant::now() + GRACE;
    while std::time::Instant::now() < deadline && served.iter().any(|(h, _)| !h.is_finished()) {
        std::thread::sleep(POLL);
    }
    for (thread, socket) in served {
        if let (false, Some(s)) = (thread.is_finished(), socket) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        let _ = thread.join();
    }
}
