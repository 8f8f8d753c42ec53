//! The provider chain (SPEC §10): one [`AuthProvider`] in front of the configured ones,
//! choosing by the credential's shape. An `sk-…` key (or anything that is not a JWT) goes
//! to the API-key providers in their configured order (database, static file); a JWT goes
//! to the one provider whose issuer matches its unverified `iss` (the local issuer or an
//! OIDC provider), which then verifies it in full. A JWT from an issuer not configured is
//! refused without any key lookup or network fetch.

use super::{AuthError, AuthFuture, AuthProvider, Identity, Refusal};
use nexus_providers::shape::{Shape, peek_issuer, shape};
use std::sync::Arc;

/// The configured providers, by the credential shape they verify.
#[derive(Debug, Default)]
pub struct ProviderChain {
    /// Tried in order; the first that accepts the key wins.
    api_keys: Vec<Arc<dyn AuthProvider>>,
    /// Exactly one provider per issuer.
    issuers: Vec<(String, Arc<dyn AuthProvider>)>,
}

impl ProviderChain {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a provider of `sk-…` keys, tried after those added before it.
    pub fn with_api_keys(mut self, p: Arc<dyn AuthProvider>) -> Self {
        self.api_keys.push(p);
        self
    }

    /// Adds the provider of JWTs whose `iss` is `issuer`. Two providers for one issuer
    /// are a configuration error.
    pub fn with_issuer(
        mut self,
        issuer: impl Into<String>,
        p: Arc<dyn AuthProvider>,
    ) -> anyhow::Result<Self> {
        let issuer = issuer.into();
        if self.issuers.iter().any(|(i, _)| *i == issuer) {
            anyhow::bail!("two auth providers are configured for issuer {issuer}");
        }
        self.issuers.push((issuer, p));
        Ok(self)
    }

    /// The issuers whose tokens are accepted, in configuration order: what the
    /// protected-resource metadata lists as authorization servers.
    pub fn issuers(&self) -> Vec<String> {
        self.issuers.iter().map(|(i, _)| i.clone()).collect()
    }

    /// The provider kinds, in order: API-key providers first, then issuers.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.api_keys
            .iter()
            .chain(self.issuers.iter().map(|(_, p)| p))
            .map(|p| p.kind())
            .collect()
    }

    /// As one provider: the only one when there is a single key provider and no issuer
    /// (no dispatch on the hot path), else the chain.
    pub fn into_provider(mut self) -> Arc<dyn AuthProvider> {
        if self.issuers.is_empty() && self.api_keys.len() == 1 {
            return self.api_keys.remove(0);
        }
        Arc::new(self)
    }

    fn for_issuer(&self, token: &str) -> Option<&Arc<dyn AuthProvider>> {
        let iss = peek_issuer(token)?;
        self.issuers.iter().find(|(i, _)| *i == iss).map(|(_, p)| p)
    }
}

impl AuthProvider for ProviderChain {
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            match shape(token) {
                Shape::Jwt => match self.for_issuer(token) {
                    Some(p) => p.authenticate(token).await,
                    None => Err(AuthError::Refused(Refusal::Unknown)),
                },
                Shape::ApiKey => {
                    // Refused by all: the first refusal's reason. Undecided by any (a
                    // database down) while none accepted: unavailable, since the key
                    // may be valid there; never a 401 the hub cannot stand behind.
                    let mut refusal = None;
                    let mut unavailable = false;
                    for p in &self.api_keys {
                        match p.authenticate(token).await {
                            Ok(id) => return Ok(id),
                            Err(AuthError::Refused(r)) => {
                                refusal.get_or_insert(r);
                            }
                            Err(AuthError::Unavailable) => unavailable = true,
                        }
                    }
                    if unavailable {
                        return Err(AuthError::Unavailable);
                    }
                    Err(AuthError::Refused(refusal.unwrap_or(Refusal::Malformed)))
                }
            }
        })
    }

    fn cached(&self, token: &str) -> Option<Arc<Identity>> {
        match shape(token) {
            Shape::Jwt => self.for_issuer(token)?.cached(token),
            Shape::ApiKey => self.api_keys.iter().find_map(|p| p.cached(token)),
        }
    }

    fn kind(&self) -> &'static str {
        match (self.api_keys.as_slice(), self.issuers.as_slice()) {
            ([one], []) => one.kind(),
            ([], [(_, one)]) => one.kind(),
            _ => "chain",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// Accepts exactly one token; or is down.
    #[derive(Debug)]
    struct One(&'static str, &'static str, bool);

    impl AuthProvider for One {
        fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
            Box::pin(async move {
                if self.2 {
                    return Err(AuthError::Unavailable);
                }
                if token == self.1 {
                    Ok(Arc::new(Identity {
                        key_id: uuid::Uuid::nil(),
                        name: self.0.into(),
                        user_id: self.0.into(),
                        subject_type: nexus_wire::spec::SubjectType::User,
                        is_admin: false,
                        zones: Vec::new(),
                        expires_at: None,
                        rate_limit: None,
                        subject: None,
                        rebac: Default::default(),
                        credential: Default::default(),
                        groups: Vec::new(),
                        permissions: None,
                    }))
                } else {
                    Err(AuthError::Refused(Refusal::Unknown))
                }
            })
        }
        fn kind(&self) -> &'static str {
            self.0
        }
    }

    fn jwt(iss: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.c2ln",
            b(r#"{"alg":"EdDSA"}"#),
            b(&format!(r#"{{"iss":"{iss}"}}"#))
        )
    }

    async fn who(c: &ProviderChain, t: &str) -> Result<String, AuthError> {
        c.authenticate(t).await.map(|i| i.name.clone())
    }

    #[tokio::test]
    async fn keys_go_down_the_key_providers_and_jwts_to_their_issuer() {
        let a = jwt("https://a");
        let a: &'static str = Box::leak(a.into_boxed_str());
        let c = ProviderChain::new()
            .with_api_keys(Arc::new(One("db", "sk-db", false)))
            .with_api_keys(Arc::new(One("static", "sk-static", false)))
            .with_issuer("https://a", Arc::new(One("oidc-a", a, false)))
            .expect("issuer");
        assert_eq!(who(&c, "sk-db").await.expect("accepted"), "db");
        assert_eq!(who(&c, "sk-static").await.expect("accepted"), "static");
        assert_eq!(who(&c, a).await.expect("accepted"), "oidc-a");
        assert_eq!(
            who(&c, &jwt("https://b")).await,
            Err(AuthError::Refused(Refusal::Unknown)),
            "an issuer not configured"
        );
        assert_eq!(
            who(&c, "sk-other").await,
            Err(AuthError::Refused(Refusal::Unknown))
        );
        assert_eq!(c.issuers(), vec!["https://a".to_owned()]);
        assert_eq!(c.kind(), "chain");
        assert!(
            c.with_issuer("https://a", Arc::new(One("x", "y", false)))
                .is_err(),
            "one provider per issuer"
        );
    }

    #[tokio::test]
    async fn a_provider_down_is_unavailable_unless_another_accepts() {
        let c = ProviderChain::new()
            .with_api_keys(Arc::new(One("db", "sk-db", true)))
            .with_api_keys(Arc::new(One("static", "sk-static", false)));
        assert_eq!(who(&c, "sk-static").await.expect("accepted"), "static");
        assert_eq!(who(&c, "sk-nobody").await, Err(AuthError::Unavailable));
        assert_eq!(
            who(&ProviderChain::new(), "sk-x").await,
            Err(AuthError::Refused(Refusal::Malformed)),
            "an empty chain refuses everything"
        );
    }
}
