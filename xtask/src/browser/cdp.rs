//! A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`: chromium reads
//! commands on its fd 3 and writes answers and events on its fd 4, each a JSON text ended by a
//! NUL byte. Enough to open a page, evaluate expressions in it and take a screenshot, all in
//! one page session (the page is never reloaded between reads).

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// Longest wait for one answer: a chromium that hangs fails the check, never CI.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A headless chromium driven through its DevTools pipe.
pub struct Browser {
    child: Child,
    to: ChildStdin,
    /// Messages read from chromium's pipe by a thread (so a wait can time out).
    from: Receiver<Vec<u8>>,
    next_id: u64,
    _profile: TempProfile,
}

/// A throwaway user-data directory, removed with the browser.
struct TempProfile(std::path::PathBuf);

impl Drop for TempProfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One page (target) of the browser, attached in flat mode.
pub struct Page {
    session: String,
}

impl Browser {
    /// Starts `exe` headless with its DevTools pipe on our stdin/stdout pair: a shell moves
    /// the child's stdin to fd 3 and its stdout to fd 4, where chromium expects them.
    /// Chromium's own messages go to `log`.
    pub fn start(exe: &Path, width: u32, height: u32, log: &Path) -> Result<Self> {
        let profile = std::env::temp_dir().join(format!("lsnn-cdp-{}", std::process::id()));
        std::fs::create_dir_all(&profile)?;
        let log =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--remote-debugging-pipe",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            // Its own process group: renderers and helpers are killed with it.
            .process_group(0)
            .spawn()
            .context("starting chromium with --remote-debugging-pipe")?;
        let to = child.stdin.take().context("chromium's command pipe")?;
        let mut pipe = BufReader::new(child.stdout.take().context("chromium's answer pipe")?);
        let (tx, from) = std::sync::mpsc::channel();
        std::thread::spawn(move || loop {
            let mut msg = Vec::new();
            match pipe.read_until(0, &mut msg) {
                Ok(n) if n > 0 && tx.send(msg).is_ok() => {}
                _ => break,
            }
        });
        Ok(Browser {
            child,
            to,
            from,
            next_id: 0,
            _profile: TempProfile(profile),
        })
    }

    /// Sends `method` (to `session`'s page, or the browser) and waits for its answer's result;
    /// events that come first are skipped.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg)?;
        bytes.push(0);
        self.to
            .write_all(&bytes)
            .and_then(|()| self.to.flush())
            .with_context(|| format!("sending {method} to chromium"))?;
        let deadline = std::time::Instant::now() + ANSWER_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let mut buf = match self.from.recv_timeout(left) {
                Ok(b) => b,
                Err(RecvTimeoutError::Timeout) => {
                    bail!("chromium did not answer {method} in {ANSWER_TIMEOUT:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("chromium closed its DevTools pipe while {method} was pending")
                }
            };
            if buf.last() == Some(&0) {
                buf.pop();
            }
            let answer: Value = serde_json::from_slice(&buf)
                .with_context(|| format!("chromium's answer to {method}"))?;
            if answer["id"] != json!(id) {
                continue;
            }
            if let Some(e) = answer.get("error") {
                bail!("chromium answered {method} with an error: {e}");
            }
            return Ok(answer["result"].clone());
        }
    }

    /// Opens `url` in a new page and attaches to it.
    pub fn open(&mut self, url: &str) -> Result<Page> {
        let target = self.call(None, "Target.createTarget", json!({ "url": url }))?;
        let target_id = target["targetId"]
            .as_str()
            .context("Target.createTarget gave no targetId")?
            .to_string();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        )?;
        let session = attached["sessionId"]
            .as_str()
            .context("Target.attachToTarget gave no sessionId")?
            .to_string();
        let page = Page { session };
        // Until the document exists, evaluation has no context to run in: wait for its load.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            // The new page starts on about:blank, already complete: wait for the URL's own.
            let state = "document.readyState === 'complete' ? location.href : document.readyState";
            match self.eval(&page, state) {
                Ok(v) if v == url => return Ok(page),
                Ok(_) | Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(100))
                }
                Ok(v) => bail!("{url} did not finish loading in 30 s (readyState {v})"),
                Err(e) => return Err(e.context(format!("{url} did not load in 30 s"))),
            }
        }
    }

    /// The value of `expression` evaluated in `page` (returned by value).
    pub fn eval(&mut self, page: &Page, expression: &str) -> Result<Value> {
        let r = self.call(
            Some(&page.session),
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            bail!("the page threw evaluating {expression}: {e}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// A PNG of `page` as it is now.
    pub fn screenshot(&mut self, page: &Page) -> Result<Vec<u8>> {
        let r = self.call(
            Some(&page.session),
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        )?;
        let data = r["data"]
            .as_str()
            .context("Page.captureScreenshot gave no data")?;
        base64_decode(data)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask it to close without waiting for an answer; give it a moment, then kill its
        // whole process group.
        let _ = self
            .to
            .write_all(b"{\"id\":0,\"method\":\"Browser.close\",\"params\":{}}\0");
        let _ = self.to.flush();
        for _ in 0..40 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The group's helpers (zygote, crash handler) outlive the browser process. By the
        // system call, not the `kill` program: procps-ng 4.0.2's `kill -KILL -PGID` signals
        // every process it may, this one and its parents included.
        if let Ok(pgid) = libc::pid_t::try_from(self.child.id()) {
            if pgid > 1 {
                // SAFETY: kill(2) with a negative pid signals that process group only; no
                // memory is involved.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (with padding), as CDP sends binary data.
fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let value = |c: u8| -> Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("not base64: byte {c}"),
        } as u32)
    };
    let bytes: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !bytes.len().is_multiple_of(4) {
        bail!(
            "base64 text of {} characters; expected a multiple of 4",
            bytes.len()
        );
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for quad in bytes.chunks(4) {
        let pad = quad.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 {
            bail!("base64 text with {pad} padding characters in a group; expected at most 2");
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(super::base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(super::base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(super::base64_decode("aGV5").unwrap(), b"hey");
        assert!(super::base64_decode("a$==").is_err());
    }
}
