//! The leader's own check that its Lease is still renewed (docs/architecture.md#operator-loops).
//!
//! kube-lease-manager keeps saying "leader" while its renewals fail (a replica cut off from the
//! API server), so a partitioned leader would go on running its Redis loops after a standby
//! took over. The guard reads the Lease itself, with a short timeout, and says the lease is
//! fresh only while, by this process's clock, the last renewal it saw has not expired. The
//! operator leads only while both agree.

use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use tokio::sync::{Notify, watch};

/// When, by this process's monotonic clock, a lease renewed at `renewed` (wall clock) for
/// `duration` expires, given that the wall clock reads `wall_now` at `now`. A renewal time in
/// the future (clocks apart) counts as now.
pub fn expires_at(
    renewed: SystemTime,
    wall_now: SystemTime,
    now: Instant,
    duration: Duration,
) -> Instant {
    let age = wall_now.duration_since(renewed).unwrap_or(Duration::ZERO);
    now.checked_sub(age).unwrap_or(now) + duration
}

/// What one look at the Lease says: held by `identity` and renewed at that time, or not.
pub fn renewal_of(lease: &Lease, identity: &str) -> Option<SystemTime> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    Some(SystemTime::from(spec.renew_time.as_ref()?.0))
}

/// Starts the guard. The returned flag is true while the Lease is held by `identity` and its
/// last renewal, as read, has not expired by this process's clock. `check_now` asks for a look
/// at once (e.g. when the lease manager reports a change).
pub fn spawn(
    client: Client,
    namespace: &str,
    name: &str,
    identity: &str,
    duration: Duration,
    check_now: std::sync::Arc<Notify>,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let (name, identity) = (name.to_string(), identity.to_string());
    let (tx, rx) = watch::channel(false);
    let period = (duration / 4).max(Duration::from_millis(250));
    let task = tokio::spawn(async move {
        let mut valid_until: Option<Instant> = None;
        loop {
            // A read that does not answer within the period is no confirmation.
            if let Ok(Ok(lease)) = tokio::time::timeout(period, api.get_opt(&name)).await {
                valid_until =
                    lease
                        .as_ref()
                        .and_then(|l| renewal_of(l, &identity))
                        .map(|renewed| {
                            expires_at(renewed, SystemTime::now(), Instant::now(), duration)
                        });
            }
            let now = Instant::now();
            let fresh = valid_until.is_some_and(|until| now < until);
            tx.send_if_modified(|f| std::mem::replace(f, fresh) != fresh);
            // Wake for the next look, or exactly when the last renewal seen expires.
            let next = valid_until
                .filter(|until| *until > now)
                .map_or(period, |until| (until - now).min(period));
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                _ = check_now.notified() => {}
            }
        }
    });
    (rx, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewal_expires_one_duration_after_it_by_the_local_clock() {
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let d = Duration::from_secs(6);
        // Renewed 2 s ago: 4 s left.
        let until = expires_at(wall - Duration::from_secs(2), wall, now, d);
        assert_eq!(until, now + Duration::from_secs(4));
        // Renewed "in the future" (clocks apart): counted from now, never longer.
        assert_eq!(
            expires_at(wall + Duration::from_secs(9), wall, now, d),
            now + d
        );
        // Renewed long ago: already expired.
        assert!(expires_at(wall - Duration::from_secs(60), wall, now, d) < now);
    }

    #[test]
    fn only_the_identitys_own_renewal_counts() {
        let lease: Lease = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "l"},
            "spec": {"holderIdentity": "op-a", "renewTime": "2026-01-01T00:00:00.000000Z",
                     "leaseDurationSeconds": 6}
        }))
        .unwrap();
        let at = renewal_of(&lease, "op-a").expect("op-a holds it");
        assert_eq!(
            at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_767_225_600
        );
        assert_eq!(renewal_of(&lease, "op-b"), None);
        let unheld: Lease =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "l"}})).unwrap();
        assert_eq!(renewal_of(&unheld, "op-a"), None);
    }
}
