//! Who may change state through the dashboard. Pages and JSON are read-only; an action (a
//! POST) needs the actions switched on, a same-origin request, and the bearer token. Pure:
//! the routes hand in the request's headers.

use axum::http::StatusCode;

/// The request headers the checks look at.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub fetch_site: Option<&'a str>,
    pub authorization: Option<&'a str>,
}

/// Why an action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the dashboard is read-only: start the operator with --dashboard-actions to allow this"
    )]
    ReadOnly,
    #[error("cross-site request refused: actions are taken from the dashboard's own pages")]
    CrossSite,
    #[error("missing bearer token: send Authorization: Bearer <token>")]
    MissingToken,
    #[error("wrong bearer token")]
    WrongToken,
}

impl Refusal {
    /// The HTTP status of the refusal.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::ReadOnly | Refusal::CrossSite => StatusCode::FORBIDDEN,
            Refusal::MissingToken | Refusal::WrongToken => StatusCode::UNAUTHORIZED,
        }
    }
}

/// Checks an action request: `token` is `None` when actions are off.
pub fn check_action(token: Option<&str>, req: RequestFacts<'_>) -> Result<(), Refusal> {
    let token = token.ok_or(Refusal::ReadOnly)?;
    if cross_site(req) {
        return Err(Refusal::CrossSite);
    }
    let given = req
        .authorization
        .and_then(|h| {
            let (scheme, value) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| value.trim())
        })
        .filter(|v| !v.is_empty())
        .ok_or(Refusal::MissingToken)?;
    if same_secret(given, token) {
        Ok(())
    } else {
        Err(Refusal::WrongToken)
    }
}

/// Compares digests of both, every byte: the time taken tells nothing of how much matched,
/// nor of the token's length.
fn same_secret(given: &str, token: &str) -> bool {
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    let (a, b) = (digest(given), digest(token));
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// A browser's request made by another site's page: `Sec-Fetch-Site` says so, or `Origin`
/// names another host than the one addressed. Clients that send neither (curl) are not
/// browsers acting for another site; the token still applies.
fn cross_site(req: RequestFacts<'_>) -> bool {
    if let Some(site) = req.fetch_site
        && !matches!(site.trim(), "same-origin" | "none")
    {
        return true;
    }
    match req.origin {
        None => false,
        Some(origin) => {
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            match (authority, req.host) {
                (Some(a), Some(host)) => !a.trim_end_matches('/').eq_ignore_ascii_case(host),
                _ => true,
            }
        }
    }
}

/// A new random token (64 hex digits) for local mode.
pub fn new_token() -> Result<String, ring::error::Unspecified> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(auth: Option<&'a str>) -> RequestFacts<'a> {
        RequestFacts {
            host: Some("127.0.0.1:9000"),
            origin: Some("http://127.0.0.1:9000"),
            fetch_site: Some("same-origin"),
            authorization: auth,
        }
    }

    #[test]
    fn actions_are_refused_while_read_only_whatever_the_token() {
        assert_eq!(
            check_action(None, req(Some("Bearer t"))),
            Err(Refusal::ReadOnly)
        );
        assert_eq!(Refusal::ReadOnly.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn the_right_token_from_the_same_origin_is_accepted() {
        assert_eq!(
            check_action(Some("s3cret"), req(Some("Bearer s3cret"))),
            Ok(())
        );
        assert_eq!(
            check_action(Some("s3cret"), req(Some("bearer  s3cret "))),
            Ok(())
        );
        // A non-browser client sends neither Origin nor Sec-Fetch-Site.
        let curl = RequestFacts {
            host: Some("x"),
            authorization: Some("Bearer s3cret"),
            ..RequestFacts::default()
        };
        assert_eq!(check_action(Some("s3cret"), curl), Ok(()));
    }

    #[test]
    fn a_missing_or_wrong_token_is_unauthorized() {
        assert_eq!(
            check_action(Some("s3cret"), req(None)),
            Err(Refusal::MissingToken)
        );
        assert_eq!(
            check_action(Some("s3cret"), req(Some("Basic s3cret"))),
            Err(Refusal::MissingToken)
        );
        assert_eq!(
            check_action(Some("s3cret"), req(Some("Bearer s3cre"))),
            Err(Refusal::WrongToken)
        );
        assert_eq!(Refusal::WrongToken.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn cross_site_requests_are_refused_even_with_the_token() {
        let token = Some("Bearer s3cret");
        let other_origin = RequestFacts {
            origin: Some("http://evil.example"),
            fetch_site: None,
            ..req(token)
        };
        let fetch_cross = RequestFacts {
            origin: None,
            fetch_site: Some("cross-site"),
            ..req(token)
        };
        let same_site = RequestFacts {
            fetch_site: Some("same-site"),
            ..req(token)
        };
        let null_origin = RequestFacts {
            origin: Some("null"),
            fetch_site: None,
            ..req(token)
        };
        for r in [other_origin, fetch_cross, same_site, null_origin] {
            assert_eq!(
                check_action(Some("s3cret"), r),
                Err(Refusal::CrossSite),
                "{r:?}"
            );
        }
    }

    #[test]
    fn new_tokens_are_long_and_differ() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
