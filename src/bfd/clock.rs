//! The BFD thread's clock. Tokio's timer wheel rounds a deadline up to its next millisecond
//! tick and parks in whole milliseconds, so its timers fire up to 2 ms late (1 ms on
//! average, measured: most of wrend's own share of a detection, `benches/bfd.rs`). A
//! session's detection timer (RFC 5880 §6.8.4) that is the next thing due runs on a timerfd
//! instead, to the microsecond. Every other wake-up stays on the wheel, which takes those
//! falling in one millisecond together: transmissions, whose jitter leaves room for the
//! wheel's lateness ([`WHEEL_LATE`], §6.8.7), and a detection timer that a packet has since
//! pushed back, which only queues itself again. So healthy sessions, however many, cost the
//! timerfd nothing.

use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::{Instant, Sleep};
use tracing::warn;

use crate::sys;

/// How late a wake-up on the wheel may come: its rounding up to the next tick, and the
/// park's to a whole millisecond.
pub(super) const WHEEL_LATE: Duration = Duration::from_millis(2);

/// A wake-up the BFD task asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wake {
    pub at: Instant,
    /// A detection timer coming due: not a moment late.
    pub precise: bool,
}

pub(super) struct Clock {
    /// `None` when no timerfd could be had: the wheel serves every wake-up.
    fd: Option<AsyncFd<OwnedFd>>,
    /// What the timerfd is armed for.
    armed: Option<Instant>,
    /// The wheel's one timer, moved only when its deadline changes: a timer made anew for
    /// each wait is registered anew, and tokio wakes its driver (an eventfd write and an
    /// extra epoll_wait) for each registration (`benches/bfd_scale.rs`).
    wheel: Pin<Box<Sleep>>,
    /// What the wheel's timer is set for; `None` once it has gone off.
    wheel_at: Option<Instant>,
}

impl Clock {
    /// Needs the runtime it will run on (the timerfd registers with its reactor).
    pub(super) fn new() -> Clock {
        let fd = sys::timerfd();
        if let Err(e) = &fd {
            warn!("BFD: no timerfd, detection timers are kept to the millisecond: {e}");
        }
        Clock {
            fd: fd.ok(),
            armed: None,
            wheel: Box::pin(tokio::time::sleep_until(Instant::now())),
            wheel_at: None,
        }
    }

    /// Returns at `wake` (never before it), or never for none.
    pub(super) async fn sleep_until(&mut self, wake: Option<Wake>) {
        match wake {
            None => std::future::pending().await,
            Some(Wake { at, precise: true }) if self.fd.is_some() => {
                if let Err(e) = self.precise(at).await {
                    warn!("BFD: timerfd failed, detection timers are kept to the millisecond: {e}");
                    self.fd = None;
                    self.on_wheel(at).await;
                }
            }
            Some(Wake { at, .. }) => self.on_wheel(at).await,
        }
    }

    /// The wheel's timer, set for `at` unless it already is (a wait the task left for a
    /// packet keeps its registration).
    async fn on_wheel(&mut self, at: Instant) {
        if self.wheel_at != Some(at) {
            self.wheel.as_mut().reset(at);
            self.wheel_at = Some(at);
        }
        self.wheel.as_mut().await;
        self.wheel_at = None;
    }

    /// The timerfd, armed for `at` unless it already is (a wait the task left for a packet
    /// keeps its expiry).
    async fn precise(&mut self, at: Instant) -> io::Result<()> {
        let Some(fd) = &self.fd else {
            return Ok(());
        };
        if self.armed != Some(at) {
            let wait = at.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return Ok(());
            }
            // Re-arming forgets an expiry of the old deadline not taken yet.
            sys::timerfd_arm(fd.get_ref(), wait)?;
            self.armed = Some(at);
        }
        loop {
            let mut ready = fd.readable().await?;
            match ready.try_io(|fd| sys::timerfd_take(fd.get_ref())) {
                Ok(taken) => {
                    self.armed = None;
                    return taken.map(|_| ());
                }
                // Readiness left over from an expiry the re-arming forgot.
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn precise(at: Instant) -> Option<Wake> {
        Some(Wake { at, precise: true })
    }

    /// Polls a wait once and leaves it, as the task does when a packet comes first.
    async fn leave(c: &mut Clock, at: Instant) {
        tokio::select! {
            biased;
            () = c.sleep_until(precise(at)) => panic!("the wait ended at once"),
            () = std::future::ready(()) => {}
        }
    }

    #[tokio::test]
    async fn a_precise_wake_is_never_early() {
        let mut c = Clock::new();
        assert!(c.fd.is_some(), "a timerfd");
        for us in [0, 250, 1_500, 3_250] {
            let at = Instant::now() + Duration::from_micros(us);
            c.sleep_until(precise(at)).await;
            assert!(Instant::now() >= at, "{us} µs");
        }
    }

    /// The task leaves a wait when a packet comes first; the deadline it then asks for is
    /// later, and the expiry of the one it left must not end the new wait early.
    #[tokio::test]
    async fn a_left_wait_does_not_end_the_next_early() {
        let mut c = Clock::new();
        leave(&mut c, Instant::now() + Duration::from_millis(1)).await;
        std::thread::sleep(Duration::from_millis(3));
        let later = Instant::now() + Duration::from_millis(20);
        c.sleep_until(precise(later)).await;
        assert!(Instant::now() >= later);
        // The same deadline asked for again after a left wait keeps its expiry.
        let at = Instant::now() + Duration::from_millis(2);
        leave(&mut c, at).await;
        c.sleep_until(precise(at)).await;
        assert!(Instant::now() >= at);
    }
}
