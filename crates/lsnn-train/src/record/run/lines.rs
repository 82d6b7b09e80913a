//! The record's files: text files of one entry per line, appended as the run goes and cut back
//! to a position on a resume (design §10.4).

use crate::error::{Result, TrainError};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// One of the record's files, open for appending.
#[derive(Debug)]
pub(super) struct LineFile {
    path: PathBuf,
    out: BufWriter<std::fs::File>,
}

/// The lines of `text` that `keep` accepts, with how many were dropped. A last line without its
/// newline (a crash cut it short) is always dropped: an entry is on record once its line ends.
pub fn cut_lines(text: &str, keep: impl Fn(&str) -> bool) -> (String, usize) {
    let mut kept = String::with_capacity(text.len());
    let mut dropped = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let Some(end) = rest.find('\n') else {
            dropped += 1;
            break;
        };
        let line = &rest[..end];
        if keep(line) {
            kept.push_str(line);
            kept.push('\n');
        } else {
            dropped += 1;
        }
        rest = &rest[end + 1..];
    }
    (kept, dropped)
}

impl LineFile {
    /// A new file at `path` holding `header` (if any), replacing what was there.
    pub(super) fn fresh(path: &Path, header: Option<&str>) -> Result<Self> {
        let mut text = String::new();
        if let Some(h) = header {
            text.push_str(h);
            text.push('\n');
        }
        std::fs::write(path, text).map_err(TrainError::io(path))?;
        Self::append_to(path)
    }

    /// The file at `path` cut to the lines `keep` accepts (its first line is kept as the header
    /// when `has_header`); a missing file starts empty. Returns the file and the lines cut.
    pub(super) fn cut(
        path: &Path,
        has_header: bool,
        keep: impl Fn(&str) -> bool,
    ) -> Result<(Self, usize)> {
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(TrainError::Io {
                    path: path.into(),
                    source,
                })
            }
        };
        let (header, body) = match (has_header, text.find('\n')) {
            (true, Some(i)) => text.split_at(i + 1),
            _ => ("", text.as_str()),
        };
        let (kept, cut) = cut_lines(body, keep);
        let tmp = path.with_extension("cut.tmp");
        std::fs::write(&tmp, format!("{header}{kept}")).map_err(TrainError::io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(TrainError::io(path))?;
        Ok((Self::append_to(path)?, cut))
    }

    fn append_to(path: &Path) -> Result<Self> {
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(TrainError::io(path))?;
        Ok(LineFile {
            path: path.into(),
            out: BufWriter::new(f),
        })
    }

    /// True when the file holds no line yet.
    pub(super) fn is_empty(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.len() == 0) && self.out.buffer().is_empty()
    }

    /// Appends one line (buffered).
    pub(super) fn line(&mut self, text: &str) -> Result<()> {
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(TrainError::io(&self.path))
    }

    /// Puts what is buffered on disk.
    pub(super) fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(TrainError::io(&self.path))
    }

    /// The file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

/// The position (batches) an entry is at: a CSV line's first field, a JSON line's `batches`.
pub(super) fn position_of(line: &str) -> Option<u64> {
    if line.starts_with('{') {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()?
            .get("batches")?
            .as_u64()
    } else {
        line.split(',').next()?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_keeps_whole_lines_at_or_before_the_position() {
        let text = "1,a\n2,b\n{\"batches\":2,\"kind\":\"x\"}\n{\"batches\":3}\n3,c\n4,d";
        let keep = |l: &str| position_of(l).is_some_and(|p| p <= 2);
        let (kept, dropped) = cut_lines(text, keep);
        assert_eq!(kept, "1,a\n2,b\n{\"batches\":2,\"kind\":\"x\"}\n");
        // 3 (JSON), 3,c and the torn 4,d.
        assert_eq!(dropped, 3);
        // A torn last line goes even when its position would stay.
        assert_eq!(cut_lines("1,a\n1,b", |_| true), ("1,a\n".into(), 1));
        assert_eq!(cut_lines("", |_| true), (String::new(), 0));
        // Lines without a position (garbage) are dropped by the position rule.
        assert_eq!(position_of("x,1"), None);
        assert_eq!(position_of("{\"kind\":\"start\"}"), None);
        assert_eq!(position_of("{not json"), None);
        assert_eq!(position_of("17,0,1"), Some(17));
    }
}
