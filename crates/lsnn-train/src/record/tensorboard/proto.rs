//! The part of TensorBoard's `Event` protocol buffer that lsnn writes and reads, encoded by
//! hand: a dependency on a protobuf compiler for five messages would cost more build time than
//! the encoder's hundred lines.
//!
//! Fields go out in field-number order and fields holding their proto3 default (a zero wall
//! time or step, an empty tag or writer name) are left out, as protobuf's own serializers do; a
//! `oneof` member (the event's `file_version`, `summary` or `session_log`, a scalar's value) is
//! written even at its default, e.g. a value of 0. That makes the bytes — and
//! therefore the records' CRCs — the same as TensorBoard's writer produces (checked against its
//! output in `tests/tensorboard.rs`).

use std::fmt;

/// `tensorboard.Event` field numbers.
mod field {
    pub const WALL_TIME: u32 = 1;
    pub const STEP: u32 = 2;
    pub const FILE_VERSION: u32 = 3;
    pub const SUMMARY: u32 = 5;
    pub const SESSION_LOG: u32 = 7;
    pub const SOURCE_METADATA: u32 = 10;
    /// `Summary.value`, `Summary.Value.tag`, `SessionLog.status`, `SourceMetadata.writer`.
    pub const FIRST: u32 = 1;
    /// `Summary.Value.simple_value`.
    pub const SIMPLE_VALUE: u32 = 2;
}

/// Protobuf wire types.
mod wire {
    pub const VARINT: u32 = 0;
    pub const FIXED64: u32 = 1;
    pub const LEN: u32 = 2;
    pub const FIXED32: u32 = 5;
}

/// `tensorboard.SessionLog.SessionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// 0.
    Unspecified,
    /// 1: a (re)started session; TensorBoard drops the steps at or past the record's step that
    /// it read before it (they were orphaned by a crash).
    Start,
    /// 2.
    Stop,
    /// 3.
    Checkpoint,
    /// A value this version does not know.
    Unknown(u64),
}

impl SessionStatus {
    fn code(self) -> u64 {
        match self {
            SessionStatus::Unspecified => 0,
            SessionStatus::Start => 1,
            SessionStatus::Stop => 2,
            SessionStatus::Checkpoint => 3,
            SessionStatus::Unknown(c) => c,
        }
    }

    fn from_code(c: u64) -> Self {
        match c {
            0 => SessionStatus::Unspecified,
            1 => SessionStatus::Start,
            2 => SessionStatus::Stop,
            3 => SessionStatus::Checkpoint,
            c => SessionStatus::Unknown(c),
        }
    }
}

/// What an event carries (its `oneof what`, the subset lsnn knows).
#[derive(Debug, Clone, PartialEq)]
pub enum EventPayload {
    /// The first record of a file: the format version (`brain.Event:2`) and the writer's name.
    FileVersion {
        /// `file_version`.
        version: String,
        /// `source_metadata.writer` (empty when absent).
        writer: String,
    },
    /// A summary's scalar values (`simple_value`), by tag. Values of other kinds (images,
    /// histograms, tensors) are skipped when reading.
    Scalars(Vec<(String, f32)>),
    /// A session log record.
    SessionLog(SessionStatus),
    /// Something else (a graph, run metadata, a log message): kept as nothing.
    Other,
}

/// One `tensorboard.Event`.
#[derive(Debug, Clone, PartialEq)]
pub struct TbEvent {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// The step it belongs to.
    pub step: i64,
    /// What it carries.
    pub payload: EventPayload,
}

/// A payload that is not a well-formed `Event` of the known shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(out, u64::from(field << 3 | wire));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, wire::LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A string field, left out when empty (its proto3 default).
fn put_string(out: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        put_bytes(out, field, s.as_bytes());
    }
}

impl TbEvent {
    /// The event's protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        // Proto3 leaves a double out when its bits are zero (so -0.0 is written).
        if self.wall_time.to_bits() != 0 {
            put_key(&mut out, field::WALL_TIME, wire::FIXED64);
            out.extend_from_slice(&self.wall_time.to_le_bytes());
        }
        if self.step != 0 {
            put_key(&mut out, field::STEP, wire::VARINT);
            // int64: a negative value is its two's complement, ten bytes.
            put_varint(&mut out, self.step as u64);
        }
        match &self.payload {
            EventPayload::FileVersion { version, writer } => {
                // A member of the event's oneof: written even when empty.
                put_bytes(&mut out, field::FILE_VERSION, version.as_bytes());
                if !writer.is_empty() {
                    let mut meta = Vec::new();
                    put_string(&mut meta, field::FIRST, writer);
                    put_bytes(&mut out, field::SOURCE_METADATA, &meta);
                }
            }
            EventPayload::Scalars(values) => {
                let mut summary = Vec::new();
                for (tag, v) in values {
                    let mut value = Vec::with_capacity(tag.len() + 8);
                    put_string(&mut value, field::FIRST, tag);
                    put_key(&mut value, field::SIMPLE_VALUE, wire::FIXED32);
                    value.extend_from_slice(&v.to_le_bytes());
                    put_bytes(&mut summary, field::FIRST, &value);
                }
                put_bytes(&mut out, field::SUMMARY, &summary);
            }
            EventPayload::SessionLog(status) => {
                let mut log = Vec::new();
                if status.code() != 0 {
                    put_key(&mut log, field::FIRST, wire::VARINT);
                    put_varint(&mut log, status.code());
                }
                put_bytes(&mut out, field::SESSION_LOG, &log);
            }
            EventPayload::Other => {}
        }
        out
    }

    /// Decodes an `Event`, skipping fields it does not know.
    pub fn decode(bytes: &[u8]) -> Result<TbEvent, DecodeError> {
        let mut event = TbEvent {
            wall_time: 0.0,
            step: 0,
            payload: EventPayload::Other,
        };
        let (mut version, mut writer) = (None::<String>, String::new());
        for f in Fields::new(bytes) {
            let (number, value) = f?;
            match (number, value) {
                (field::WALL_TIME, Value::Fixed64(v)) => event.wall_time = f64::from_bits(v),
                (field::STEP, Value::Varint(v)) => event.step = v as i64,
                (field::FILE_VERSION, Value::Len(b)) => version = Some(utf8(b, "file_version")?),
                (field::SOURCE_METADATA, Value::Len(b)) => {
                    for f in Fields::new(b) {
                        if let (field::FIRST, Value::Len(w)) = f? {
                            writer = utf8(w, "source_metadata.writer")?;
                        }
                    }
                }
                (field::SUMMARY, Value::Len(b)) => {
                    event.payload = EventPayload::Scalars(decode_summary(b)?);
                }
                (field::SESSION_LOG, Value::Len(b)) => {
                    let mut status = SessionStatus::Unspecified;
                    for f in Fields::new(b) {
                        if let (field::FIRST, Value::Varint(c)) = f? {
                            status = SessionStatus::from_code(c);
                        }
                    }
                    event.payload = EventPayload::SessionLog(status);
                }
                (field::WALL_TIME | field::STEP | field::FILE_VERSION, _)
                | (field::SUMMARY | field::SESSION_LOG | field::SOURCE_METADATA, _) => {
                    return Err(DecodeError(format!(
                        "Event field {number} has the wrong wire type"
                    )))
                }
                _ => {}
            }
        }
        if let Some(version) = version {
            event.payload = EventPayload::FileVersion { version, writer };
        }
        Ok(event)
    }
}

fn decode_summary(bytes: &[u8]) -> Result<Vec<(String, f32)>, DecodeError> {
    let mut values = Vec::new();
    for f in Fields::new(bytes) {
        let Value::Len(v) = (match f? {
            (field::FIRST, v) => v,
            _ => continue,
        }) else {
            return Err(DecodeError("Summary.value is not a message".into()));
        };
        let (mut tag, mut simple) = (String::new(), None);
        for f in Fields::new(v) {
            match f? {
                (field::FIRST, Value::Len(t)) => tag = utf8(t, "Summary.Value.tag")?,
                (field::SIMPLE_VALUE, Value::Fixed32(bits)) => simple = Some(f32::from_bits(bits)),
                _ => {}
            }
        }
        if let Some(s) = simple {
            values.push((tag, s));
        }
    }
    Ok(values)
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError(format!("{what} is not UTF-8")))
}

/// A field's value on the wire.
enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

/// The (field number, value) pairs of one message.
struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Fields {
            rest: bytes,
            failed: false,
        }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some((&b, rest)) = self.rest.split_first() else {
                return Err(DecodeError(
                    "a varint runs past the end of the message".into(),
                ));
            };
            self.rest = rest;
            v |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("a varint longer than 10 bytes".into()))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        if n > self.rest.len() as u64 {
            return Err(DecodeError(format!(
                "a field of {n} bytes runs past the end of the message ({} left)",
                self.rest.len()
            )));
        }
        let (head, rest) = self.rest.split_at(n as usize);
        self.rest = rest;
        Ok(head)
    }

    fn next_field(&mut self) -> Result<(u32, Value<'a>), DecodeError> {
        let key = self.varint()?;
        let field = u32::try_from(key >> 3)
            .ok()
            .filter(|&f| f > 0)
            .ok_or_else(|| DecodeError(format!("field number {} is invalid", key >> 3)))?;
        let value = match (key & 7) as u32 {
            wire::VARINT => Value::Varint(self.varint()?),
            wire::FIXED64 => Value::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            wire::LEN => {
                let n = self.varint()?;
                Value::Len(self.take(n)?)
            }
            wire::FIXED32 => Value::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            w => {
                return Err(DecodeError(format!(
                    "wire type {w} (groups are not used by TensorBoard's events)"
                )))
            }
        };
        Ok((field, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let r = self.next_field();
        self.failed = r.is_err();
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(tag: &str, step: i64, v: f32) -> TbEvent {
        TbEvent {
            wall_time: 1.5,
            step,
            payload: EventPayload::Scalars(vec![(tag.into(), v)]),
        }
    }

    #[test]
    fn round_trip() {
        for e in [
            scalar("a/b", 0, 0.0),
            scalar("λ", -3, f32::INFINITY),
            scalar("x", i64::MAX, -1e-38),
            TbEvent {
                wall_time: 0.0,
                step: 9,
                payload: EventPayload::SessionLog(SessionStatus::Start),
            },
            TbEvent {
                wall_time: 2.0,
                step: 0,
                payload: EventPayload::FileVersion {
                    version: "brain.Event:2".into(),
                    writer: "lsnn".into(),
                },
            },
            // An empty version is still a file-version event (a oneof member is written).
            TbEvent {
                wall_time: 2.0,
                step: 0,
                payload: EventPayload::FileVersion {
                    version: String::new(),
                    writer: String::new(),
                },
            },
        ] {
            assert_eq!(TbEvent::decode(&e.encode()).unwrap(), e);
        }
    }

    /// Hand-assembled bytes: field 1 fixed64, field 2 varint, field 5 summary.
    #[test]
    fn wire_layout() {
        let bytes = scalar("t", 300, 1.0).encode();
        let mut want = vec![0x09];
        want.extend_from_slice(&1.5f64.to_le_bytes());
        want.extend_from_slice(&[0x10, 0xAC, 0x02]); // 300 = 0b10_0101100
        want.extend_from_slice(&[0x2A, 0x0A, 0x0A, 0x08, 0x0A, 0x01, b't', 0x15]);
        want.extend_from_slice(&1.0f32.to_le_bytes());
        assert_eq!(bytes, want);
        // A negative step is ten bytes.
        assert_eq!(scalar("t", -1, 1.0).encode().len(), want.len() - 2 + 10);
    }

    #[test]
    fn malformed() {
        // wall time in bytes 0..9, the step in 9..11, the summary from 11: a cut inside a
        // field fails, a cut between fields is a shorter message.
        let good = scalar("tag", 5, 2.0).encode();
        for cut in 1..good.len() {
            let decoded = TbEvent::decode(&good[..cut]);
            assert_eq!(decoded.is_ok(), cut == 9 || cut == 11, "cut at {cut}");
        }
        assert!(TbEvent::decode(&[0x0B]).is_err()); // a group
        assert!(TbEvent::decode(&[0x00, 0x01]).is_err()); // field 0
        let mut endless = vec![0x10]; // the step, then a varint that never ends
        endless.extend([0x80; 11]);
        assert!(TbEvent::decode(&endless).is_err());
        assert!(TbEvent::decode(&[0x11, 0, 0, 0, 0, 0, 0, 0, 0]).is_err()); // step as fixed64
    }
}
