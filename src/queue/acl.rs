//! A Redis ACL user per queue: the workers of a queue on the operator's default Redis connect
//! as a user that reaches that queue's keys only, so a Secret read in one namespace does not
//! open every queue on that Redis. Pure rule building plus the two commands (`ACL SETUSER`,
//! `ACL DELUSER`); nothing here knows about Kubernetes.

use redis::{ErrorKind, ServerErrorKind};

use super::config::QueueConfig;
use super::conn::RedisConn;
use super::error::QueueError;

/// The commands a queue user may run: everything a producer and a worker use (streams, hashes,
/// the enqueue script, `FCALL` of the function library, `PING`, `HELLO`, `CLIENT SETINFO`),
/// minus what could harm other queues or the server: `@dangerous` and `@admin` (`FLUSHALL`,
/// `KEYS`, `CONFIG`, `ACL` ...), `FUNCTION` but `FUNCTION LIST` (the client checks that the
/// library is there), and flushing or killing scripts. Keys are limited separately.
pub const COMMAND_RULES: &[&str] = &[
    "+@all",
    "-@dangerous",
    "-@admin",
    "-function",
    "+function|list",
    "-script|flush",
    "-script|kill",
];

/// The Redis user of the queue `name` in `namespace`: `jq.<namespace>.<name>`. A namespace is
/// a DNS label (no dots), so the name is unambiguous, and it needs no escaping in a URL.
pub fn user_name(namespace: &str, name: &str) -> String {
    format!("jq.{namespace}.{name}")
}

/// `key` as an ACL key pattern that matches it literally: Redis glob-matches key patterns
/// (`*`, `?`, `[...]`, and `\` escapes); `{` and `}` are not special to it.
pub fn escape_glob(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The key patterns of `config`'s queue: its stream, every auxiliary key (`<prefix>:*`, all in
/// its hash tag) and its dead-letter stream.
pub fn key_patterns(config: &QueueConfig) -> Vec<String> {
    let mut patterns = vec![
        format!("~{}", escape_glob(config.stream())),
        format!("~{}*", escape_glob(&config.keys.aux(""))),
    ];
    let dead = format!("~{}", escape_glob(&config.dead_letter));
    if !patterns.contains(&dead) && !config.dead_letter.starts_with(&config.keys.aux("")) {
        patterns.push(dead);
    }
    patterns
}

/// The whole `ACL SETUSER` argument list for `user` with `password` on `config`'s queue.
/// `reset` first: the user ends up with exactly these rules and this one password, whatever it
/// had before, so applying it again is harmless and a new password replaces the old one.
pub fn setuser_args(user: &str, password: &str, config: &QueueConfig) -> Vec<String> {
    let mut args = vec![
        "SETUSER".to_string(),
        user.to_string(),
        "reset".into(),
        "on".into(),
        format!(">{password}"),
        "resetchannels".into(),
    ];
    args.extend(key_patterns(config));
    args.extend(COMMAND_RULES.iter().map(|r| r.to_string()));
    args
}

/// A fresh random password: 32 bytes from the system's CSPRNG, hex (URL-safe as is).
pub fn new_password() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why the operator cannot manage users on a Redis.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unmanageable {
    /// Its own user may not run `ACL SETUSER`.
    #[error("the operator's Redis user may not run ACL SETUSER (NOPERM)")]
    NoPermission,
    /// No ACLs (Redis before 6.0), or a proxy that does not pass `ACL` on.
    #[error("this Redis does not know ACL SETUSER (Redis 6.0 or later is needed)")]
    NoAcl,
    /// A Redis Cluster: users are per node, and one `ACL SETUSER` reaches one node only.
    #[error("the default Redis is a Redis Cluster, where users would have to be set on every node")]
    Cluster,
}

/// What setting a queue's user came to.
#[derive(Debug)]
pub enum SetUser {
    /// The user exists with the rules and password given.
    Done,
    /// This Redis does not let the operator manage users.
    Unmanageable(Unmanageable),
}

/// Classifies a refused `ACL` command. Any other error is the connection's or Redis's.
fn unmanageable(e: &redis::RedisError) -> Option<Unmanageable> {
    if e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm) || e.code() == Some("NOPERM") {
        return Some(Unmanageable::NoPermission);
    }
    let text = e.to_string().to_lowercase();
    (text.contains("unknown command") || text.contains("unknown subcommand"))
        .then_some(Unmanageable::NoAcl)
}

/// Creates or updates `config`'s queue user `user` with `password` (see [`setuser_args`]).
/// Errors never carry the password: Redis echoes a rule it rejects.
pub async fn set_user(
    conn: &mut RedisConn,
    user: &str,
    password: &str,
    config: &QueueConfig,
) -> Result<SetUser, QueueError> {
    if conn.is_cluster() {
        return Ok(SetUser::Unmanageable(Unmanageable::Cluster));
    }
    let args = setuser_args(user, password, config);
    match redis::cmd("ACL").arg(&args).query_async::<()>(conn).await {
        Ok(()) => Ok(SetUser::Done),
        Err(e) => match unmanageable(&e) {
            Some(why) => Ok(SetUser::Unmanageable(why)),
            None => Err(scrubbed("ACL SETUSER", e, password)),
        },
    }
}

/// Deletes the user `user` (and thereby disconnects its clients). A user that is not there is
/// no error; neither is a Redis where the operator could not have created one.
pub async fn delete_user(conn: &mut RedisConn, user: &str) -> Result<(), QueueError> {
    if conn.is_cluster() {
        return Ok(());
    }
    match redis::cmd("ACL")
        .arg("DELUSER")
        .arg(user)
        .query_async::<i64>(conn)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if unmanageable(&e).is_some() => Ok(()),
        Err(error) => Err(QueueError::Redis {
            op: "ACL DELUSER",
            error,
        }),
    }
}

fn scrubbed(op: &'static str, e: redis::RedisError, password: &str) -> QueueError {
    if !e.to_string().contains(password) {
        return QueueError::Redis { op, error: e };
    }
    let error = redis::RedisError::from((
        ErrorKind::Client,
        "the rule was refused",
        e.to_string().replace(password, "***"),
    ));
    QueueError::Redis { op, error }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_specials_are_escaped_braces_are_not() {
        assert_eq!(
            escape_glob("jobqueue:{team-a/emails}"),
            "jobqueue:{team-a/emails}"
        );
        assert_eq!(escape_glob(r"a*b?c[d]e\f"), r"a\*b\?c\[d\]e\\f");
    }

    #[test]
    fn the_user_reaches_the_queue_keys_only() {
        let config = QueueConfig::new("jobqueue:{team-a/emails}");
        let args = setuser_args("jq.team-a.emails", "pw", &config);
        assert_eq!(
            &args[..6],
            [
                "SETUSER",
                "jq.team-a.emails",
                "reset",
                "on",
                ">pw",
                "resetchannels"
            ]
        );
        let keys: Vec<_> = args.iter().filter(|a| a.starts_with('~')).collect();
        assert_eq!(
            keys,
            ["~jobqueue:{team-a/emails}", "~jobqueue:{team-a/emails}:*"],
            "the dead-letter stream is an auxiliary key already"
        );
        assert!(!args.iter().any(|a| a == "allkeys" || a == "~*"));
        assert_eq!(&args[args.len() - COMMAND_RULES.len()..], COMMAND_RULES);
    }

    #[test]
    fn untagged_streams_and_other_dead_letter_keys_are_covered() {
        let mut config = QueueConfig::new("legacy*jobs");
        config.dead_letter = "{legacy*jobs}:graveyard".into();
        assert_eq!(
            key_patterns(&config),
            [r"~legacy\*jobs", r"~{legacy\*jobs}:*"]
        );
        config.dead_letter = "elsewhere".into();
        assert_eq!(key_patterns(&config)[2], "~elsewhere");
    }

    #[test]
    fn names_and_passwords() {
        assert_eq!(user_name("team-a", "emails.v2"), "jq.team-a.emails.v2");
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn refusals_are_told_apart_from_failures() {
        let noperm = redis::RedisError::from((
            ErrorKind::Server(ServerErrorKind::NoPerm),
            "NOPERM",
            "this user has no permissions to run the 'acl|setuser' command".to_string(),
        ));
        assert_eq!(unmanageable(&noperm), Some(Unmanageable::NoPermission));
        let old = redis::RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "An error was signalled by the server",
            "unknown command 'ACL'".to_string(),
        ));
        assert_eq!(unmanageable(&old), Some(Unmanageable::NoAcl));
        let io = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(unmanageable(&io), None);
    }

    #[test]
    fn errors_never_carry_the_password() {
        let e = redis::RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "An error was signalled by the server",
            "Error in ACL SETUSER modifier '>s3cret': Syntax error".to_string(),
        ));
        let e = scrubbed("ACL SETUSER", e, "s3cret");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}
