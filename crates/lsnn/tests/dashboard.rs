//! `lsnn train --dashboard` (design §10.7): a run serves its live page and event stream, sends
//! its final state and stops serving when it ends; a taken address is a clear error before
//! anything is built.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{code, err, lsnn, lsnn_bin, scratch, setup, tiny_train_args};

#[test]
fn a_taken_address_is_refused_before_the_run_starts() {
    let d = scratch("dashboard-taken");
    setup(&d);
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let o = lsnn(&tiny_train_args("run", &["--dashboard", &addr]), &d);
    assert_eq!(code(&o), 2, "{}", err(&o));
    let msg = err(&o);
    assert!(
        msg.contains(&format!("dashboard address {addr} is in use")),
        "{msg}"
    );
    assert!(msg.contains("--dashboard HOST:PORT"), "{msg}");
    assert!(
        !d.join("run").exists(),
        "nothing is written for a refused run"
    );
    let o = lsnn(&["train", "--dashboard", "nowhere:port"], &d);
    assert_eq!(code(&o), 2);
    assert!(err(&o).contains("expected HOST:PORT"), "{}", err(&o));
}

#[test]
fn a_run_streams_its_batches_and_final_state_then_stops_serving() {
    let d = scratch("dashboard-run");
    setup(&d);
    let mut child = Command::new(lsnn_bin())
        .current_dir(&d)
        .args(tiny_train_args(
            "run",
            &["--set", "num_epochs=2", "--dashboard", "127.0.0.1:0"],
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no dashboard line"
        );
        if let Some(url) = line.trim().strip_prefix("dashboard: http://") {
            break url.trim_end_matches('/').to_string();
        }
    };
    // The rest of stderr read on a thread, so the run never blocks on a full pipe.
    let rest = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all);
        all
    });
    // The address is printed before the model is built: the stream opens before training.
    let mut s = TcpStream::connect(&addr).expect("the dashboard serves while the run trains");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(s, "GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut stream = String::new();
    s.read_to_string(&mut stream).unwrap();
    let out = child.wait_with_output().unwrap();
    let log = rest.join().unwrap();
    assert!(out.status.success(), "{log}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The summary line's step count, and the stream's.
    let steps: u64 = stdout
        .lines()
        .find_map(|l| l.split(" steps, ").next()?.parse().ok())
        .unwrap_or_else(|| panic!("no summary in {stdout}"));
    let batches = stream.matches("event: step\n").count() as u64;
    assert_eq!(stream.matches("event: epoch\n").count(), 2);
    assert_eq!(stream.matches("event: firing\n").count(), 2);
    let end = stream
        .split("event: end\ndata: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no end in {stream}"));
    let end: serde_json::Value = serde_json::from_str(end.lines().next().unwrap()).unwrap();
    assert_eq!(end["state"], "finished");
    assert_eq!(end["steps"], steps);
    assert_eq!(end["batches"], batches, "one step message per micro-batch");
    // The run closed the stream (read_to_string returned) and stopped serving.
    let again = TcpStream::connect(&addr);
    assert!(again.is_err(), "{again:?} {addr}");
}
