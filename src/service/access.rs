//! Who may use `/v1` (contract §9): anyone on a loopback listener; on any other address
//! only a request carrying the configured bearer token. `/metrics` and health stay open,
//! as Prometheus and orchestrators expect.

use std::net::SocketAddr;

use hyper::HeaderMap;

/// The access rule of one listener.
#[derive(Clone)]
pub struct Access {
    /// Loopback: no token needed.
    open: bool,
    token: Option<Vec<u8>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("Access")
            .field("open", &self.open)
            .field("token_set", &self.token.is_some())
            .finish()
    }
}

impl Access {
    /// The rule for a listener bound to `addr` with `token` (empty: none configured).
    pub fn new(addr: SocketAddr, token: &str) -> Self {
        Access {
            open: addr.ip().is_loopback(),
            token: (!token.is_empty()).then(|| token.as_bytes().to_vec()),
        }
    }

    /// Whether the listener needs no token.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// `Ok` when a request with these headers may use `/v1`, else why not.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        if self.open {
            return Ok(());
        }
        let Some(token) = &self.token else {
            return Err(
                "this listener is not a loopback address and no api.token is \
                        configured: /v1 is closed here (set NHI_DRIFT_API__TOKEN)",
            );
        };
        let presented = headers
            .get(hyper::header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .and_then(|v| {
                v.strip_prefix(b"Bearer ")
                    .or_else(|| v.strip_prefix(b"bearer "))
            });
        match presented {
            None => Err("a bearer token is required: Authorization: Bearer <api.token>"),
            Some(p) if constant_time_eq(token, p) => Ok(()),
            Some(_) => Err("the bearer token is not the configured api.token"),
        }
    }
}

/// Compares a secret with a presented value in time that depends only on the presented
/// value's length, never on where they differ.
pub fn constant_time_eq(secret: &[u8], presented: &[u8]) -> bool {
    let mut diff = u8::from(secret.len() != presented.len());
    for (i, b) in presented.iter().enumerate() {
        let s = secret.get(i).copied().unwrap_or(!*b);
        diff |= s ^ b;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(hyper::header::AUTHORIZATION, a.parse().expect("header"));
        }
        h
    }

    #[test]
    fn loopback_is_open_and_other_addresses_need_the_token() {
        let local = Access::new("127.0.0.1:9898".parse().expect("addr"), "");
        assert_eq!(local.check(&headers(None)), Ok(()));
        let any = Access::new("0.0.0.0:9898".parse().expect("addr"), "s3cr3t");
        assert!(any.check(&headers(None)).is_err());
        assert!(any.check(&headers(Some("Bearer wrong!"))).is_err());
        assert!(any.check(&headers(Some("Bearer s3cr3"))).is_err());
        assert!(any.check(&headers(Some("Bearer s3cr3tt"))).is_err());
        assert!(any.check(&headers(Some("Basic s3cr3t"))).is_err());
        assert_eq!(any.check(&headers(Some("Bearer s3cr3t"))), Ok(()));
        let closed = Access::new("10.0.0.5:9898".parse().expect("addr"), "");
        assert!(closed.check(&headers(Some("Bearer "))).is_err());
        assert!(!format!("{any:?}").contains("s3cr3t"));
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"", b"\xff"));
        assert!(constant_time_eq(b"", b""));
    }
}
