//! The dashboard's store of messages and the clients that read it (design §10.7).
//!
//! The trainer's thread pushes each message under one short lock; each client's thread waits
//! on the condition variable for messages newer than the last it sent. The store is bounded:
//! each kind of message has its own series with a capacity, and a full series of points is
//! thinned (every other one dropped, the newest kept), so a long run costs the same memory as
//! a short one and a page loaded late still gets the whole run, at a coarser grain.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// What a message is, which decides how its series is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The run's start (only the latest kept).
    Start,
    /// Peak memory by stage (only the latest kept).
    Stages,
    /// One training batch (thinned).
    Step,
    /// One memory line (thinned).
    Memory,
    /// One epoch's evaluation (thinned).
    Epoch,
    /// One epoch's firing rates (thinned).
    Firing,
    /// Alerts, warnings, checkpoints, notices (the newest kept).
    Log,
    /// The run's end (only the latest kept).
    End,
}

const KINDS: usize = 8;

impl Kind {
    fn index(self) -> usize {
        self as usize
    }
}

/// How a full series makes room.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// Keep one message, the latest.
    Latest,
    /// Keep every `stride`-th message, doubling the stride (dropping every other one kept)
    /// when full, plus the newest: the series keeps its whole span at an even grain.
    Thin,
    /// Drop the oldest.
    Window,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    /// The message's count within its series (0 for the first).
    n: u64,
    msg: Arc<str>,
}

#[derive(Debug)]
struct Series {
    bound: Bound,
    cap: usize,
    items: VecDeque<Entry>,
    /// Messages pushed so far.
    count: u64,
    /// Thinned series: the count of every message kept is a multiple of it.
    stride: u64,
    /// The last item is off the stride, kept only until the next message comes.
    provisional: bool,
}

impl Series {
    fn new(bound: Bound, cap: usize) -> Self {
        Series {
            bound,
            cap,
            items: VecDeque::new(),
            count: 0,
            stride: 1,
            provisional: false,
        }
    }

    fn push(&mut self, seq: u64, msg: Arc<str>) {
        let n = self.count;
        self.count += 1;
        match self.bound {
            Bound::Latest => self.items.clear(),
            Bound::Thin => {
                if self.provisional {
                    self.items.pop_back();
                }
                if self.items.len() >= self.cap && n.is_multiple_of(self.stride) {
                    self.stride *= 2;
                    let stride = self.stride;
                    self.items.retain(|e| e.n.is_multiple_of(stride));
                }
                self.provisional = !n.is_multiple_of(self.stride);
            }
            Bound::Window if self.items.len() >= self.cap => {
                self.items.pop_front();
            }
            Bound::Window => {}
        }
        self.items.push_back(Entry { seq, n, msg });
    }

    /// The messages after `seq`.
    fn after(&self, seq: u64) -> impl Iterator<Item = (u64, Arc<str>)> + '_ {
        let from = self.items.partition_point(|e| e.seq <= seq);
        self.items.range(from..).map(|e| (e.seq, e.msg.clone()))
    }
}

#[derive(Debug)]
struct State {
    /// The id the next message gets (ids start at 1: a client that saw none is at 0).
    next_seq: u64,
    series: [Series; KINDS],
    closed: bool,
    /// Each connected event stream: the last id it wrote out.
    clients: BTreeMap<u64, u64>,
    next_client: u64,
}

/// Messages and clients, shared by the trainer's thread, the acceptor and the clients.
#[derive(Debug)]
pub(super) struct Hub {
    state: Mutex<State>,
    changed: Condvar,
    max_clients: usize,
    /// This run's (this process's) mark on every message id, `{token}-{seq}`: a page that
    /// reconnects to a later process on the same address (a resumed run) is not taken for
    /// one that saw that process's messages.
    token: String,
}

/// What a client's wait returned.
pub(super) enum Next {
    /// Messages to write, in id order; the last one's id is the new position.
    Messages(u64),
    /// Nothing new before the wait ran out: time for a keep-alive comment.
    Idle,
    /// The run ended and everything was sent.
    Closed,
}

impl Hub {
    /// A hub whose series of points hold at most `points` (≥ 1) messages each, plus the
    /// newest.
    pub(super) fn new(points: usize, max_clients: usize) -> Self {
        let s = Series::new;
        Hub {
            state: Mutex::new(State {
                next_seq: 1,
                series: [
                    s(Bound::Latest, 1),
                    s(Bound::Latest, 1),
                    s(Bound::Thin, points),
                    s(Bound::Thin, points),
                    s(Bound::Thin, points),
                    s(Bound::Thin, points),
                    s(Bound::Window, points),
                    s(Bound::Latest, 1),
                ],
                closed: false,
                clients: BTreeMap::new(),
                next_client: 0,
            }),
            changed: Condvar::new(),
            max_clients,
            token: run_token(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A client thread that panicked holds nothing the store needs to be consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a server-sent event named `event` with `data` (one line of JSON).
    pub(super) fn push(&self, kind: Kind, event: &str, data: &str) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let msg: Arc<str> =
            format!("id: {}-{seq}\nevent: {event}\ndata: {data}\n\n", self.token).into();
        st.series[kind.index()].push(seq, msg);
        drop(st);
        self.changed.notify_all();
    }

    /// Pushes the end message and closes: clients write what is left and hang up.
    pub(super) fn close(&self, data: &str) {
        self.push(Kind::End, "end", data);
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// This run's token, which every message id carries.
    #[cfg(test)]
    pub(super) fn token(&self) -> &str {
        &self.token
    }

    /// Where a stream that says it saw `last_event_id` resumes: after that message when the
    /// id is this run's and not past its newest, else from the start.
    pub(super) fn resume_point(&self, last_event_id: Option<&str>) -> u64 {
        let newest = self.lock().next_seq - 1;
        last_event_id
            .and_then(|id| id.strip_prefix(self.token.as_str())?.strip_prefix('-'))
            .and_then(|seq| seq.parse::<u64>().ok())
            .filter(|&seq| seq <= newest)
            .unwrap_or(0)
    }

    /// True once [`Hub::close`] ran.
    pub(super) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// A new event stream that has seen up to `last_id`, or `None` when as many are connected
    /// as allowed.
    pub(super) fn join(&self, last_id: u64) -> Option<u64> {
        let mut st = self.lock();
        if st.clients.len() >= self.max_clients {
            return None;
        }
        let id = st.next_client;
        st.next_client += 1;
        st.clients.insert(id, last_id);
        Some(id)
    }

    /// The event stream `client` is gone.
    pub(super) fn leave(&self, client: u64) {
        self.lock().clients.remove(&client);
        self.changed.notify_all();
    }

    /// Waits up to `idle` for messages after `after`, and appends them to `out` in id order.
    pub(super) fn wait(&self, after: u64, idle: Duration, out: &mut Vec<Arc<str>>) -> Next {
        let (st, _) = self
            .changed
            .wait_timeout_while(self.lock(), idle, |st| {
                st.next_seq - 1 <= after && !st.closed
            })
            .unwrap_or_else(|p| p.into_inner());
        let newest = st.next_seq - 1;
        if newest > after {
            let mut found: Vec<(u64, Arc<str>)> =
                st.series.iter().flat_map(|s| s.after(after)).collect();
            found.sort_unstable_by_key(|(seq, _)| *seq);
            out.extend(found.into_iter().map(|(_, m)| m));
            // Thinning may have dropped some newer messages: the client is at the newest
            // id all the same.
            return Next::Messages(newest);
        }
        match st.closed {
            true => Next::Closed,
            false => Next::Idle,
        }
    }

    /// `client` wrote everything up to `id`.
    pub(super) fn sent(&self, client: u64, id: u64) {
        if let Some(c) = self.lock().clients.get_mut(&client) {
            *c = id;
        }
        self.changed.notify_all();
    }

    /// Waits until every connected event stream has written every message pushed so far, or
    /// `timeout` ran out (false).
    pub(super) fn wait_sent(&self, timeout: Duration) -> bool {
        let (_state, waited) = self
            .changed
            .wait_timeout_while(self.lock(), timeout, |st| {
                let newest = st.next_seq - 1;
                st.clients.values().any(|&c| c < newest)
            })
            .unwrap_or_else(|p| p.into_inner());
        !waited.timed_out()
    }

    /// Connected event streams.
    pub(super) fn clients(&self) -> usize {
        self.lock().clients.len()
    }

    /// Messages held (all series).
    pub(super) fn held(&self) -> usize {
        self.lock().series.iter().map(|s| s.items.len()).sum()
    }
}

/// A token unique to this process and moment: the time in nanoseconds and the process id.
fn run_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}", nanos & 0xffff_ffff_ffff, std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(hub: &Hub, after: u64) -> (u64, Vec<String>) {
        let mut out = Vec::new();
        match hub.wait(after, Duration::from_millis(1), &mut out) {
            Next::Messages(last) => (last, out.iter().map(|m| m.to_string()).collect()),
            _ => (after, Vec::new()),
        }
    }

    #[test]
    fn a_full_series_keeps_its_span_at_a_coarser_stride_and_the_newest() {
        let hub = Hub::new(4, 4);
        let data = |after| {
            drain(&hub, after)
                .1
                .iter()
                .map(|m| {
                    m.lines()
                        .nth(2)
                        .unwrap()
                        .trim_start_matches("data: ")
                        .to_string()
                })
                .collect::<Vec<_>>()
        };
        for i in 0..4 {
            hub.push(Kind::Step, "step", &i.to_string());
        }
        assert_eq!(data(0), ["0", "1", "2", "3"]);
        // 4 finds the series full: stride 2 keeps 0, 2, then 4.
        hub.push(Kind::Step, "step", "4");
        assert_eq!(data(0), ["0", "2", "4"]);
        // 5 is off the stride: held only until 6 comes.
        hub.push(Kind::Step, "step", "5");
        assert_eq!(data(0), ["0", "2", "4", "5"]);
        hub.push(Kind::Step, "step", "6");
        assert_eq!(data(0), ["0", "2", "4", "6"]);
        for i in 7..=13 {
            hub.push(Kind::Step, "step", &i.to_string());
        }
        // 8 found it full: stride 4 keeps 0, 4, then 8; 12 fills it again; 13 is the newest.
        assert_eq!(data(0), ["0", "4", "8", "12", "13"]);
        assert!(hub.held() <= 5);
    }

    #[test]
    fn messages_of_all_kinds_come_in_id_order_and_only_newer_ones() {
        let hub = Hub::new(8, 4);
        hub.push(Kind::Start, "start", "{}");
        hub.push(Kind::Step, "step", "1");
        hub.push(Kind::Log, "log", "x");
        hub.push(Kind::Step, "step", "2");
        let (last, msgs) = drain(&hub, 0);
        assert_eq!(last, 4);
        let ids: Vec<String> = msgs
            .iter()
            .map(|m| m.lines().next().unwrap().into())
            .collect();
        let t = hub.token();
        assert_eq!(
            ids,
            [1, 2, 3, 4].map(|i| format!("id: {t}-{i}")),
            "every id carries the run's token"
        );
        let (_, newer) = drain(&hub, 2);
        assert_eq!(newer.len(), 2);
        assert!(newer[0].starts_with(&format!("id: {t}-3\nevent: log\n")));
        // A start is replaced, a window drops its oldest.
        hub.push(Kind::Start, "start", "{}");
        let (_, all) = drain(&hub, 0);
        assert_eq!(all.iter().filter(|m| m.contains("event: start")).count(), 1);
        for i in 0..10 {
            hub.push(Kind::Log, "log", &format!("line {i}"));
        }
        let (_, all) = drain(&hub, 0);
        let logs: Vec<&String> = all.iter().filter(|m| m.contains("event: log")).collect();
        assert_eq!(logs.len(), 8);
        assert!(logs[0].ends_with("data: line 2\n\n") && logs[7].ends_with("data: line 9\n\n"));
    }

    #[test]
    fn a_reconnect_resumes_only_from_this_runs_own_ids() {
        let hub = Hub::new(8, 4);
        for i in 0..5 {
            hub.push(Kind::Step, "step", &i.to_string());
        }
        let t = hub.token().to_string();
        assert_eq!(hub.resume_point(Some(&format!("{t}-3"))), 3);
        assert_eq!(hub.resume_point(None), 0);
        // Another process's id, an id past the newest, junk: from the start.
        assert_eq!(hub.resume_point(Some("0abc-3")), 0);
        assert_eq!(hub.resume_point(Some(&format!("{t}-6"))), 0);
        assert_eq!(hub.resume_point(Some(&format!("{t}-x"))), 0);
        assert_ne!(Hub::new(8, 4).token(), "");
    }

    #[test]
    fn a_closed_hub_sends_the_end_then_reports_closed() {
        let hub = Hub::new(8, 1);
        let c = hub.join(0).unwrap();
        assert!(hub.join(0).is_none(), "one client allowed");
        hub.push(Kind::Step, "step", "1");
        hub.close("{\"state\":\"finished\"}");
        hub.push(Kind::Step, "step", "late");
        let (last, msgs) = drain(&hub, 0);
        assert_eq!(msgs.len(), 2);
        assert!(msgs[1].contains("event: end"));
        assert!(!hub.wait_sent(Duration::from_millis(1)));
        hub.sent(c, last);
        assert!(hub.wait_sent(Duration::from_millis(1)));
        let mut out = Vec::new();
        assert!(matches!(
            hub.wait(last, Duration::from_secs(5), &mut out),
            Next::Closed
        ));
        hub.leave(c);
        assert_eq!(hub.clients(), 0);
    }
}
