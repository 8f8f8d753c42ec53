//! CSRF protection of the login and consent forms: the browser holds a random cookie
//! (`SameSite=Strict`, `HttpOnly`); each form carries `HMAC(key, purpose ‖ cookie ‖ state)`,
//! where state is the sealed value the form also carries. A forged form from another site
//! has neither the victim's cookie nor a token made for it; a form of the attacker's own
//! session does not match the victim's cookie (login CSRF).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cookie's name. `__Host-` (only over https) pins it to this origin and path `/`.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-nexus_oauth"
    } else {
        "nexus_oauth"
    }
}

/// The `Set-Cookie` value for `value`.
pub fn set_cookie(secure: bool, value: &str) -> String {
    let name = cookie_name(secure);
    let secure_attr = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=600{secure_attr}")
}

/// The cookie's value in a `Cookie` header, if present.
pub fn cookie_value(cookie_header: &str, secure: bool) -> Option<&str> {
    let name = cookie_name(secure);
    cookie_header
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// A CSRF key.
pub struct Csrf(Hmac<Sha256>);

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csrf(..)")
    }
}

impl Csrf {
    pub fn new(key: &[u8; 32]) -> Self {
        // HMAC takes a key of any length.
        Self(Hmac::new_from_slice(key).unwrap_or_else(|_| unreachable!()))
    }

    fn mac(&self, purpose: &str, cookie: &str, state: &str) -> Hmac<Sha256> {
        let mut m = self.0.clone();
        for part in [purpose, cookie, state] {
            m.update(&(part.len() as u64).to_be_bytes());
            m.update(part.as_bytes());
        }
        m
    }

    /// The token a form carries.
    pub fn token(&self, purpose: &str, cookie: &str, state: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.mac(purpose, cookie, state).finalize().into_bytes())
    }

    /// Checks a form's token in constant time.
    pub fn verify(&self, purpose: &str, cookie: Option<&str>, state: &str, token: &str) -> bool {
        let Some(cookie) = cookie else {
            return false;
        };
        let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        self.mac(purpose, cookie, state).verify_slice(&raw).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_cookie_purpose_and_state() {
        let c = Csrf::new(&[1; 32]);
        let t = c.token("login", "cookie1", "state");
        assert!(c.verify("login", Some("cookie1"), "state", &t));
        assert!(!c.verify("login", Some("cookie2"), "state", &t));
        assert!(!c.verify("consent", Some("cookie1"), "state", &t));
        assert!(!c.verify("login", Some("cookie1"), "other", &t));
        assert!(!c.verify("login", None, "state", &t));
        assert!(!c.verify("login", Some("cookie1"), "state", "garbage!"));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(
            cookie_value("a=1; nexus_oauth=xyz; b=2", false),
            Some("xyz")
        );
        assert_eq!(cookie_value("a=1", false), None);
        assert_eq!(cookie_value("__Host-nexus_oauth=q", true), Some("q"));
        assert!(set_cookie(true, "v").contains("Secure"));
    }
}
