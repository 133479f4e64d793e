//! The process-wide logger, writing nats-server's exact line format.
//!
//! A line is `[PID] 2026/11/24 13:01:20.429724 [INF] message` with `logtime` (local time, or UTC
//! with `logtime_utc`; microseconds truncated, as Go's `log` package), `[PID] [INF] message`
//! without. Labels: `INF` (notice), `ERR`, `WRN`, `DBG`, `TRC`, `FTL`. On a terminal stderr the
//! label is colored as nats-server colors it (`[\x1b[32mINF\x1b[0m]`); files and pipes get plain
//! labels.
//!
//! Invariants: each line is formatted into its own buffer first, then written with one
//! `write_all` while the sink's mutex is held, so lines never interleave across threads.
//! Debug and trace are atomics: `log_debug!`/`log_trace!` cost one relaxed load when off and do
//! not evaluate their arguments. Logging is for rare events (start, stop, errors, slow
//! consumers): shards must never log per message. Write errors are ignored (there is nowhere
//! to report them).
//!
//! Before [`init`], lines go to stderr with timestamps in local time, without colors.

use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Options;

/// Severity of a line, with nats-server's three-letter label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `[INF]`: nats-server's Noticef.
    Info,
    Error,
    Warn,
    Debug,
    Trace,
    Fatal,
}

impl Level {
    /// The plain label, as in files and pipes.
    pub fn label(self) -> &'static str {
        match self {
            Level::Info => "INF",
            Level::Error => "ERR",
            Level::Warn => "WRN",
            Level::Debug => "DBG",
            Level::Trace => "TRC",
            Level::Fatal => "FTL",
        }
    }

    /// The ANSI color nats-server gives the label on a terminal.
    fn color(self) -> &'static str {
        match self {
            Level::Info => "32",
            Level::Error | Level::Fatal => "31",
            Level::Warn => "0;93",
            Level::Debug => "36",
            Level::Trace => "33",
        }
    }
}

/// A wall-clock time broken into the fields the log line prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    pub year: i32,
    /// 1-12.
    pub month: u8,
    /// 1-31.
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// 0-999_999.
    pub microsecond: u32,
}

impl Timestamp {
    /// Now, in UTC or in the local time zone.
    pub fn now(utc: bool) -> Timestamp {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
        let microsecond = since_epoch.subsec_micros();
        if utc {
            Timestamp::from_unix_utc(seconds, microsecond)
        } else {
            Timestamp::from_unix_local(seconds, microsecond)
        }
    }

    /// Seconds since the Unix epoch, in UTC (days to civil date, proleptic Gregorian).
    pub fn from_unix_utc(seconds: i64, microsecond: u32) -> Timestamp {
        let days = seconds.div_euclid(86_400);
        let second_of_day = seconds.rem_euclid(86_400);
        // Howard Hinnant's days_from_civil inverse, with eras of 400 years.
        let shifted = days + 719_468;
        let era = shifted.div_euclid(146_097);
        let day_of_era = shifted.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_from_march = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
        let month = if month_from_march < 10 {
            month_from_march + 3
        } else {
            month_from_march - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Timestamp {
            year: i32::try_from(year).unwrap_or(i32::MAX),
            month: month as u8,
            day: day as u8,
            hour: (second_of_day / 3600) as u8,
            minute: (second_of_day / 60 % 60) as u8,
            second: (second_of_day % 60) as u8,
            microsecond,
        }
    }

    /// Seconds since the Unix epoch, in the local time zone (`localtime_r`); UTC if that fails.
    fn from_unix_local(seconds: i64, microsecond: u32) -> Timestamp {
        let mut broken_down = libc::tm {
            tm_sec: 0,
            tm_min: 0,
            tm_hour: 0,
            tm_mday: 0,
            tm_mon: 0,
            tm_year: 0,
            tm_wday: 0,
            tm_yday: 0,
            tm_isdst: 0,
            tm_gmtoff: 0,
            tm_zone: std::ptr::null(),
        };
        let time = seconds as libc::time_t;
        // SAFETY: both pointers come from live references of the right types for the duration of the call; localtime_r is the reentrant variant and writes only into `broken_down`.
        let converted = unsafe { libc::localtime_r(&time, &mut broken_down) };
        if converted.is_null() {
            return Timestamp::from_unix_utc(seconds, microsecond);
        }
        Timestamp {
            year: broken_down.tm_year + 1900,
            month: (broken_down.tm_mon + 1) as u8,
            day: broken_down.tm_mday as u8,
            hour: broken_down.tm_hour as u8,
            minute: broken_down.tm_min as u8,
            second: broken_down.tm_sec as u8,
            microsecond,
        }
    }
}

/// Appends one complete line (ending in `\n`) to `line`: `[pid] ` then, when `time` is given,
/// `YYYY/MM/DD hh:mm:ss.uuuuuu `, then the label and the message. Pure, for tests.
pub fn format_line(
    line: &mut String,
    pid: u32,
    time: Option<&Timestamp>,
    level: Level,
    colors: bool,
    message: fmt::Arguments<'_>,
) {
    // Writing into a String cannot fail.
    let _ = write!(line, "[{pid}] ");
    if let Some(time) = time {
        let _ = write!(
            line,
            "{:04}/{:02}/{:02} {:02}:{:02}:{:02}.{:06} ",
            time.year, time.month, time.day, time.hour, time.minute, time.second, time.microsecond
        );
    }
    if colors {
        let _ = write!(line, "[\x1b[{}m{}\x1b[0m] ", level.color(), level.label());
    } else {
        let _ = write!(line, "[{}] ", level.label());
    }
    let _ = line.write_fmt(message);
    // Go's log package adds the newline only when the message lacks one.
    if !line.ends_with('\n') {
        line.push('\n');
    }
}

/// Where lines go.
enum Output {
    Stderr,
    File { file: File, path: PathBuf },
}

static OUTPUT: Mutex<Output> = Mutex::new(Output::Stderr);
static DEBUG: AtomicBool = AtomicBool::new(false);
static TRACE: AtomicBool = AtomicBool::new(false);
static LOGTIME: AtomicBool = AtomicBool::new(true);
static LOGTIME_UTC: AtomicBool = AtomicBool::new(false);
static COLORS: AtomicBool = AtomicBool::new(false);
/// The pid printed in each line; 0 until [`init`].
static PID: AtomicU32 = AtomicU32::new(0);

/// Opens the log file in append mode (created with mode 0640, as nats-server) if
/// `opts.log_file` is set, else logs to stderr; takes debug, trace, logtime and logtime_utc
/// from `opts`. May be called again (e.g. on reload); the previous file is closed.
/// nats-server prints `error opening file: <error>` and exits 1 when the file cannot be opened.
pub fn init(opts: &Options) -> io::Result<()> {
    let output = match &opts.log_file {
        Some(path) => Output::File {
            file: open_log_file(path)?,
            path: path.clone(),
        },
        None => Output::Stderr,
    };
    let colors = matches!(output, Output::Stderr) && io::stderr().is_terminal();
    PID.store(std::process::id(), Ordering::Relaxed);
    DEBUG.store(opts.debug, Ordering::Relaxed);
    TRACE.store(opts.trace, Ordering::Relaxed);
    LOGTIME.store(opts.logtime, Ordering::Relaxed);
    LOGTIME_UTC.store(opts.logtime_utc, Ordering::Relaxed);
    COLORS.store(colors, Ordering::Relaxed);
    *lock_output() = output;
    Ok(())
}

/// Reopens the log file (SIGUSR1, after log rotation). Nothing to do when logging to stderr.
pub fn reopen() -> io::Result<()> {
    let mut output = lock_output();
    if let Output::File { file, path } = &mut *output {
        *file = open_log_file(path)?;
    }
    Ok(())
}

fn open_log_file(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

fn lock_output() -> std::sync::MutexGuard<'static, Output> {
    // A thread that panicked while writing leaves the sink usable.
    OUTPUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// True when debug lines are written.
#[inline]
pub fn enabled_debug() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

/// True when trace lines are written.
#[inline]
pub fn enabled_trace() -> bool {
    TRACE.load(Ordering::Relaxed)
}

/// Formats and writes one line at `level` (debug and trace are not filtered here).
pub fn write(level: Level, message: fmt::Arguments<'_>) {
    let pid = match PID.load(Ordering::Relaxed) {
        0 => std::process::id(),
        pid => pid,
    };
    let time = LOGTIME
        .load(Ordering::Relaxed)
        .then(|| Timestamp::now(LOGTIME_UTC.load(Ordering::Relaxed)));
    let mut line = String::with_capacity(128);
    format_line(
        &mut line,
        pid,
        time.as_ref(),
        level,
        COLORS.load(Ordering::Relaxed),
        message,
    );
    let mut output = lock_output();
    let _ = match &mut *output {
        Output::Stderr => io::stderr().lock().write_all(line.as_bytes()),
        Output::File { file, .. } => file.write_all(line.as_bytes()),
    };
}

/// `[INF]` line (nats-server's Noticef).
pub fn notice(message: fmt::Arguments<'_>) {
    write(Level::Info, message);
}

/// `[ERR]` line.
pub fn error(message: fmt::Arguments<'_>) {
    write(Level::Error, message);
}

/// `[WRN]` line.
pub fn warn(message: fmt::Arguments<'_>) {
    write(Level::Warn, message);
}

/// `[FTL]` line. Does not exit: the caller decides (nats-server exits 1 after it).
pub fn fatal(message: fmt::Arguments<'_>) {
    write(Level::Fatal, message);
}

/// `[DBG]` line, only when debug is on.
pub fn debug(message: fmt::Arguments<'_>) {
    if enabled_debug() {
        write(Level::Debug, message);
    }
}

/// `[TRC]` line, only when trace is on.
pub fn trace(message: fmt::Arguments<'_>) {
    if enabled_trace() {
        write(Level::Trace, message);
    }
}

/// `log_notice!("Listening on {}", addr)`: an `[INF]` line.
#[macro_export]
macro_rules! log_notice {
    ($($arg:tt)+) => { $crate::log::notice(::core::format_args!($($arg)+)) };
}

/// `log_error!(...)`: an `[ERR]` line.
#[macro_export]
macro_rules! log_error {
    ($($arg:tt)+) => { $crate::log::error(::core::format_args!($($arg)+)) };
}

/// `log_warn!(...)`: a `[WRN]` line.
#[macro_export]
macro_rules! log_warn {
    ($($arg:tt)+) => { $crate::log::warn(::core::format_args!($($arg)+)) };
}

/// `log_fatal!(...)`: an `[FTL]` line; does not exit.
#[macro_export]
macro_rules! log_fatal {
    ($($arg:tt)+) => { $crate::log::fatal(::core::format_args!($($arg)+)) };
}

/// `log_debug!(...)`: a `[DBG]` line when debug is on; the arguments are not evaluated otherwise.
#[macro_export]
macro_rules! log_debug {
    ($($arg:tt)+) => {
        if $crate::log::enabled_debug() {
            $crate::log::write($crate::log::Level::Debug, ::core::format_args!($($arg)+))
        }
    };
}

/// `log_trace!(...)`: a `[TRC]` line when trace is on; the arguments are not evaluated otherwise.
#[macro_export]
macro_rules! log_trace {
    ($($arg:tt)+) => {
        if $crate::log::enabled_trace() {
            $crate::log::write($crate::log::Level::Trace, ::core::format_args!($($arg)+))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXED: Timestamp = Timestamp {
        year: 2026,
        month: 11,
        day: 24,
        hour: 13,
        minute: 1,
        second: 20,
        microsecond: 429_724,
    };

    fn line(time: Option<&Timestamp>, level: Level, colors: bool, text: &str) -> String {
        let mut line = String::new();
        format_line(&mut line, 3849, time, level, colors, format_args!("{text}"));
        line
    }

    #[test]
    fn line_with_logtime() {
        assert_eq!(
            line(Some(&FIXED), Level::Info, false, "Starting nats-server"),
            "[3849] 2026/11/24 13:01:20.429724 [INF] Starting nats-server\n"
        );
    }

    #[test]
    fn line_without_logtime() {
        assert_eq!(
            line(None, Level::Info, false, "Server is ready"),
            "[3849] [INF] Server is ready\n"
        );
    }

    #[test]
    fn every_level_label() {
        for (level, label) in [
            (Level::Info, "INF"),
            (Level::Error, "ERR"),
            (Level::Warn, "WRN"),
            (Level::Debug, "DBG"),
            (Level::Trace, "TRC"),
            (Level::Fatal, "FTL"),
        ] {
            assert_eq!(
                line(None, level, false, "x"),
                format!("[3849] [{label}] x\n")
            );
        }
    }

    #[test]
    fn colored_labels_match_nats_server_on_a_terminal() {
        assert_eq!(
            line(None, Level::Info, true, "x"),
            "[3849] [\x1b[32mINF\x1b[0m] x\n"
        );
        assert_eq!(
            line(None, Level::Warn, true, "x"),
            "[3849] [\x1b[0;93mWRN\x1b[0m] x\n"
        );
        assert_eq!(
            line(None, Level::Debug, true, "x"),
            "[3849] [\x1b[36mDBG\x1b[0m] x\n"
        );
        assert_eq!(
            line(None, Level::Trace, true, "x"),
            "[3849] [\x1b[33mTRC\x1b[0m] x\n"
        );
        assert_eq!(
            line(None, Level::Error, true, "x"),
            "[3849] [\x1b[31mERR\x1b[0m] x\n"
        );
        assert_eq!(
            line(None, Level::Fatal, true, "x"),
            "[3849] [\x1b[31mFTL\x1b[0m] x\n"
        );
    }

    #[test]
    fn fields_are_zero_padded() {
        let early = Timestamp {
            year: 2026,
            month: 1,
            day: 2,
            hour: 3,
            minute: 4,
            second: 5,
            microsecond: 6,
        };
        assert_eq!(
            line(Some(&early), Level::Error, false, "boom"),
            "[3849] 2026/01/02 03:04:05.000006 [ERR] boom\n"
        );
    }

    #[test]
    fn a_trailing_newline_is_not_doubled() {
        assert_eq!(line(None, Level::Info, false, "x\n"), "[3849] [INF] x\n");
    }

    #[test]
    fn utc_conversion() {
        assert_eq!(
            Timestamp::from_unix_utc(0, 0),
            Timestamp {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                microsecond: 0
            }
        );
        // 2026-11-24T13:01:20Z
        assert_eq!(
            Timestamp::from_unix_utc(1_795_525_280, 429_724),
            FIXED,
            "date -u -d @1795525280"
        );
        // Leap day and the last second of a year.
        let leap = Timestamp::from_unix_utc(951_782_400, 0);
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
        let last = Timestamp::from_unix_utc(1_767_225_599, 999_999);
        assert_eq!(
            (
                last.year,
                last.month,
                last.day,
                last.hour,
                last.minute,
                last.second
            ),
            (2025, 12, 31, 23, 59, 59)
        );
        let before_epoch = Timestamp::from_unix_utc(-1, 0);
        assert_eq!(
            (
                before_epoch.year,
                before_epoch.month,
                before_epoch.day,
                before_epoch.second
            ),
            (1969, 12, 31, 59)
        );
    }

    #[test]
    fn local_time_is_a_valid_date() {
        let now = Timestamp::now(false);
        assert!((1..=12).contains(&now.month) && (1..=31).contains(&now.day));
        assert!(now.hour < 24 && now.minute < 60 && now.second < 61);
        assert!(now.microsecond < 1_000_000);
        assert!(now.year >= 2024);
    }

    /// The only test touching the global logger (tests run in parallel).
    #[test]
    fn init_appends_to_the_log_file_and_filters_levels() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("natsring-log-{}.log", std::process::id()));
        std::fs::write(&path, "earlier line\n").unwrap();
        let options = Options {
            log_file: Some(path.clone()),
            logtime: false,
            ..Options::default()
        };
        init(&options).unwrap();
        assert!(!enabled_debug() && !enabled_trace());
        crate::log_notice!("Listening on {}:{}", "0.0.0.0", 4222);
        crate::log_debug!("hidden {}", unreachable_if_evaluated());
        crate::log_trace!("hidden {}", unreachable_if_evaluated());
        crate::log_warn!("careful");
        crate::log_error!("bad");
        crate::log_fatal!("worse");
        init(&Options {
            debug: true,
            trace: true,
            ..options.clone()
        })
        .unwrap();
        crate::log_debug!("shown");
        crate::log_trace!("shown too");
        reopen().unwrap();
        notice(format_args!("after reopen"));
        let pid = std::process::id();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            written,
            format!(
                "earlier line\n[{pid}] [INF] Listening on 0.0.0.0:4222\n[{pid}] [WRN] careful\n\
                 [{pid}] [ERR] bad\n[{pid}] [FTL] worse\n[{pid}] [DBG] shown\n\
                 [{pid}] [TRC] shown too\n[{pid}] [INF] after reopen\n"
            )
        );
        let fresh = path.with_extension("fresh");
        let _ = std::fs::remove_file(&fresh);
        init(&Options {
            log_file: Some(fresh.clone()),
            ..Options::default()
        })
        .unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777 & !0o640,
            0,
            "at most rw-r----- (0640 under the umask)"
        );
        init(&Options::default()).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(&fresh).unwrap();
        let missing = Options {
            log_file: Some("/nonexistent-natsring-dir/x.log".into()),
            ..Options::default()
        };
        assert!(init(&missing).is_err());
    }

    fn unreachable_if_evaluated() -> &'static str {
        panic!("arguments of a disabled level must not be evaluated")
    }
}
