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
    /// Streamed line by line into a temporary file renamed over it: memory stays one line
    /// however long the run.
    pub(super) fn cut(
        path: &Path,
        has_header: bool,
        keep: impl Fn(&str) -> bool,
    ) -> Result<(Self, usize)> {
        use std::io::BufRead;
        let file = match std::fs::File::open(path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(TrainError::Io {
                    path: path.into(),
                    source,
                })
            }
        };
        let tmp = path.with_extension("cut.tmp");
        let mut out = BufWriter::new(std::fs::File::create(&tmp).map_err(TrainError::io(&tmp))?);
        let mut cut = 0;
        if let Some(f) = file {
            let mut input = std::io::BufReader::new(f);
            let mut line = Vec::new();
            let mut first = true;
            loop {
                line.clear();
                let n = input
                    .read_until(b'\n', &mut line)
                    .map_err(TrainError::io(path))?;
                if n == 0 {
                    break;
                }
                // A last line without its newline was cut short by a crash: never kept.
                let whole = line.last() == Some(&b'\n');
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches('\n');
                let header = first && has_header;
                first = false;
                if whole && (header || keep(text)) {
                    out.write_all(&line).map_err(TrainError::io(&tmp))?;
                } else if !header {
                    // A torn header is not an entry (the header is written again).
                    cut += 1;
                }
            }
        }
        out.flush().map_err(TrainError::io(&tmp))?;
        drop(out);
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

    fn cut(text: &str, header: bool, n: u64) -> (String, usize) {
        let dir =
            std::env::temp_dir().join(format!("lsnn-cut-{}-{n}-{header}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.csv");
        std::fs::write(&path, text).unwrap();
        let (f, dropped) =
            LineFile::cut(&path, header, |l| position_of(l).is_some_and(|p| p <= n)).unwrap();
        drop(f);
        let kept = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        (kept, dropped)
    }

    #[test]
    fn a_cut_keeps_whole_lines_at_or_before_the_position() {
        let text = "1,a\n2,b\n{\"batches\":2,\"kind\":\"x\"}\n{\"batches\":3}\n3,c\n4,d";
        // 3 (JSON), 3,c and the torn 4,d go.
        assert_eq!(
            cut(text, false, 2),
            ("1,a\n2,b\n{\"batches\":2,\"kind\":\"x\"}\n".into(), 3)
        );
        // A torn last line goes even when its position would stay; the header stays.
        assert_eq!(cut("h,x\n1,a\n1,b", true, 9), ("h,x\n1,a\n".into(), 1));
        assert_eq!(cut("", true, 1), (String::new(), 0));
        assert_eq!(
            cut("h,", true, 1),
            (String::new(), 0),
            "a torn header is no entry"
        );
        // Lines without a position (garbage) are dropped by the position rule.
        assert_eq!(position_of("x,1"), None);
        assert_eq!(position_of("{\"kind\":\"start\"}"), None);
        assert_eq!(position_of("{not json"), None);
        assert_eq!(position_of("17,0,1"), Some(17));
    }
}
