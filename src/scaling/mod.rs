//! Autoscaling policy: from a queue's backlog to its desired worker replicas (pure, no I/O).
//!
//! The metrics loop turns each Redis read into a [`Sample`] and feeds it to the queue's
//! [`History`]; [`recommend`] (or [`History::decide`], which also records the result) returns a
//! [`Decision`]: the replica count, the rule that chose it ([`Reason`]) and the bound that cut it
//! short ([`Limit`]). Its `Display` is the sentence for a Kubernetes Event, e.g.
//! `scaled 2 → 7: backlog 3400 needs 7 × 500` or `scaled 3 → 0: no backlog for 5m (cooldown 5m)`.
//! Time is whatever `Instant` the caller passes: nothing here reads a clock.
//!
//! # Semantics
//!
//! - **Metric.** `Backlog` = lag + pending (default), `Lag` or `Pending`. The replicas the metric
//!   needs are `ceil(metric / targetPerReplica)`, clamped to `[minReplicas, maxReplicas]`.
//! - **Activation.** At zero replicas the metric must exceed `activationThreshold` before any
//!   worker starts; the first scale goes straight to what the metric needs (still bounded by
//!   `scaleUp.maxStep`). Above zero the threshold plays no part.
//! - **Work in flight.** A pending job (read, not acknowledged) always keeps at least one
//!   replica, and wakes one from zero, whatever the metric.
//! - **Scale-up** is immediate, at most `scaleUp.maxStep` replicas per decision (unbounded by
//!   default).
//! - **Scale-down** never goes below the highest recommendation made within
//!   `scaleDown.stabilizationWindow` (HPA's rule), and removes at most `scaleDown.maxStep`
//!   replicas per decision (the loop decides once per `pollInterval`).
//! - **A whole window of evidence.** After the operator starts, and after a pause, nothing is
//!   removed until recommendations have been made for one whole window: the count found is
//!   treated as recommended just before. A restart never causes a sudden scale-in.
//! - **Scale to zero** (only with `minReplicas` 0) needs the window's recommendations all at 0
//!   *and* `cooldown` of observed idleness: every reading over that span showed the metric at 0
//!   and nothing pending. Until then one replica stays. Readings that cannot tell (a failed
//!   read, an unknown lag) neither end nor extend that span, so a flaky connection does not
//!   keep workers up forever; work that came and went entirely while reads were failing is
//!   not seen.
//! - **Missing data holds.** A failed read, no reading yet, or an unknown lag for `Lag`/`Backlog`
//!   keeps the current count (moved back inside `[min, max]` only if the bounds changed) and
//!   says so; missing data never scales anything to zero. When Redis reports nil lag (after
//!   XDEL or XGROUP SETID) the queue engine passes its bounded count of entries after the
//!   group's last-delivered id as [`Lag::Estimated`], and the reason says the lag was estimated.
//! - **Paused** keeps the current count, even outside the bounds.
//! - The bounds win over the step limits: a count outside `[min, max]` is brought inside at once.
//!
//! # Compared with KEDA + HPA
//!
//! KEDA polls its scaler (default every 30 s), handles 0 ↔ 1 itself (activation, then
//! `cooldownPeriod` after the scaler was last active) and leaves 1 ↔ N to an HPA that syncs every
//! 15 s, with a 10 % tolerance and a 5 min scale-down stabilization window. Here one function
//! does all of it every poll (default 1 s), so a backlog is acted on within one poll plus one
//! round trip. Differences a user may notice:
//! - leaving zero goes to the needed count directly, not to 1 and then to N one HPA sync later;
//! - cooldown counts time with *no work at all* (metric 0 and nothing pending), where KEDA counts
//!   time with the metric at or below the activation threshold: once workers run, a backlog
//!   below the threshold keeps one of them until it is done instead of being left waiting at
//!   zero (at zero, the threshold still decides when to start);
//! - no tolerance band: the stabilization window alone prevents flapping, and a constant metric
//!   gives a constant count once the window has passed;
//! - a metric read error holds the count and is named in the reason (as KEDA does without a
//!   `fallback`);
//! - a new queue, or the operator after a restart, scales to zero only after a full cooldown of
//!   idleness it has observed itself; KEDA scales a target it has no last-active time for
//!   straight to zero;
//! - step limits are per decision rather than HPA's `policies` with a `periodSeconds`.

mod history;
mod policy;
mod reason;
mod recommend;
mod sample;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use history::History;
pub use policy::{Metric, Policy, PolicyError};
pub use reason::{Limit, Reason};
pub use recommend::{Decision, event_reasons, recommend};
pub use sample::{Lag, Observed, Reading, Sample};
