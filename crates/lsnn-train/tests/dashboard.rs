//! The live dashboard's server (design §10.7) over real sockets: the page, the event stream in
//! order and complete, a reconnect that resumes after its last id, the bound on what is held,
//! the end of the run sent and every stream closed, and the errors for a taken or bad address.

use lsnn_train::firing::LayerFiring;
use lsnn_train::record::dashboard::{Dashboard, DashboardError, DashboardOptions};
use lsnn_train::{EvalResult, Event, TrainSummary};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// One GET; the raw answer up to `until` (or the connection's end).
fn get(addr: SocketAddr, path: &str, headers: &str, until: Option<&str>) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("the server answers within 20 s");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if until.is_some_and(|u| String::from_utf8_lossy(&got).contains(u)) {
            break;
        }
    }
    String::from_utf8(got).unwrap()
}

/// The (id's number, event, data, id's run token) of each message in an event stream's text.
fn messages(stream: &str) -> Vec<(u64, String, serde_json::Value, String)> {
    let body = &stream[stream.find("\r\n\r\n").unwrap() + 4..];
    body.split("\n\n")
        .filter(|m| m.starts_with("id: "))
        .map(|m| {
            let field = |k: &str| {
                m.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .unwrap()
                    .to_string()
            };
            let id = field("id: ");
            let (token, seq) = id.split_once('-').unwrap();
            (
                seq.parse().unwrap(),
                field("event: "),
                serde_json::from_str(&field("data: ")).unwrap(),
                token.to_string(),
            )
        })
        .collect()
}

fn batch(epoch: usize, b: usize, loss: f64) -> Event {
    Event::Batch {
        epoch,
        batch: b,
        of: 10,
        step: (epoch * 10 + b) as u64,
        loss,
        lr: 1e-3,
        tokens_per_s: 100.0,
        live_bytes: 1 << 20,
    }
}

fn start() -> Event {
    Event::Start {
        epochs: 2,
        batches_per_epoch: 10,
        parameters: 123,
        resumed_at: None,
        baseline: None,
    }
}

fn summary() -> TrainSummary {
    TrainSummary {
        steps: 20,
        batches: 20,
        last_eval: Some(EvalResult {
            metrics: vec![("val_loss".into(), 0.5), ("val_accuracy".into(), 0.75)],
            examples: 8,
            firing: Vec::new(),
        }),
        baseline: None,
        baselines: Vec::new(),
        skipped: 0,
        tokens_per_s: 100.0,
        seconds: 1.0,
        interrupted: false,
        stop_requested: false,
        nothing_to_train: false,
    }
}

#[test]
fn the_page_is_served_and_other_paths_are_not() {
    let board = Dashboard::start("127.0.0.1:0", DashboardOptions::default()).unwrap();
    let page = get(board.addr(), "/", "", None);
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page:.200}");
    assert!(page.contains("Content-Type: text/html; charset=utf-8"));
    assert!(page.contains("new EventSource(\"/events\")"));
    let body_len = page.len() - page.find("\r\n\r\n").unwrap() - 4;
    assert!(page.contains(&format!("Content-Length: {body_len}\r\n")));
    assert!(get(board.addr(), "/secret", "", None).starts_with("HTTP/1.1 404"));
    let mut s = TcpStream::connect(board.addr()).unwrap();
    write!(s, "DELETE / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    board.finish(Ok(&summary()));
}

#[test]
fn a_stream_gets_every_event_in_order_then_the_end_and_is_closed() {
    let mut board = Dashboard::start("127.0.0.1:0", DashboardOptions::default()).unwrap();
    let addr = board.addr();
    // A page open from the start, reading until the server hangs up.
    let reader = std::thread::spawn(move || get(addr, "/events", "", None));
    while board.clients() == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    board.on_event(&start());
    for b in 1..=10 {
        board.on_event(&batch(0, b, 2.0 - b as f64 * 0.1));
    }
    board.on_event(&Event::Firing {
        epoch: 0,
        layers: vec![LayerFiring {
            name: "blocks.0.encoder.lif1".into(),
            neurons: 4,
            mean_rate: 0.25,
            silent_fraction: 0.5,
            saturated_fraction: 0.0,
        }],
    });
    board.on_event(&batch(1, 1, f64::NAN));
    board.on_event(&Event::Notice("hello".into()));
    assert!(board.wait_sent(Duration::from_secs(10)));
    board.finish(Ok(&summary()));
    let text = reader.join().unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(text.contains("Content-Type: text/event-stream\r\n"));
    assert!(text.contains("\r\n\r\nretry: 1000\n\n"));
    let msgs = messages(&text);
    let ids: Vec<u64> = msgs.iter().map(|m| m.0).collect();
    assert_eq!(
        ids,
        (1..=15).collect::<Vec<_>>(),
        "every message once, in order"
    );
    let names: Vec<&str> = msgs.iter().map(|m| m.1.as_str()).collect();
    assert_eq!(names[0], "start");
    assert_eq!(names[1..11], ["step"; 10]);
    assert_eq!(names[11..], ["firing", "step", "log", "end"]);
    let step5 = &msgs[5].2;
    assert_eq!(step5["position"], 5);
    assert_eq!(step5["loss"], 1.5);
    assert_eq!(step5["live"], 1 << 20);
    // A NaN loss (a skipped batch) is JSON's null, not a broken line.
    assert_eq!(msgs[12].2["loss"], serde_json::Value::Null);
    assert_eq!(msgs[12].2["position"], 11);
    assert_eq!(msgs[11].2["layers"][0]["rate"], 0.25);
    assert_eq!(msgs[13].2["text"], "hello");
    let end = &msgs[14].2;
    assert_eq!(end["state"], "finished");
    assert_eq!(end["steps"], 20);
    assert_eq!(end["metrics"][1], serde_json::json!(["val_accuracy", 0.75]));
    // Serving stopped with the run: nothing listens any more.
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
}

#[test]
fn a_reconnect_resumes_after_its_last_event_id_and_a_late_page_gets_the_history() {
    let mut board = Dashboard::start("127.0.0.1:0", DashboardOptions::default()).unwrap();
    board.on_event(&start());
    for b in 1..=6 {
        board.on_event(&batch(0, b, 1.0));
    }
    // The page loaded now gets everything so far.
    let late = messages(&get(board.addr(), "/events", "", Some("-7\n")));
    assert_eq!(late.len(), 7);
    let token = late[0].3.clone();
    let again = messages(&get(
        board.addr(),
        "/events",
        &format!("Last-Event-ID: {token}-4\r\n"),
        Some("-7\n"),
    ));
    let ids: Vec<u64> = again.iter().map(|m| m.0).collect();
    assert_eq!(ids, [5, 6, 7]);
    // An id of another process (a page left open across a crash and resume) starts over.
    let other = messages(&get(
        board.addr(),
        "/events",
        "Last-Event-ID: 0bad-4\r\n",
        Some("-7\n"),
    ));
    assert_eq!(other.len(), 7);
    board.finish(Err("stopped by the test"));
}

#[test]
fn what_is_held_stays_bounded_however_long_the_run() {
    let points = 64;
    let mut board = Dashboard::start(
        "127.0.0.1:0",
        DashboardOptions {
            points,
            ..DashboardOptions::default()
        },
    )
    .unwrap();
    board.on_event(&start());
    for i in 0..10_000 {
        board.on_event(&batch(i / 10, i % 10 + 1, 1.0));
        board.on_event(&Event::Notice(format!("notice {i}")));
    }
    // Start + at most `points` steps and the newest + at most `points` log lines.
    assert!(board.held() <= 2 + 2 * points, "{} held", board.held());
    let msgs = messages(&get(board.addr(), "/events", "", Some("notice 9999")));
    let steps: Vec<u64> = msgs
        .iter()
        .filter(|m| m.1 == "step")
        .map(|m| m.2["position"].as_u64().unwrap())
        .collect();
    // Thinned, not cut: the span from early in the run to its newest point.
    assert_eq!(*steps.last().unwrap(), 10_000);
    assert_eq!(steps[0], 1, "the first point is kept");
    assert!(steps.len() > points / 2, "{} points", steps.len());
    // At one stride: evenly spaced but for the newest.
    let gaps: Vec<u64> = steps[..steps.len() - 1]
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    assert!(gaps.iter().all(|&g| g == gaps[0]), "{gaps:?}");
    board.finish(Ok(&summary()));
}

#[test]
fn a_page_that_keeps_up_gets_every_point_after_its_series_is_full() {
    let mut board = Dashboard::start(
        "127.0.0.1:0",
        DashboardOptions {
            points: 4,
            ..DashboardOptions::default()
        },
    )
    .unwrap();
    let addr = board.addr();
    let reader = std::thread::spawn(move || get(addr, "/events", "", None));
    while board.clients() == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Twelve batches into a series of 4, each sent before the next comes: off-stride points
    // too (each is held until the next replaces it).
    for b in 1..=12 {
        board.on_event(&batch(0, b, 1.0));
        assert!(board.wait_sent(Duration::from_secs(10)));
    }
    board.finish(Ok(&summary()));
    let positions: Vec<u64> = messages(&reader.join().unwrap())
        .iter()
        .filter(|m| m.1 == "step")
        .map(|m| m.2["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, (1..=12).collect::<Vec<_>>());
}

#[test]
fn another_sites_name_for_loopback_is_refused() {
    let board = Dashboard::start("127.0.0.1:0", DashboardOptions::default()).unwrap();
    let mut s = TcpStream::connect(board.addr()).unwrap();
    write!(s, "GET / HTTP/1.1\r\nHost: evil.example:8050\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    board.finish(Err("test"));
}

#[test]
fn a_taken_or_malformed_address_or_a_zero_option_is_a_typed_error() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap();
    match Dashboard::start(&addr.to_string(), DashboardOptions::default()) {
        Err(e @ DashboardError::InUse { .. }) => {
            assert!(e.to_string().contains("in use"), "{e}");
            assert!(e.to_string().contains(&addr.to_string()), "{e}");
        }
        other => panic!("expected InUse, got {other:?}"),
    }
    for bad in ["not an address", "127.0.0.1:99999", ""] {
        assert!(
            matches!(
                Dashboard::start(bad, DashboardOptions::default()),
                Err(DashboardError::BadAddress { .. })
            ),
            "{bad:?}"
        );
    }
    for (points, max_clients) in [(0, 16), (64, 0)] {
        let options = DashboardOptions {
            points,
            max_clients,
        };
        assert!(
            matches!(
                Dashboard::start("127.0.0.1:0", options),
                Err(DashboardError::BadOption { value: 0, .. })
            ),
            "{points} points, {max_clients} clients"
        );
    }
    // A bare port is loopback's.
    assert_eq!(
        lsnn_train::record::dashboard::parse_addr("8123").unwrap(),
        "127.0.0.1:8123".parse::<SocketAddr>().unwrap()
    );
}
