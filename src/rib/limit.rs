//! BIRD's per-peer import limit: at most N routes accepted from a peer, and what happens to
//! the route that would exceed it (BIRD 1.6 `import limit N action warn|block|restart|disable`,
//! counted per protocol as BIRD 1.6 counts it).

use crate::model::{ImportLimit, LimitAction};
use crate::wire::Family;
use crate::wire::notification::{Code, Notification, cease};

/// What becomes of a new route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Not imported.
    Drop,
    /// Not imported, and the session goes down (`restart`, `disable`).
    Tear,
}

/// A new route arrives from a peer that has `accepted` routes; `hit` is the limit's state
/// (BIRD's `[HIT]`), set when the limit is first exceeded. `Tear` is said once: routes after
/// it in the same UPDATE are dropped.
pub fn admit(limit: Option<ImportLimit>, accepted: usize, hit: &mut bool) -> Verdict {
    let Some(l) = limit else {
        return Verdict::Accept;
    };
    if accepted < l.max as usize {
        if l.action == LimitAction::Block {
            // Blocking lasts until the count falls.
            *hit = false;
        }
        return Verdict::Accept;
    }
    let first = !*hit;
    *hit = true;
    match l.action {
        LimitAction::Warn => Verdict::Accept,
        LimitAction::Block => Verdict::Drop,
        LimitAction::Restart | LimitAction::Disable if first => Verdict::Tear,
        LimitAction::Restart | LimitAction::Disable => Verdict::Drop,
    }
}

/// A peer exceeded its import limit with `restart` or `disable`: its session goes down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub peer: crate::session::PeerId,
    /// The family of the route that exceeded it.
    pub family: Family,
    pub limit: ImportLimit,
}

impl Exceeded {
    /// Cease "Maximum Number of Prefixes Reached" with its data: AFI (2 octets), SAFI (1)
    /// and the limit (4) (RFC 4486 §4).
    pub fn notification(&self) -> Notification {
        let mut data = Vec::with_capacity(7);
        data.extend_from_slice(&self.family.afi.0.to_be_bytes());
        data.push(self.family.safi.0);
        data.extend_from_slice(&self.limit.max.to_be_bytes());
        Notification::new(Code::Cease, cease::MAX_PREFIXES, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(action: LimitAction) -> Option<ImportLimit> {
        Some(ImportLimit { max: 2, action })
    }

    #[test]
    fn each_action_at_the_limit() {
        use LimitAction::*;
        use Verdict::*;
        for (action, third, fourth) in [
            (Warn, Accept, Accept),
            (Block, Drop, Drop),
            (Restart, Tear, Drop),
            (Disable, Tear, Drop),
        ] {
            let mut hit = false;
            assert_eq!(admit(limit(action), 0, &mut hit), Accept);
            assert_eq!(admit(limit(action), 1, &mut hit), Accept);
            assert!(!hit);
            assert_eq!(admit(limit(action), 2, &mut hit), third, "{action:?}");
            assert!(hit);
            assert_eq!(admit(limit(action), 2, &mut hit), fourth, "{action:?}");
        }
        let mut hit = false;
        assert_eq!(admit(None, 1 << 30, &mut hit), Accept);
        assert!(!hit);
    }

    #[test]
    fn block_lifts_when_the_count_falls() {
        let mut hit = false;
        assert_eq!(admit(limit(LimitAction::Block), 2, &mut hit), Verdict::Drop);
        assert_eq!(
            admit(limit(LimitAction::Block), 1, &mut hit),
            Verdict::Accept
        );
        assert!(!hit);
    }

    #[test]
    fn the_cease_carries_family_and_limit() {
        let e = Exceeded {
            peer: 0,
            family: Family::IPV6_UNICAST,
            limit: ImportLimit {
                max: 1000,
                action: LimitAction::Restart,
            },
        };
        let n = e.notification();
        assert_eq!((n.code, n.subcode), (6, 1));
        assert_eq!(n.data, [0, 2, 1, 0, 0, 0x03, 0xe8]);
    }
}
