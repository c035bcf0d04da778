//! A small logger to stderr, as text or JSON lines. Callers log causes and
//! ids, never request bodies, keys or credentials.

use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{LogFormat, LogLevel};
use crate::pb::Timestamp;

static SETTINGS: OnceLock<(LogLevel, LogFormat)> = OnceLock::new();

pub fn init(level: LogLevel, format: LogFormat) {
    SETTINGS.set((level, format)).ok();
}

pub fn enabled(level: LogLevel) -> bool {
    level <= SETTINGS.get().map_or(LogLevel::Info, |s| s.0)
}

pub fn write(level: LogLevel, msg: std::fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let format = SETTINGS.get().map_or(LogFormat::Text, |s| s.1);
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let ts = Timestamp::from_millis(ms).to_rfc3339();
    let lvl = match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
    };
    let line = match format {
        LogFormat::Text => format!("{ts} {lvl:5} {msg}\n"),
        LogFormat::Json => format!(
            "{}\n",
            serde_json::json!({"ts": ts, "level": lvl, "msg": msg.to_string()})
        ),
    };
    std::io::stderr().lock().write_all(line.as_bytes()).ok();
}

// The macros are imported from here (`use crate::log::{info, warn};`),
// not from the crate root.
macro_rules! error { ($($t:tt)*) => { $crate::log::write($crate::config::LogLevel::Error, format_args!($($t)*)) } }
macro_rules! warn_ { ($($t:tt)*) => { $crate::log::write($crate::config::LogLevel::Warn, format_args!($($t)*)) } }
macro_rules! info { ($($t:tt)*) => { $crate::log::write($crate::config::LogLevel::Info, format_args!($($t)*)) } }
#[allow(unused_macros)]
macro_rules! debug { ($($t:tt)*) => { $crate::log::write($crate::config::LogLevel::Debug, format_args!($($t)*)) } }
#[allow(unused_imports)]
pub(crate) use {debug, error, info, warn_ as warn};
