//! The workers' credentials for a queue on the operator's default Redis: a Redis user of the
//! queue's own ([`crate::queue::acl`]) whose URL goes into the Secret `<name>-workers-redis`,
//! so reading that Secret opens this queue only. The password lives in that Secret alone; a
//! reconcile reuses it (a new one would restart the workers every time), and changing the
//! queue's [`ROTATE_ANNOTATION`] replaces it. Where the operator may not manage users, workers
//! get the default URL (`auto`) and the queue says so, or the queue is refused (`required`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use tracing::Instrument;

use crate::api::{JobQueue, conditions};
use crate::operator::reasons;
use crate::operator::settings::PerQueueUsers;
use crate::operator::workload::{URL_SECRET_KEY, may_apply, url_secret, url_secret_name};
use crate::plan::QueuePlan;
use crate::queue::acl::{self, SetUser};
use crate::queue::error::QueueError;

use super::context::{Context, ReconcileError, publish};
use super::status::FIELD_MANAGER;

/// JobQueue annotation: a new value gives the queue's Redis user a new password.
pub const ROTATE_ANNOTATION: &str = "jobqueue.io/rotate-credentials";
/// Secret annotation: the [`ROTATE_ANNOTATION`] value the password was made for.
pub const ROTATED_ANNOTATION: &str = "jobqueue.io/credentials-rotation";
/// Condition: the queue's workers connect as a Redis user of their own.
pub const ISOLATED_CREDENTIALS: &str = "IsolatedCredentials";

/// What applying the workers' URL Secret came to.
pub enum UrlSecret {
    /// Applied; the Secret's uid and the URL in it.
    Applied { uid: Option<String>, url: String },
    /// The Secret exists and is not the queue's (its name).
    NotOwned(String),
    /// `--per-queue-users required` and this Redis does not allow it (the message).
    Refused(String),
}

/// Gives `jq`'s workers their URL for the default Redis `default_url`: the queue's own user's
/// where possible (see the module docs).
pub async fn apply_url_secret(
    ctx: &Context,
    jq: &JobQueue,
    plan: &QueuePlan,
    default_url: &str,
) -> Result<UrlSecret, ReconcileError> {
    let ns = jq.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let name = url_secret_name(jq);
    let existing = secrets.get_opt(&name).await?;
    if !may_apply(existing.as_ref().map(|s| &s.metadata), jq) {
        return Ok(UrlSecret::NotOwned(name));
    }
    let wanted = jq.annotations().get(ROTATE_ANNOTATION).cloned();
    let (url, rotation) = match ctx.per_queue_users {
        PerQueueUsers::Off => (default_url.to_string(), None),
        mode => match own_user(ctx, jq, plan, default_url, existing.as_ref(), &wanted).await? {
            Ok(url) => {
                isolated(ctx, jq, None).await;
                (url, wanted)
            }
            Err(why) if mode == PerQueueUsers::Required => {
                return Ok(UrlSecret::Refused(format!(
                    "--per-queue-users required: {why}; the queue's workers get no shared \
                     credentials"
                )));
            }
            Err(why) => {
                isolated(ctx, jq, Some(why)).await;
                (default_url.to_string(), None)
            }
        },
    };
    let mut secret = url_secret(jq, &url);
    if let Some(r) = rotation {
        secret.metadata.annotations = Some(BTreeMap::from([(ROTATED_ANNOTATION.into(), r)]));
    }
    let applied = secrets
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
    Ok(UrlSecret::Applied {
        uid: applied.metadata.uid,
        url,
    })
}

/// Sets the queue's user and returns its URL, or why this Redis does not allow it.
async fn own_user(
    ctx: &Context,
    jq: &JobQueue,
    plan: &QueuePlan,
    default_url: &str,
    existing: Option<&Secret>,
    wanted: &Option<String>,
) -> Result<Result<String, acl::Unmanageable>, ReconcileError> {
    let user = acl::user_name(&jq.namespace().unwrap_or_default(), &jq.name_any());
    let recorded = existing
        .and_then(|s| s.annotations().get(ROTATED_ANNOTATION))
        .cloned();
    let password = existing
        .filter(|_| recorded == *wanted)
        .and_then(|s| password_of(s, &user))
        .unwrap_or_else(acl::new_password);
    let endpoint = ctx.runtime.endpoint(default_url, &plan.redis.tls);
    let redis_error = |e: QueueError| ReconcileError::Redis(e.into());
    let mut conn = ctx
        .runtime
        .pool()
        .get(&endpoint)
        .await
        .map_err(redis_error)?;
    let span = tracing::info_span!("acl", user = %user);
    match acl::set_user(&mut conn, &user, &password, &plan.config)
        .instrument(span)
        .await
        .map_err(redis_error)?
    {
        SetUser::Done => Ok(Ok(with_user(default_url, &user, &password))),
        SetUser::Unmanageable(why) => Ok(Err(why)),
    }
}

/// The password in `secret`'s URL, if that URL is `user`'s.
fn password_of(secret: &Secret, user: &str) -> Option<String> {
    let data = secret.data.as_ref()?.get(URL_SECRET_KEY)?;
    let url = url::Url::parse(std::str::from_utf8(&data.0).ok()?).ok()?;
    let password = url.password().filter(|p| !p.is_empty())?;
    (url.username() == user).then(|| password.to_string())
}

/// `default_url` with `user` and `password` in place of its credentials.
fn with_user(default_url: &str, user: &str, password: &str) -> String {
    let Ok(mut url) = url::Url::parse(default_url) else {
        return default_url.to_string();
    };
    // `Endpoint::parse` accepted it, so it is a URL; one without a host (a Unix socket) cannot
    // carry credentials in its authority and stays as it is.
    if url.set_username(user).is_err() || url.set_password(Some(password)).is_err() {
        return default_url.to_string();
    }
    url.to_string()
}

/// Records whether the queue's workers have credentials of their own; the first time they do
/// not, a Warning Event says why.
async fn isolated(ctx: &Context, jq: &JobQueue, shared: Option<acl::Unmanageable>) {
    let id =
        super::super::runtime::ObjectId::new(jq.namespace().unwrap_or_default(), jq.name_any());
    let was_shared = jq.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == ISOLATED_CREDENTIALS && c.status == "False")
    });
    let (status, reason, message) = match &shared {
        None => (
            true,
            reasons::PER_QUEUE_USER,
            "the workers connect as a Redis user that reaches this queue's keys only".to_string(),
        ),
        Some(why) => (
            false,
            reasons::SHARED_CREDENTIALS,
            format!(
                "the workers get the operator's default Redis URL, which reaches every queue on \
                 that Redis: {why}"
            ),
        ),
    };
    let generation = jq.metadata.generation;
    ctx.status.update_jobqueue(&id, |s| {
        conditions::set(
            &mut s.conditions,
            ISOLATED_CREDENTIALS,
            status,
            reason,
            message.clone(),
            generation,
            k8s_openapi::jiff::Timestamp::now(),
        );
    });
    if shared.is_some() && !was_shared {
        publish(ctx, jq, true, reason, message).await;
    }
}

/// Removes the Redis user of the deleted queue `jq` (its workers' connections close with it).
pub async fn delete_user(ctx: &Context, jq: &JobQueue) -> Result<(), ReconcileError> {
    if ctx.per_queue_users == PerQueueUsers::Off || jq.spec.redis.is_some() {
        return Ok(());
    }
    let user = acl::user_name(&jq.namespace().unwrap_or_default(), &jq.name_any());
    let endpoint = ctx
        .runtime
        .endpoint(&ctx.default_redis, &Default::default());
    let cleanup = |e: QueueError| ReconcileError::Cleanup {
        action: "delete the queue's Redis user",
        source: e.into(),
    };
    let mut conn = ctx.runtime.pool().get(&endpoint).await.map_err(cleanup)?;
    acl::delete_user(&mut conn, &user).await.map_err(cleanup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn the_url_carries_the_queue_user_instead_of_the_operator() {
        let url = with_user("redis://:operator-pw@redis.jobs:6379/0", "jq.a.b", "pw1");
        assert_eq!(url, "redis://jq.a.b:pw1@redis.jobs:6379/0");
        let url = with_user("rediss://op:x@r:6380", "jq.a.b", "pw1");
        assert_eq!(url, "rediss://jq.a.b:pw1@r:6380");
    }

    #[test]
    fn only_the_users_own_password_is_reused() {
        let secret = |url: &str| Secret {
            data: Some(BTreeMap::from([(
                URL_SECRET_KEY.to_string(),
                ByteString(url.as_bytes().to_vec()),
            )])),
            ..Default::default()
        };
        let s = secret("redis://jq.a.b:pw1@r:6379");
        assert_eq!(password_of(&s, "jq.a.b").as_deref(), Some("pw1"));
        assert_eq!(password_of(&s, "jq.a.c"), None);
        assert_eq!(
            password_of(&secret("redis://:shared@r:6379"), "jq.a.b"),
            None
        );
        assert_eq!(
            password_of(&secret("redis://jq.a.b@r:6379"), "jq.a.b"),
            None
        );
    }
}
