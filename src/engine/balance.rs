//! Least-connections balancing with round-robin tie-breaks (HAProxy's
//! `balance leastconn`). Connection counts are the backends' shared atomics,
//! so all workers balance on the same numbers; the round-robin cursor is the
//! worker's own.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::snapshot::Backend;

/// A worker's cursor for one service.
#[derive(Debug, Default, Clone, Copy)]
pub struct RoundRobin(usize);

/// Picks the backend with the fewest active connections relative to its
/// weight, skipping `avoid` (the one that just failed, for the redispatch
/// retry). Among equals, the first at or after the cursor wins, and the
/// cursor moves past it.
pub fn pick<'a>(
    backends: &'a [Arc<Backend>],
    cursor: &mut RoundRobin,
    avoid: Option<SocketAddr>,
) -> Option<&'a Arc<Backend>> {
    let n = backends.len();
    // (index, active + 1, weight): compared as (a+1)/w without division.
    let mut best: Option<(usize, u64, u64)> = None;
    for k in 0..n {
        let i = (cursor.0 + k) % n;
        let b = &backends[i];
        // A drained backend takes sticky clients only, never a new one.
        if Some(b.addr()) == avoid || b.is_draining() {
            continue;
        }
        let load = b.active() as u64 + 1;
        let w = u64::from(b.weight());
        if best.is_none_or(|(_, l, bw)| load * bw < l * w) {
            best = Some((i, load, w));
        }
    }
    let (i, _, _) = best?;
    cursor.0 = (i + 1) % n;
    Some(&backends[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::BackendLease;

    fn backends(n: u16) -> Vec<Arc<Backend>> {
        (1..=n)
            .map(|p| Arc::new(Backend::new(SocketAddr::from(([127, 0, 0, 1], p)))))
            .collect()
    }

    #[test]
    fn ties_rotate() {
        let b = backends(3);
        let mut rr = RoundRobin::default();
        let ports: Vec<u16> = (0..6)
            .map(|_| pick(&b, &mut rr, None).unwrap().addr().port())
            .collect();
        assert_eq!(ports, [1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn least_connections_wins() {
        let b = backends(3);
        let _l1 = BackendLease::acquire(&b[0]);
        let _l2 = BackendLease::acquire(&b[1]);
        let mut rr = RoundRobin::default();
        assert_eq!(pick(&b, &mut rr, None).unwrap().addr().port(), 3);
        let _l3 = BackendLease::acquire(&b[2]);
        let _l4 = BackendLease::acquire(&b[2]);
        assert_ne!(pick(&b, &mut rr, None).unwrap().addr().port(), 3);
    }

    #[test]
    fn weights_share_the_load() {
        let heavy = Arc::new(Backend::with_weight(
            SocketAddr::from(([127, 0, 0, 1], 1)),
            3,
        ));
        let light = Arc::new(Backend::with_weight(
            SocketAddr::from(([127, 0, 0, 1], 2)),
            1,
        ));
        let b = vec![heavy, light];
        let mut rr = RoundRobin::default();
        let mut leases = Vec::new();
        for _ in 0..8 {
            let chosen = pick(&b, &mut rr, None).unwrap();
            leases.push(BackendLease::acquire(chosen));
        }
        assert_eq!((b[0].active(), b[1].active()), (6, 2));
    }

    #[test]
    fn avoid_the_failed_one_unless_alone() {
        let b = backends(2);
        let mut rr = RoundRobin::default();
        let failed = b[0].addr();
        for _ in 0..4 {
            assert_eq!(pick(&b, &mut rr, Some(failed)).unwrap().addr().port(), 2);
        }
        assert!(pick(&b[..1], &mut rr, Some(failed)).is_none());
        assert!(pick(&[], &mut rr, None).is_none());
    }
}
