//! [`ShardRows`]: the most rows one shard of a training batch holds — a number, or `"auto"`
//! for the largest that fits the memory budget, measured by probe steps ([`super::auto`]).

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most rows in one shard of a training batch (`shard_rows` in a config: a number or
/// `"auto"`). The shards, not the batch, set a step's peak memory: a batch of B rows runs as
/// ⌈B / rows⌉ shards, as many at a time as there are threads. The optimisation batch is the
/// config's `batch_size` whatever the shards are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardRows {
    /// At most this many rows per shard (at least 1).
    Fixed(usize),
    /// The largest power of two (or the whole batch) whose probe step's measured peak, with
    /// [`super::auto::AUTO_HEADROOM`], fits the memory budget; chosen once when a run starts and
    /// recorded in its state, so a resumed run keeps it.
    Auto,
}

impl Default for ShardRows {
    fn default() -> Self {
        ShardRows::Fixed(super::SHARD_ROWS)
    }
}

impl ShardRows {
    /// True for the default ([`super::SHARD_ROWS`] rows), which a config file leaves out.
    pub fn is_default(&self) -> bool {
        *self == ShardRows::default()
    }
}

impl std::fmt::Display for ShardRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShardRows::Fixed(n) => write!(f, "{n}"),
            ShardRows::Auto => f.write_str("auto"),
        }
    }
}

impl Serialize for ShardRows {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ShardRows::Fixed(n) => s.serialize_u64(*n as u64),
            ShardRows::Auto => s.serialize_str("auto"),
        }
    }
}

struct ShardRowsVisitor;

impl Visitor<'_> for ShardRowsVisitor {
    type Value = ShardRows;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number of rows (at least 1) or \"auto\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ShardRows, E> {
        usize::try_from(v)
            .map(ShardRows::Fixed)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ShardRows, E> {
        u64::try_from(v)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            .and_then(|v| self.visit_u64(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ShardRows, E> {
        if v == "auto" {
            Ok(ShardRows::Auto)
        } else {
            Err(E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
}

impl<'de> Deserialize<'de> for ShardRows {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ShardRows, D::Error> {
        d.deserialize_any(ShardRowsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_or_auto_round_trips_and_anything_else_is_refused() {
        for (text, want) in [("3", ShardRows::Fixed(3)), ("\"auto\"", ShardRows::Auto)] {
            let got: ShardRows = serde_json::from_str(text).unwrap();
            assert_eq!(got, want);
            assert_eq!(serde_json::to_string(&got).unwrap(), text);
        }
        for bad in ["-1", "1.5", "\"Auto\"", "\"4\"", "null", "[1]"] {
            let e = serde_json::from_str::<ShardRows>(bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("a number of rows"), "{bad}: {e}");
        }
    }
}
