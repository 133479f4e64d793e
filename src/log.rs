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
    File(LogFile),
}

/// A log file, rotated as nats-server rotates it (`log_size_limit`, `log_max_num`).
struct LogFile {
    file: File,
    path: PathBuf,
    /// Bytes in the file (its size when opened, plus what was written since).
    written: u64,
    /// Rotate once `written` passes this; 0: never.
    size_limit: u64,
    /// Files kept, the current one included, when rotating; 0: all.
    max_files: u32,
}

impl LogFile {
    fn open(path: &std::path::Path, size_limit: u64, max_files: u32) -> io::Result<LogFile> {
        let file = open_log_file(path)?;
        let written = file.metadata().map(|meta| meta.len()).unwrap_or(0);
        Ok(LogFile {
            file,
            path: path.to_path_buf(),
            written,
            size_limit,
            max_files,
        })
    }

    fn write_line(&mut self, line: &str) {
        if self.file.write_all(line.as_bytes()).is_ok() {
            self.written += line.len() as u64;
        }
        if self.size_limit > 0 && self.written > self.size_limit {
            self.rotate();
        }
    }

    /// Renames the file to `<path>.YYYY.MM.DD.hh.mm.ss.nnnnnnnnn` (local time), starts a new
    /// one with a line naming the backup, and removes the oldest backups past `max_files`.
    fn rotate(&mut self) {
        // One reading of the clock for the date and the nanoseconds, so names sort by time.
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let nanos = since_epoch.subsec_nanos();
        let now = Timestamp::from_unix_local(
            i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
            nanos / 1000,
        );
        let backup = format!(
            "{}.{:04}.{:02}.{:02}.{:02}.{:02}.{:02}.{nanos:09}",
            self.path.display(),
            now.year,
            now.month,
            now.day,
            now.hour,
            now.minute,
            now.second
        );
        let _ = std::fs::rename(&self.path, &backup);
        match open_log_file(&self.path) {
            Ok(file) => self.file = file,
            // Keep writing to the renamed file rather than lose lines; the next write retries.
            Err(_) => return,
        }
        let mut line = String::new();
        line_now(
            &mut line,
            Level::Info,
            format_args!("Rotated log, backup saved as \"{backup}\""),
        );
        let _ = self.file.write_all(line.as_bytes());
        self.written = line.len() as u64;
        if self.max_files > 0 {
            self.purge();
        }
    }

    /// Removes the oldest backups (`<name>.<timestamp>`) beyond `max_files - 1`.
    fn purge(&mut self) {
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let Some(base) = self.path.file_name().and_then(|name| name.to_str()) else {
            return;
        };
        let prefix = format!("{base}.");
        let Ok(entries) = std::fs::read_dir(&directory) else {
            return;
        };
        let mut backups: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| {
                name.strip_prefix(&prefix).is_some_and(|stamp| {
                    let parts: Vec<&str> = stamp.split('.').collect();
                    parts.len() == 7
                        && parts
                            .iter()
                            .all(|part| part.bytes().all(|b| b.is_ascii_digit()))
                })
            })
            .collect();
        // The timestamps sort oldest first, as nats-server relies on.
        backups.sort();
        let keep = self.max_files.saturating_sub(1) as usize;
        let excess = backups.len().saturating_sub(keep);
        for name in &backups[..excess] {
            let mut line = String::new();
            match std::fs::remove_file(directory.join(name)) {
                Ok(()) => line_now(&mut line, Level::Info, format_args!("Purged log file \"{name}\"")),
                Err(err) => line_now(
                    &mut line,
                    Level::Error,
                    format_args!("Unable to remove backup log file \"{name}\" ({err}), will attempt next rotation"),
                ),
            }
            let _ = self.file.write_all(line.as_bytes());
            self.written += line.len() as u64;
        }
    }
}

/// A line at `level` with the logger's current pid and time settings (no colors: colors are for
/// a terminal, see `write`).
fn line_now(line: &mut String, level: Level, message: fmt::Arguments<'_>) {
    line_with_colors(line, level, false, message);
}

fn line_with_colors(line: &mut String, level: Level, colors: bool, message: fmt::Arguments<'_>) {
    let pid = match PID.load(Ordering::Relaxed) {
        0 => std::process::id(),
        pid => pid,
    };
    let time = LOGTIME
        .load(Ordering::Relaxed)
        .then(|| Timestamp::now(LOGTIME_UTC.load(Ordering::Relaxed)));
    format_line(line, pid, time.as_ref(), level, colors, message);
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
        Some(path) => Output::File(LogFile::open(path, opts.log_size_limit, opts.log_max_num)?),
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

/// Reopens the log file (SIGUSR1, after log rotation). `Ok(false)`: nothing to reopen, the
/// log goes to stderr.
pub fn reopen() -> io::Result<bool> {
    let mut output = lock_output();
    match &mut *output {
        Output::File(log) => {
            *log = LogFile::open(&log.path, log.size_limit, log.max_files)?;
            Ok(true)
        }
        Output::Stderr => Ok(false),
    }
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
    let mut line = String::with_capacity(128);
    line_with_colors(&mut line, level, COLORS.load(Ordering::Relaxed), message);
    let mut output = lock_output();
    match &mut *output {
        Output::Stderr => {
            let _ = io::stderr().lock().write_all(line.as_bytes());
        }
        Output::File(log) => log.write_line(&line),
    }
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

    #[test]
    fn a_log_file_rotates_past_its_size_limit_and_keeps_max_files() {
        let dir = std::env::temp_dir().join(format!("natsring-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.log");
        let mut log = LogFile::open(&path, 1000, 3).unwrap();
        for index in 0..20 {
            log.write_line(&format!("{index:>199}\n"));
            // Backup names carry nanoseconds; make sure two rotations never share one.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let mut backups: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != "server.log")
            .collect();
        backups.sort();
        assert_eq!(
            backups.len(),
            2,
            "max_files 3: the current file and two backups"
        );
        assert!(backups.iter().all(|name| name.starts_with("server.log.20")));
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.starts_with(&format!("[{}] ", std::process::id())));
        assert!(
            current.contains("[INF] Rotated log, backup saved as \""),
            "{current}"
        );
        assert!(
            current.contains("[INF] Purged log file \"server.log."),
            "{current}"
        );
        // Every backup went past the limit by its last line, and no further.
        for name in &backups {
            let size = std::fs::metadata(dir.join(name)).unwrap().len();
            assert!(size > 1000 && size <= 1000 + 200, "{name}: {size}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
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
