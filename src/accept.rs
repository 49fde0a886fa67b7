//! Accept loops that survive running out of file descriptors. `accept()` failing with
//! `EMFILE`/`ENFILE` leaves the connection queued and the socket readable, so retrying at once
//! spins a core and floods the log; instead the loop waits (10 ms, doubling to 1 s, back to
//! 10 ms after a success) and logs one line per interval with a count of what it held back.

use std::fmt::Display;
use std::fs::File;
use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

/// First wait after a failed `accept()`.
const FIRST_WAIT: Duration = Duration::from_millis(10);
/// Longest wait between retries: how long a freed descriptor may sit unused.
const LONGEST_WAIT: Duration = Duration::from_secs(1);
/// At most one log line of a kind per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A warning logged at most once per [`LOG_INTERVAL`], saying how many were held back.
pub struct RateLimited {
    what: &'static str,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    pub fn new(what: &'static str) -> RateLimited {
        RateLimited {
            what,
            last: None,
            suppressed: 0,
        }
    }

    /// Logs `msg` unless a line went out less than an interval ago (then counts it).
    pub fn warn(&mut self, msg: impl Display) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now < t + LOG_INTERVAL) {
            self.suppressed += 1;
            return;
        }
        match std::mem::take(&mut self.suppressed) {
            0 => warn!("{}: {msg}", self.what),
            n => warn!("{}: {msg} ({n} more since the last report)", self.what),
        }
        self.last = Some(now);
    }
}

/// An accept loop's state: the current wait, the error log and maybe a spare descriptor.
pub struct Backoff {
    wait: Duration,
    log: RateLimited,
    /// Given up when `accept()` finds no descriptor free, so that one connection still gets
    /// in (the control socket's: an operator can look while the process is out of them).
    spare: Option<Option<File>>,
}

impl Backoff {
    /// `what` names the listener in log lines.
    pub fn new(what: &'static str) -> Backoff {
        Backoff {
            wait: FIRST_WAIT,
            log: RateLimited::new(what),
            spare: None,
        }
    }

    /// As [`Backoff::new`], holding a spare descriptor for when none is left.
    pub fn with_spare(what: &'static str) -> Backoff {
        Backoff {
            spare: Some(spare()),
            ..Backoff::new(what)
        }
    }

    /// Calls `accept` until it succeeds, waiting longer after each failure.
    pub async fn accept<T, F>(&mut self, mut accept: impl FnMut() -> F) -> T
    where
        F: Future<Output = io::Result<T>>,
    {
        loop {
            match accept().await {
                Ok(x) => {
                    self.wait = FIRST_WAIT;
                    if let Some(s @ None) = &mut self.spare {
                        *s = spare();
                    }
                    return x;
                }
                Err(e)
                    if out_of_fds(&e)
                        && self.spare.as_mut().is_some_and(|s| s.take().is_some()) => {}
                Err(e) => {
                    self.log.warn(format_args!("accept: {e}; retrying"));
                    tokio::time::sleep(self.wait).await;
                    self.wait = (self.wait * 2).min(LONGEST_WAIT);
                }
            }
        }
    }
}

/// A descriptor to give up when `accept()` finds none free.
fn spare() -> Option<File> {
    File::open("/dev/null").ok()
}

fn out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failures wait 10, 20, 40 … ms up to 1 s; a success starts again at 10 ms.
    #[tokio::test(start_paused = true)]
    async fn waits_double_and_reset() {
        let mut b = Backoff::new("test");
        let mut calls = Vec::new();
        let start = Instant::now();
        let mut results = (0..9).map(|_| Err(io::Error::from_raw_os_error(libc::EMFILE)));
        let got: u8 = b
            .accept(|| {
                calls.push(start.elapsed().as_millis());
                let r = results.next().unwrap_or(Ok(7));
                async move { r }
            })
            .await;
        assert_eq!(got, 7);
        assert_eq!(calls, [0, 10, 30, 70, 150, 310, 630, 1270, 2270, 3270]);
        assert_eq!(b.wait, FIRST_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn one_line_per_interval() {
        let mut log = RateLimited::new("test");
        log.warn("a");
        assert!(log.last.is_some());
        for _ in 0..1000 {
            log.warn("b");
        }
        assert_eq!(log.suppressed, 1000);
        tokio::time::advance(LOG_INTERVAL).await;
        log.warn("c");
        assert_eq!(log.suppressed, 0);
    }
}
