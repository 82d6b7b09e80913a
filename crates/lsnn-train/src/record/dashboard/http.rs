//! The dashboard's HTTP: one request per connection, answered with the page or with the event
//! stream (server-sent events, HTML's `text/event-stream`), written by hand on `std::net`
//! (design §10.7 says why no server crate).

use super::hub::{Hub, Next};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// The page, self-contained (its script and style inline).
const PAGE: &str = include_str!("page.html");

/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its whole request head, or to accept one write.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle event stream gets a comment this often, so a client that left is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// A stream writes at most this often: the messages of a burst of batches go out together.
const WRITE_EVERY: Duration = Duration::from_millis(100);

/// A request's method, path (without its query), `Host` and `Last-Event-ID`.
#[derive(Debug, PartialEq)]
struct Request {
    method: String,
    path: String,
    host: Option<String>,
    last_event_id: Option<String>,
}

/// Reads a request head within [`IO_TIMEOUT`] in all (a client that trickles bytes cannot
/// hold its thread longer); `None` when the client sent none that parses in time.
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let n = stream.read(&mut buf).ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_request(&String::from_utf8_lossy(&head))
}

fn parse_request(head: &str) -> Option<Request> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?;
    let path = target.split('?').next().unwrap_or(target).to_string();
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_string())
    };
    Some(Request {
        method,
        path,
        host: header("host"),
        last_event_id: header("last-event-id"),
    })
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // A client that went away needs no answer.
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()));
    // Closed now, not when the last handle goes: the acceptor keeps one to cut a slow client
    // off at the close.
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// True when `host` (a request's `Host`) names the loopback interface: `127.0.0.1`,
/// `localhost` or `[::1]`, with any port. A page of another site that resolves its own name to
/// 127.0.0.1 (DNS rebinding) sends that name, and is refused.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Answers one connection; `loopback` when the server listens on loopback only, where a
/// request must name loopback as its `Host`.
pub(super) fn serve(mut stream: TcpStream, hub: Arc<Hub>, loopback: bool) {
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Some(req) = read_request(&mut stream) else {
        respond(
            &mut stream,
            "400 Bad Request",
            "text/plain",
            "expected an HTTP/1.1 request\n",
        );
        return;
    };
    if loopback && !req.host.as_deref().is_some_and(loopback_host) {
        respond(
            &mut stream,
            "403 Forbidden",
            "text/plain",
            "the dashboard answers requests for 127.0.0.1, localhost or [::1] only\n",
        );
        return;
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") | ("GET", "/index.html") => {
            respond(&mut stream, "200 OK", "text/html; charset=utf-8", PAGE)
        }
        ("GET", "/events") => {
            let from = hub.resume_point(req.last_event_id.as_deref());
            events(stream, &hub, from)
        }
        ("GET", _) => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            "not found: the dashboard serves / and /events\n",
        ),
        _ => respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "expected GET\n",
        ),
    }
}

/// The event stream: everything after `last_id`, then each new message, until the run ends.
fn events(mut stream: TcpStream, hub: &Hub, last_id: u64) {
    let Some(client) = hub.join(last_id) else {
        respond(
            &mut stream,
            "503 Service Unavailable",
            "text/plain",
            "too many dashboard pages are open; close one\n",
        );
        return;
    };
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\n\r\nretry: 1000\n\n";
    let mut at = last_id;
    let mut batch = Vec::new();
    let mut ok = stream.write_all(head.as_bytes()).is_ok();
    while ok {
        batch.clear();
        match hub.wait(at, KEEP_ALIVE, &mut batch) {
            Next::Messages(last) => {
                ok = batch
                    .iter()
                    .try_for_each(|m| stream.write_all(m.as_bytes()))
                    .and_then(|()| stream.flush())
                    .is_ok();
                if ok {
                    at = last;
                    hub.sent(client, at);
                    if !hub.is_closed() {
                        std::thread::sleep(WRITE_EVERY);
                    }
                }
            }
            Next::Idle => ok = stream.write_all(b": idle\n\n").is_ok(),
            Next::Closed => break,
        }
    }
    hub.leave(client);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_parses_with_its_host_and_last_event_id() {
        let r =
            parse_request("GET /events?x=1 HTTP/1.1\r\nHost: a:80\r\nlast-event-id: 7f-42\r\n\r\n")
                .unwrap();
        assert_eq!(
            r,
            Request {
                method: "GET".into(),
                path: "/events".into(),
                host: Some("a:80".into()),
                last_event_id: Some("7f-42".into())
            }
        );
        let r = parse_request("POST / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((r.method.as_str(), r.last_event_id), ("POST", None));
        assert!(parse_request("").is_none());
    }

    #[test]
    fn only_loopback_names_are_loopback_hosts() {
        for ok in [
            "127.0.0.1:8050",
            "localhost:8050",
            "LOCALHOST",
            "[::1]:80",
            "127.0.0.2",
        ] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example:8050", "10.0.0.1:8050", "[fe80::1]:80", ""] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }
}
