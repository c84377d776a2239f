//! Progress bars, log lines and messages. Results go to stdout, diagnostics to stderr.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata_repo::progress::Progress;

/// Prints an error chain as one `error:` line (plus any `hint:` lines).
pub fn error(e: &anyhow::Error) {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    let mut lines = msg.lines();
    eprintln!("error: {}", lines.next().unwrap_or(""));
    for l in lines {
        eprintln!("{l}");
    }
}

pub fn bytes(n: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", U[i])
    }
}

/// Progress on the terminal: an indicatif bar on a TTY, a log line every
/// 10 s otherwise, nothing with --quiet (warnings are always printed).
pub struct Term {
    quiet: bool,
    bar: Mutex<Option<ProgressBar>>,
    phase: Mutex<String>,
    files: AtomicU64,
    bytes: AtomicU64,
    total_files: AtomicU64,
    total_bytes: AtomicU64,
    started: Mutex<Instant>,
    last_log: Mutex<Instant>,
    tty: bool,
}

impl Term {
    pub fn new(quiet: bool) -> Term {
        Term {
            quiet,
            bar: Mutex::new(None),
            phase: Mutex::new(String::new()),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            total_files: AtomicU64::new(0),
            total_bytes: AtomicU64::new(0),
            started: Mutex::new(Instant::now()),
            last_log: Mutex::new(Instant::now()),
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn line(&self) -> String {
        let (f, b) = (
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        );
        let (tf, tb) = (
            self.total_files.load(Ordering::Relaxed),
            self.total_bytes.load(Ordering::Relaxed),
        );
        let secs = self
            .started
            .lock()
            .unwrap()
            .elapsed()
            .as_secs_f64()
            .max(0.001);
        let rate = b as f64 / secs;
        let eta = if rate > 0.0 && tb > b {
            format!(", ETA {:.0} s", (tb - b) as f64 / rate)
        } else {
            String::new()
        };
        format!(
            "{}: {f}/{tf} files, {}/{}, {}/s{eta}",
            self.phase.lock().unwrap(),
            bytes(b),
            bytes(tb),
            bytes(rate as u64)
        )
    }

    fn maybe_log(&self) {
        if self.quiet || self.tty {
            return;
        }
        let mut last = self.last_log.lock().unwrap();
        if last.elapsed() >= Duration::from_secs(10) {
            *last = Instant::now();
            eprintln!("{}", self.line());
        }
    }
}

impl Progress for Term {
    fn start(&self, phase: &str, files: Option<u64>, bytes: Option<u64>) {
        *self.phase.lock().unwrap() = phase.to_string();
        self.files.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.total_files
            .store(files.unwrap_or(0), Ordering::Relaxed);
        self.total_bytes
            .store(bytes.unwrap_or(0), Ordering::Relaxed);
        *self.started.lock().unwrap() = Instant::now();
        *self.last_log.lock().unwrap() = Instant::now();
        if self.quiet || !self.tty {
            return;
        }
        let pb =
            ProgressBar::with_draw_target(bytes.or(Some(0)), ProgressDrawTarget::stderr_with_hz(8));
        pb.set_style(
            ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}")
                .unwrap(),
        );
        pb.set_prefix(phase.to_string());
        *self.bar.lock().unwrap() = Some(pb);
    }

    fn add_total(&self, files: u64, bytes: u64) {
        self.total_files.fetch_add(files, Ordering::Relaxed);
        let tb = self.total_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(pb) = &*self.bar.lock().unwrap() {
            pb.set_length(tb);
        }
    }

    fn inc(&self, files: u64, bytes: u64) {
        let f = self.files.fetch_add(files, Ordering::Relaxed) + files;
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(pb) = &*self.bar.lock().unwrap() {
            pb.inc(bytes);
            if files > 0 {
                pb.set_message(format!(
                    "{f}/{} files",
                    self.total_files.load(Ordering::Relaxed)
                ));
            }
        }
        self.maybe_log();
    }

    fn warn(&self, msg: &str) {
        match &*self.bar.lock().unwrap() {
            Some(pb) => pb.suspend(|| eprintln!("warning: {msg}")),
            None => eprintln!("warning: {msg}"),
        }
    }

    fn info(&self, msg: &str) {
        if !self.quiet {
            match &*self.bar.lock().unwrap() {
                Some(pb) => pb.suspend(|| eprintln!("{msg}")),
                None => eprintln!("{msg}"),
            }
        }
    }

    fn finish(&self) {
        if let Some(pb) = self.bar.lock().unwrap().take() {
            pb.finish_and_clear();
        }
    }
}
