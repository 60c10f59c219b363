//! Token checks: WebSocket upgrades (subprotocol `lvqr.bearer.<token>` or
//! `?token=`) and admin requests (`Authorization: Bearer <token>` or
//! `?token=`).

/// The subprotocol prefix that carries a bearer token.
pub(crate) const BEARER_PREFIX: &str = "lvqr.bearer.";

/// The outcome of an upgrade's token check.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthDecision {
    /// Allowed; echo this subprotocol on the upgrade, if any.
    Allow(Option<String>),
    /// Refuse with 401 before the upgrade.
    Deny,
}

/// Decides an upgrade. `requested` are the client's subprotocols.
///
/// A requested `lvqr.bearer.*` subprotocol is echoed whenever the upgrade is
/// allowed, because browsers fail a handshake whose requested subprotocol is
/// not echoed.
pub(crate) fn check<'a>(
    expected: Option<&str>,
    requested: impl IntoIterator<Item = &'a str>,
    query_token: Option<&str>,
) -> AuthDecision {
    let bearers: Vec<&str> = requested
        .into_iter()
        .filter(|p| p.starts_with(BEARER_PREFIX))
        .collect();
    let Some(expected) = expected else {
        return AuthDecision::Allow(bearers.first().map(|s| s.to_string()));
    };
    if let Some(good) = bearers
        .iter()
        .find(|p| constant_time_eq(&p[BEARER_PREFIX.len()..], expected))
    {
        return AuthDecision::Allow(Some(good.to_string()));
    }
    if query_token.is_some_and(|t| constant_time_eq(t, expected)) {
        return AuthDecision::Allow(bearers.first().map(|s| s.to_string()));
    }
    AuthDecision::Deny
}

/// Whether an admin request may pass: no token configured, or the
/// `Authorization` header is `Bearer <token>`, or the query's token matches.
pub(crate) fn admin_allowed(
    expected: Option<&str>,
    authorization: Option<&str>,
    query_token: Option<&str>,
) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let bearer = authorization.and_then(|h| {
        let (scheme, token) = h.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    bearer.is_some_and(|t| constant_time_eq(t, expected))
        || query_token.is_some_and(|t| constant_time_eq(t, expected))
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_token_configured_allows_and_echoes() {
        assert_eq!(check(None, [], None), AuthDecision::Allow(None));
        assert_eq!(
            check(None, ["x", "lvqr.bearer.abc"], None),
            AuthDecision::Allow(Some("lvqr.bearer.abc".into()))
        );
    }

    #[test]
    fn token_by_subprotocol_or_query() {
        let t = Some("s3cret");
        assert_eq!(
            check(t, ["lvqr.bearer.s3cret"], None),
            AuthDecision::Allow(Some("lvqr.bearer.s3cret".into()))
        );
        assert_eq!(check(t, [], Some("s3cret")), AuthDecision::Allow(None));
        assert_eq!(check(t, ["lvqr.bearer.nope"], None), AuthDecision::Deny);
        assert_eq!(check(t, [], Some("s3cre")), AuthDecision::Deny);
        assert_eq!(check(t, [], None), AuthDecision::Deny);
    }

    #[test]
    fn admin_by_bearer_header_or_query() {
        assert!(admin_allowed(None, None, None));
        let t = Some("s3cret");
        assert!(admin_allowed(t, Some("Bearer s3cret"), None));
        assert!(admin_allowed(t, Some("bearer  s3cret "), None));
        assert!(admin_allowed(t, None, Some("s3cret")));
        assert!(!admin_allowed(t, None, None));
        assert!(!admin_allowed(t, Some("Bearer s3cre"), None));
        assert!(!admin_allowed(t, Some("Basic s3cret"), None));
        assert!(!admin_allowed(t, Some("s3cret"), None));
        assert!(!admin_allowed(t, Some("Bearer nope"), Some("nope")));
    }
}
