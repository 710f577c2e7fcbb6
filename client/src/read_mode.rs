//! Where a client's reads go (DESIGN §5), as HDFS's `ObserverReadProxyProvider` and its
//! auto-msync period: every read on the active, or on observers with an optional msync
//! before reads so that they also see what *other* clients wrote.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Which members serve this client's reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// Every read on the active: linearizable.
    #[default]
    Active,
    /// Reads on observers under the state-ID rule (read-your-own-writes, monotonic reads);
    /// the active when no observer can answer.
    Observer,
}

/// When an observer-mode client runs `msync` on its own before a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoMsync {
    /// Never: reads see this client's own writes and anything it was handed a token for.
    #[default]
    Never,
    /// Before every read: every read sees every write acknowledged before it began
    /// (linearizable reads, at the cost of a round to the active).
    Always,
    /// Before a read when the last msync is older than this (HDFS's auto-msync period):
    /// reads are at most this stale with respect to other clients' writes.
    Every(Duration),
}

/// A read mode or auto-msync setting that does not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

impl FromStr for ReadMode {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "active" => Ok(ReadMode::Active),
            "observer" => Ok(ReadMode::Observer),
            other => Err(ParseError(format!(
                "read mode {other:?} is neither `active` nor `observer`"
            ))),
        }
    }
}

impl fmt::Display for ReadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadMode::Active => "active",
            ReadMode::Observer => "observer",
        })
    }
}

impl FromStr for AutoMsync {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "never" => Ok(AutoMsync::Never),
            "always" => Ok(AutoMsync::Always),
            period => parse_period(period).map(AutoMsync::Every).map_err(|e| {
                ParseError(format!(
                    "auto-msync {period:?} is not `never`, `always` or a duration like 500ms: {e}"
                ))
            }),
        }
    }
}

fn parse_period(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("a zero period is `always`".into());
    }
    Ok(d)
}

impl fmt::Display for AutoMsync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AutoMsync::Never => f.write_str("never"),
            AutoMsync::Always => f.write_str("always"),
            AutoMsync::Every(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_flags_take() {
        assert_eq!("active".parse::<ReadMode>().ok(), Some(ReadMode::Active));
        assert_eq!(
            "observer".parse::<ReadMode>().ok(),
            Some(ReadMode::Observer)
        );
        assert!("standby".parse::<ReadMode>().is_err());
        assert_eq!("never".parse::<AutoMsync>().ok(), Some(AutoMsync::Never));
        assert_eq!("always".parse::<AutoMsync>().ok(), Some(AutoMsync::Always));
        assert_eq!(
            "500ms".parse::<AutoMsync>().ok(),
            Some(AutoMsync::Every(Duration::from_millis(500)))
        );
        assert_eq!(
            "2s".parse::<AutoMsync>().ok(),
            Some(AutoMsync::Every(Duration::from_secs(2)))
        );
        for bad in ["", "0ms", "5", "ms", "-1s", "soon"] {
            assert!(bad.parse::<AutoMsync>().is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["never", "always", "250ms"] {
            let m: AutoMsync = s.parse().expect("parses");
            assert_eq!(m.to_string(), s);
        }
    }
}
