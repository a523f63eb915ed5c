//! Helpers the benchmark programs share: whether this is a real benchmark
//! run, parameters from the environment, and process measurements from
//! `/proc` and `getrusage`.
//!
//! `cargo test --all-targets` builds and runs every bench target without
//! `--bench`; the custom benchmarks then only say so and exit, because their
//! figures take minutes and mean nothing on a loaded CI machine.

#![allow(dead_code)]

pub mod hostile;

use std::time::Duration;

/// True under `cargo bench` (which passes `--bench`), false under `cargo test`.
pub fn bench_mode(name: &str) -> bool {
    let bench = std::env::args().any(|a| a == "--bench");
    if !bench {
        println!("{name}: test mode (no --bench): built and skipped; run `scripts/bench` for figures");
    }
    bench
}

/// A numeric parameter from the environment, or `default`.
pub fn param<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A duration parameter (humantime, e.g. `3m`, `90s`) from the environment.
pub fn duration_param(name: &str, default: Duration) -> Duration {
    std::env::var(name).ok().and_then(|v| humantime::parse_duration(&v).ok()).unwrap_or(default)
}

/// CPU (user + system) and peak RSS of a process, from `getrusage`/`wait4`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User + system CPU seconds.
    pub cpu_secs: f64,
    /// Peak resident set size in MiB.
    pub max_rss_mib: f64,
}

fn usage_of(ru: &libc::rusage) -> Usage {
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Usage { cpu_secs: tv(ru.ru_utime) + tv(ru.ru_stime), max_rss_mib: ru.ru_maxrss as f64 / 1024.0 }
}

/// This process's CPU so far and peak RSS.
pub fn self_usage() -> Usage {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    usage_of(&ru)
}

/// Waits for `child` to exit and returns its exit code and resource usage:
/// exact CPU over its whole life from `wait4`, and peak RSS from
/// `/proc/<pid>/status` `VmHWM` sampled every 20 ms. Not `wait4`'s
/// `ru_maxrss`: that counts the parent's pages the child had between fork
/// and exec, i.e. this benchmark's simulator data set.
pub fn wait_with_usage(child: std::process::Child) -> (i32, Usage) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let raw_pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let peak_kib = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak_kib) = (done.clone(), peak_kib.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let mib = proc_status_mib(raw_pid, "VmHWM");
                if mib.is_finite() {
                    peak_kib.fetch_max((mib * 1024.0) as u64, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let pid = raw_pid as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 writes into the zeroed struct we own; the child is ours
    // and is not waited for elsewhere (`Child` does not reap on drop).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(rc, pid, "wait4 failed");
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    let usage = Usage { max_rss_mib: peak_kib.load(Ordering::Relaxed) as f64 / 1024.0, ..usage_of(&ru) };
    (code, usage)
}

/// A field of `/proc/<pid>/status` in MiB (`VmRSS`, `VmHWM`), `pid` 0 = self.
pub fn proc_status_mib(pid: u32, field: &str) -> f64 {
    let path = if pid == 0 { "/proc/self/status".to_owned() } else { format!("/proc/{pid}/status") };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// User + system CPU seconds of `pid` so far, from `/proc/<pid>/stat`.
pub fn proc_cpu_secs(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

/// The `p`-quantile (0..=1) of `values` (sorted in place), or NaN if empty.
pub fn quantile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let index = ((values.len() - 1) as f64 * p).round() as usize;
    values[index]
}
