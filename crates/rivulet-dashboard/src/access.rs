//! Who may see the dashboard. Without a token (the default, on loopback) everyone who reaches
//! the port; with `--dashboard-token`, only requests that carry `Authorization: Bearer TOKEN`
//! or the session cookie the page's token prompt (`/login`) sets. The cookie holds a value
//! derived from the token (SHA-256), not the token; comparisons are constant-time. Without
//! credentials, API and metrics requests get 401 with `WWW-Authenticate: Bearer`, pages get the
//! token prompt (also 401), and `/api/health` only its status — so container health checks work
//! without the token and learn nothing else.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const COOKIE: &str = "rivulet_dashboard";

/// The dashboard's access rule (see the module docs). `Debug` never shows the token.
#[derive(Clone, Default)]
pub struct Access {
    token: Option<String>,
    /// The cookie value a successful login sets.
    session: Option<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("token_required", &self.token.is_some())
            .finish()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Access {
    pub fn new(token: Option<String>) -> Access {
        let session = token.as_ref().map(|t| {
            let digest = Sha256::digest(format!("rivulet-dashboard-session\0{t}").as_bytes());
            digest.iter().map(|b| format!("{b:02x}")).collect()
        });
        Access { token, session }
    }

    pub fn required(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `token` (from the login form) is the token.
    pub fn token_matches(&self, token: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    }

    /// The session cookie's value (after a successful login).
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// Whether a request with these headers may pass.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let (Some(token), Some(session)) = (&self.token, &self.session) else {
            return true;
        };
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.strip_prefix("Bearer "))
            .any(|t| constant_time_eq(t.trim().as_bytes(), token.as_bytes()));
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .any(|v| constant_time_eq(v.as_bytes(), session.as_bytes()));
        bearer || cookie
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_or_session_cookie_and_nothing_else() {
        let open = Access::new(None);
        assert!(open.allows(&HeaderMap::new()));
        let a = Access::new(Some("s3cret-token-123".into()));
        assert!(!a.allows(&HeaderMap::new()));
        assert!(a.allows(&headers(&[(
            header::AUTHORIZATION,
            "Bearer s3cret-token-123"
        )])));
        assert!(!a.allows(&headers(&[(
            header::AUTHORIZATION,
            "Bearer s3cret-token-12"
        )])));
        assert!(!a.allows(&headers(&[(
            header::AUTHORIZATION,
            "Basic s3cret-token-123"
        )])));
        let session = a.session().unwrap().to_string();
        assert!(!session.contains("s3cret"));
        let cookie = format!("theme=dark; {COOKIE}={session}");
        assert!(a.allows(&headers(&[(header::COOKIE, &cookie)])));
        // The token itself is not a session.
        let cookie = format!("{COOKIE}=s3cret-token-123");
        assert!(!a.allows(&headers(&[(header::COOKIE, &cookie)])));
        assert!(a.token_matches("s3cret-token-123") && !a.token_matches("s3cret"));
        assert!(!format!("{a:?}").contains("s3cret"));
    }
}
