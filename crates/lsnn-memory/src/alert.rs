//! Memory alerts: warn and critical thresholds with hysteresis. An [`AlertMonitor`] turns a
//! stream of usage figures into level changes ([`MemoryAlert`]) — one when usage rises past a
//! threshold, one when it has fallen clearly below it again — so that usage hovering at a
//! threshold does not raise an alert per reading.

use crate::error::{MemoryError, Result};
use crate::manager::MemoryLimit;
use serde::{Deserialize, Serialize};

/// How close usage is to its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    /// Below every threshold (or back below it by the hysteresis).
    Normal,
    /// At or past the warn threshold.
    Warn,
    /// At or past the critical threshold.
    Critical,
}

/// The thresholds of an [`AlertMonitor`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlertConfig {
    /// Usage at or past which the level is at least [`AlertLevel::Warn`].
    pub warn: Option<MemoryLimit>,
    /// Usage at or past which the level is [`AlertLevel::Critical`].
    pub critical: Option<MemoryLimit>,
    /// A level is left only once usage is below `(1 − hysteresis) ×` its threshold; in [0, 1).
    pub hysteresis: f64,
}

/// The default hysteresis: a level is left 5% below its threshold.
pub const DEFAULT_HYSTERESIS: f64 = 0.05;

impl AlertConfig {
    /// Warn and critical thresholds (either may be `None`) with the default hysteresis.
    pub fn new(warn: Option<MemoryLimit>, critical: Option<MemoryLimit>) -> Self {
        AlertConfig {
            warn,
            critical,
            hysteresis: DEFAULT_HYSTERESIS,
        }
    }

    /// With another hysteresis (a fraction in [0, 1)).
    pub fn with_hysteresis(mut self, hysteresis: f64) -> Self {
        self.hysteresis = hysteresis;
        self
    }
}

/// A change of level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryAlert {
    /// The level before.
    pub from: AlertLevel,
    /// The level now.
    pub to: AlertLevel,
    /// The usage that changed it.
    pub bytes: u64,
    /// The threshold crossed: the new level's when rising, the old level's when falling.
    pub threshold: u64,
}

impl MemoryAlert {
    /// True when the level went up.
    pub fn is_rise(&self) -> bool {
        self.to > self.from
    }
}

/// Warn and critical thresholds in bytes and the current level.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertMonitor {
    warn: Option<u64>,
    critical: Option<u64>,
    hysteresis: f64,
    level: AlertLevel,
}

impl AlertMonitor {
    /// A monitor at [`AlertLevel::Normal`] with `config`'s thresholds; a fraction is of
    /// `reference` bytes (a budget, or the device's memory: [`crate::MemoryManager::alert_monitor`]
    /// chooses). Errors: an invalid limit, a hysteresis outside [0, 1), or a warn threshold not
    /// below the critical one.
    pub fn new(config: &AlertConfig, reference: u64) -> Result<Self> {
        for (what, limit) in [
            ("warn threshold", &config.warn),
            ("critical threshold", &config.critical),
        ] {
            if let Some(l) = limit {
                l.validate(what)?;
            }
        }
        if !(0.0..1.0).contains(&config.hysteresis) {
            return Err(MemoryError::InvalidConfig(format!(
                "alert hysteresis {}; expected a fraction in [0, 1)",
                config.hysteresis
            )));
        }
        let warn = config.warn.map(|l| l.resolve(reference));
        let critical = config.critical.map(|l| l.resolve(reference));
        for (what, t) in [("warn", warn), ("critical", critical)] {
            if t == Some(0) {
                return Err(MemoryError::InvalidConfig(format!(
                    "{what} threshold resolves to 0 bytes of {reference}; expected a larger fraction or a byte count"
                )));
            }
        }
        if let (Some(w), Some(c)) = (warn, critical) {
            if w >= c {
                return Err(MemoryError::InvalidConfig(format!(
                    "warn threshold {w} bytes is not below the critical threshold {c} bytes; expected warn < critical"
                )));
            }
        }
        Ok(AlertMonitor {
            warn,
            critical,
            hysteresis: config.hysteresis,
            level: AlertLevel::Normal,
        })
    }

    /// The (warn, critical) thresholds in bytes.
    pub fn thresholds(&self) -> (Option<u64>, Option<u64>) {
        (self.warn, self.critical)
    }

    /// The current level.
    pub fn level(&self) -> AlertLevel {
        self.level
    }

    fn threshold_of(&self, level: AlertLevel) -> Option<u64> {
        match level {
            AlertLevel::Normal => None,
            AlertLevel::Warn => self.warn,
            AlertLevel::Critical => self.critical,
        }
    }

    /// The highest level whose threshold, scaled by `scale`, `bytes` reaches.
    fn reached(&self, bytes: u64, scale: f64) -> AlertLevel {
        let at = |t: Option<u64>| t.is_some_and(|t| bytes as f64 >= t as f64 * scale);
        if at(self.critical) {
            AlertLevel::Critical
        } else if at(self.warn) {
            AlertLevel::Warn
        } else {
            AlertLevel::Normal
        }
    }

    /// Takes one usage reading; the level change it causes, if any. Usage rises to the highest
    /// threshold it reaches at once (Normal → Critical in one reading); it stays at a level until
    /// it falls below `(1 − hysteresis) ×` that level's threshold, then drops to the highest
    /// level whose band it is still in.
    pub fn observe(&mut self, bytes: u64) -> Option<MemoryAlert> {
        let up = self.reached(bytes, 1.0);
        let band = self.reached(bytes, 1.0 - self.hysteresis);
        let to = up.max(self.level.min(band));
        if to == self.level {
            return None;
        }
        let from = self.level;
        self.level = to;
        let crossed = if to > from { to } else { from };
        Some(MemoryAlert {
            from,
            to,
            bytes,
            threshold: self.threshold_of(crossed).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertLevel::*;

    fn monitor(h: f64) -> AlertMonitor {
        let cfg = AlertConfig::new(
            Some(MemoryLimit::Bytes(1000)),
            Some(MemoryLimit::Bytes(2000)),
        )
        .with_hysteresis(h);
        AlertMonitor::new(&cfg, 0).unwrap()
    }

    fn levels(m: &mut AlertMonitor, readings: &[u64]) -> Vec<Option<(AlertLevel, AlertLevel)>> {
        readings
            .iter()
            .map(|&b| m.observe(b).map(|a| (a.from, a.to)))
            .collect()
    }

    #[test]
    fn rises_at_the_threshold_and_falls_only_below_the_band() {
        let mut m = monitor(0.1);
        // 999 normal; 1000 warn; hovering at 950..1000 (inside the 10% band) changes nothing;
        // 899 < 900 leaves warn.
        assert_eq!(
            levels(&mut m, &[999, 1000, 950, 999, 1001, 901, 899, 950]),
            [
                None,
                Some((Normal, Warn)),
                None,
                None,
                None,
                None,
                Some((Warn, Normal)),
                None
            ]
        );
    }

    #[test]
    fn jumps_and_falls_across_both_levels_at_once() {
        let mut m = monitor(0.05);
        assert_eq!(
            m.observe(5000).unwrap(),
            MemoryAlert {
                from: Normal,
                to: Critical,
                bytes: 5000,
                threshold: 2000
            }
        );
        // 1950 is within critical's band (1900); 1899 is below it but in warn's.
        assert_eq!(
            levels(&mut m, &[1950, 1899]),
            [None, Some((Critical, Warn))]
        );
        assert_eq!(
            m.observe(10).unwrap(),
            MemoryAlert {
                from: Warn,
                to: Normal,
                bytes: 10,
                threshold: 1000
            }
        );
        // From critical straight to normal.
        m.observe(2000);
        assert_eq!(m.level(), Critical);
        assert_eq!(
            m.observe(0).map(|a| (a.from, a.to, a.threshold)),
            Some((Critical, Normal, 2000))
        );
        assert!(!MemoryAlert {
            from: Critical,
            to: Normal,
            bytes: 0,
            threshold: 0
        }
        .is_rise());
    }

    #[test]
    fn zero_hysteresis_falls_just_below_the_threshold() {
        let mut m = monitor(0.0);
        assert_eq!(
            levels(&mut m, &[1000, 999]),
            [Some((Normal, Warn)), Some((Warn, Normal))]
        );
    }

    #[test]
    fn one_threshold_alone() {
        let cfg = AlertConfig::new(None, Some(MemoryLimit::FractionOfDevice(0.5)));
        let mut m = AlertMonitor::new(&cfg, 4000).unwrap();
        assert_eq!(m.thresholds(), (None, Some(2000)));
        assert_eq!(
            levels(&mut m, &[1999, 2000, 1901, 1899]),
            [
                None,
                Some((Normal, Critical)),
                None,
                Some((Critical, Normal))
            ]
        );
        let mut none = AlertMonitor::new(&AlertConfig::new(None, None), 0).unwrap();
        assert_eq!(none.observe(u64::MAX), None);
    }

    #[test]
    fn bad_settings_are_errors() {
        let b = |n| Some(MemoryLimit::Bytes(n));
        for (cfg, reference, needle) in [
            (AlertConfig::new(b(2000), b(2000)), 0, "not below"),
            (AlertConfig::new(b(0), None), 0, "0 bytes"),
            (
                AlertConfig::new(Some(MemoryLimit::FractionOfDevice(1.5)), None),
                10,
                "(0, 1]",
            ),
            (
                AlertConfig::new(Some(MemoryLimit::FractionOfDevice(0.001)), None),
                100,
                "resolves to 0",
            ),
            (
                AlertConfig::new(b(1), None).with_hysteresis(1.0),
                0,
                "hysteresis",
            ),
            (
                AlertConfig::new(b(1), None).with_hysteresis(f64::NAN),
                0,
                "hysteresis",
            ),
            (
                AlertConfig::new(b(1), None).with_hysteresis(-0.1),
                0,
                "hysteresis",
            ),
        ] {
            let e = AlertMonitor::new(&cfg, reference).unwrap_err().to_string();
            assert!(e.contains(needle), "{e} (expected {needle:?})");
        }
    }
}
