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
/// How long a client may take to send its request or accept a write.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle event stream gets a comment this often, so a client that left is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// A stream writes at most this often: the messages of a burst of batches go out together.
const WRITE_EVERY: Duration = Duration::from_millis(100);

/// A request's method, path (without its query) and `Last-Event-ID`.
#[derive(Debug, PartialEq)]
struct Request {
    method: String,
    path: String,
    last_event_id: Option<u64>,
}

/// Reads a request head; `None` when the client sent none that parses.
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
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
    let last_event_id = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("last-event-id"))
        .and_then(|(_, v)| v.trim().parse().ok());
    Some(Request {
        method,
        path,
        last_event_id,
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
}

/// Answers one connection.
pub(super) fn serve(mut stream: TcpStream, hub: Arc<Hub>) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
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
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") | ("GET", "/index.html") => {
            respond(&mut stream, "200 OK", "text/html; charset=utf-8", PAGE)
        }
        ("GET", "/events") => events(stream, &hub, req.last_event_id.unwrap_or(0)),
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
    fn a_request_head_parses_with_its_last_event_id() {
        let r = parse_request("GET /events?x=1 HTTP/1.1\r\nHost: a\r\nlast-event-id: 42\r\n\r\n")
            .unwrap();
        assert_eq!(
            r,
            Request {
                method: "GET".into(),
                path: "/events".into(),
                last_event_id: Some(42)
            }
        );
        let r = parse_request("POST / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((r.method.as_str(), r.last_event_id), ("POST", None));
        assert!(parse_request("").is_none());
    }
}
