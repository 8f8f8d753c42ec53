//! The server-rendered pages: login, consent and error. No JavaScript; one inline style
//! allowed by its hash. Every page is sent with [`security_headers`]: a CSP that loads
//! nothing else, forbids framing and posts forms only here (and, for consent, to the
//! client's redirect origin, which the form's answer redirects to), `X-Frame-Options:
//! DENY`, no caching, no referrer to another origin (`same-origin`: with `no-referrer` a
//! browser sends `Origin: null` on the forms' POST, which the frontend's guard refuses). Every value shown is escaped.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The login form's target.
pub const LOGIN_PATH: &str = "/oauth/authorize/login";
/// The consent form's target.
pub const CONSENT_PATH: &str = "/oauth/authorize/consent";

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}label{display:block;margin:.6rem 0}input[type=text],input[type=password]{width:100%;padding:.4rem;box-sizing:border-box}\
button{padding:.5rem 1.2rem;margin:.8rem .6rem 0 0}.err{color:#a00}.muted{color:#666;font-size:.9rem}fieldset{margin:.8rem 0}";

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn style_hash() -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()))
}

/// Headers of every page; `form_target` is an extra origin forms may post to (and be
/// redirected to), for the consent page.
pub fn security_headers(form_target: Option<&str>) -> Vec<(&'static str, String)> {
    let extra = form_target.map(|o| format!(" {o}")).unwrap_or_default();
    vec![
        (
            "content-security-policy",
            format!(
                "default-src 'none'; style-src 'sha256-{}'; form-action 'self'{extra}; frame-ancestors 'none'; base-uri 'none'",
                style_hash()
            ),
        ),
        ("x-frame-options", "DENY".into()),
        ("x-content-type-options", "nosniff".into()),
        ("referrer-policy", "same-origin".into()),
        ("cache-control", "no-store".into()),
        ("content-type", "text/html; charset=utf-8".into()),
    ]
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    )
}

/// The upstream sign-in form's target ("Continue with …").
pub const UPSTREAM_PATH: &str = "/oauth/authorize/upstream";

/// An upstream OpenID provider offered on the login page.
#[derive(Debug, Clone)]
pub struct UpstreamChoice {
    /// The configuration's name, posted back.
    pub name: String,
    /// Shown as "Continue with <display>".
    pub display: String,
}

/// The login page: username and password for the hub's local users (when `local`), and
/// a "Continue with …" button per upstream OpenID provider. Every form carries the same
/// sealed request and CSRF token.
pub fn login_page(
    client_name: &str,
    sealed: &str,
    csrf: &str,
    error: Option<&str>,
    local: bool,
    upstreams: &[UpstreamChoice],
) -> String {
    let err = error
        .map(|e| format!("<p class=\"err\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    let hidden = format!(
        "<input type=\"hidden\" name=\"request\" value=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(sealed),
        esc(csrf)
    );
    let mut forms = String::new();
    if local {
        forms.push_str(&format!(
            "<form method=\"post\" action=\"{LOGIN_PATH}\">{hidden}\
<label>Username <input type=\"text\" name=\"username\" id=\"username\" autocomplete=\"username\" required></label>\
<label>Password <input type=\"password\" name=\"password\" id=\"password\" autocomplete=\"current-password\" required></label>\
<button type=\"submit\" id=\"sign-in\">Sign in</button></form>"
        ));
    }
    if !upstreams.is_empty() {
        if local {
            forms.push_str("<p class=\"muted\">or</p>");
        }
        for u in upstreams {
            forms.push_str(&format!(
                "<form method=\"post\" action=\"{UPSTREAM_PATH}\">{hidden}\
<input type=\"hidden\" name=\"provider\" value=\"{0}\">\
<button type=\"submit\" id=\"continue-{0}\" class=\"upstream\">Continue with {1}</button></form>",
                esc(&u.name),
                esc(&u.display)
            ));
        }
    }
    page(
        "Sign in to Nexus Hub",
        &format!(
            "<h1>Sign in to Nexus Hub</h1><p><strong>{}</strong> asks to use the hub on your behalf.</p>{err}{forms}",
            esc(client_name),
        ),
    )
}

/// One zone offered on the consent page, with what the user holds there.
#[derive(Debug, Clone)]
pub struct ZoneChoice {
    pub zone: String,
    /// `r`, `w` or `rw`.
    pub permission: String,
}

/// What the consent page offers: the scopes asked for within the user's rights.
#[derive(Debug, Clone, Copy)]
pub struct Offer<'a> {
    pub read: bool,
    pub write: bool,
    pub admin: bool,
    /// The user is an administrator without listed zones: with `admin` ticked and no zone,
    /// the token sees every zone.
    pub all_zones: bool,
    /// The user holds no zone list: the token gets what the user's roles, groups and
    /// shared paths allow, decided at every request.
    pub roles: bool,
    /// Groups the identity provider says the user is in.
    pub groups: &'a [String],
}

/// The consent page: the client, where it will be sent, who signed in (and through which
/// identity provider, `via`), and checkboxes to narrow zones and permissions (all ticked:
/// what was asked for).
#[allow(clippy::too_many_arguments)]
pub fn consent_page(
    client_name: &str,
    redirect_origin: &str,
    username: &str,
    via: Option<&str>,
    zones: &[ZoneChoice],
    offer: Offer,
    sealed: &str,
    csrf: &str,
) -> String {
    let mut zone_boxes = String::new();
    for z in zones {
        zone_boxes.push_str(&format!(
            "<label><input type=\"checkbox\" name=\"zone\" value=\"{0}\" checked> {0} <span class=\"muted\">({1})</span></label>",
            esc(&z.zone),
            esc(&z.permission)
        ));
    }
    if zones.is_empty() {
        zone_boxes.push_str(if offer.all_zones {
            "<p class=\"muted\">No zone exists yet.</p>"
        } else if offer.roles {
            "<p id=\"roles\">No zone is listed for you: the application gets what your roles, groups and shared folders allow, checked at every request, within the permissions below.</p>"
        } else {
            "<p class=\"err\">You hold no zone: the client could do nothing.</p>"
        });
    }
    if !offer.groups.is_empty() {
        let names: Vec<String> = offer.groups.iter().map(|g| esc(g)).collect();
        zone_boxes.push_str(&format!(
            "<p class=\"muted\" id=\"groups\">As a member of: {}.</p>",
            names.join(", ")
        ));
    }
    if offer.all_zones && offer.admin {
        zone_boxes.push_str("<p class=\"muted\">With administration and no zone ticked, the application sees every zone.</p>");
    }
    let mut perm_boxes = String::new();
    for (on, value, label) in [
        (offer.read, "read", "Read files (files:read)"),
        (offer.write, "write", "Write files (files:write)"),
        (offer.admin, "admin", "Administer the hub (hub:admin)"),
    ] {
        if on {
            perm_boxes.push_str(&format!(
                "<label><input type=\"checkbox\" name=\"perm\" value=\"{value}\" checked> {label}</label>"
            ));
        }
    }
    let via = via
        .map(|v| format!(" through {}", esc(v)))
        .unwrap_or_default();
    page(
        "Allow access to Nexus Hub",
        &format!(
            "<h1>Allow <strong>{}</strong> to use Nexus Hub?</h1>\
<p>Signed in as <strong>{}</strong>{via}. After you allow it, you return to <code>{}</code>.</p>\
<form method=\"post\" action=\"{CONSENT_PATH}\">\
<input type=\"hidden\" name=\"grant\" value=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<fieldset><legend>Zones</legend>{zone_boxes}</fieldset>\
<fieldset><legend>Permissions</legend>{perm_boxes}</fieldset>\
<button type=\"submit\" name=\"decision\" value=\"allow\" id=\"allow\">Allow</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></form>\
<p class=\"muted\">The access can be revoked at any time with <code>nexus hub token revoke</code>.</p>",
            esc(client_name),
            esc(username),
            esc(redirect_origin),
            esc(sealed),
            esc(csrf)
        ),
    )
}

/// A page for an error that cannot go back to the client (unknown client, redirect URI
/// not registered): shown, never redirected.
pub fn error_page(title: &str, message: &str) -> String {
    page(
        title,
        &format!(
            "<h1>{}</h1><p class=\"err\" role=\"alert\">{}</p><p class=\"muted\">Nothing was authorized. You can close this window.</p>",
            esc(title),
            esc(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_headers_forbid_framing() {
        let p = login_page(
            "<script>x</script>",
            "a\"b",
            "c",
            Some("bad & wrong"),
            true,
            &[UpstreamChoice {
                name: "corp".into(),
                display: "<Corp>".into(),
            }],
        );
        assert!(p.contains("Continue with &lt;Corp&gt;"));
        assert!(p.contains("id=\"continue-corp\""));
        assert!(p.contains("id=\"username\""));
        let only = login_page("c", "s", "t", None, false, &[]);
        assert!(!only.contains("type=\"password\""));
        assert!(!p.contains("<script>x"));
        assert!(p.contains("&lt;script&gt;"));
        assert!(p.contains("a&quot;b"));
        assert!(p.contains("bad &amp; wrong"));
        let h = security_headers(Some("http://127.0.0.1:5000"));
        let csp = &h
            .iter()
            .find(|(k, _)| *k == "content-security-policy")
            .expect("csp")
            .1;
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("form-action 'self' http://127.0.0.1:5000"));
        assert!(
            h.iter()
                .any(|(k, v)| *k == "x-frame-options" && v == "DENY")
        );
    }
}
