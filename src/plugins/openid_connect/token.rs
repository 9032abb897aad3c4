//! Where openid-connect finds a token, and where it strips one: one token per request, in
//! the places `bearer_token_param_type` names.

use std::borrow::Cow;
use std::sync::Arc;

use pingora_http::RequestHeader;

use super::{OidcError, OidcFailure, OpenIdConnect, TokenPlace, ACCESS_TOKEN};
use crate::core::query;
use crate::plugins::auth::{bearer, cookies, BearerSyntax, CredentialLocation, CredentialPlace, Place};

/// A token as sent, and where.
pub(super) type FoundToken<'r> = (Cow<'r, [u8]>, TokenPlace);

/// The message of a request with more than one token (Kong's jwt plugin's words).
pub(super) const MULTIPLE_TOKENS: &str = "Multiple tokens provided";

impl OpenIdConnect {
    /// The request's token and where it was, looking in every configured place: more than one
    /// (a second `Authorization` line, a second `access_token`, the token in two places) is
    /// refused — RFC 6750 §2 allows one method per request — so the token checked is the only
    /// one that can reach an upstream.
    pub(super) fn find_token<'r>(&'r self, req: &'r RequestHeader) -> Result<Option<FoundToken<'r>>, OidcFailure> {
        let mut found: Option<FoundToken<'r>> = None;
        let mut add = |token: Cow<'r, [u8]>, place: TokenPlace| {
            if found.is_some() {
                return Err(self.fail(OidcError::MultipleTokens));
            }
            found = Some((token, place));
            Ok(())
        };
        for place in &self.token_places {
            match place {
                TokenPlace::Header => {
                    let mut lines = req.headers.get_all(http::header::AUTHORIZATION).iter();
                    let Some(first) = lines.next() else { continue };
                    if lines.next().is_some() {
                        return Err(self.fail(OidcError::MultipleTokens));
                    }
                    if let Some(t) = bearer(first.as_bytes(), BearerSyntax::Rfc6750) {
                        add(Cow::Borrowed(t), TokenPlace::Header)?;
                    }
                }
                TokenPlace::Query => {
                    let Some(q) = req.uri.query() else { continue };
                    for v in query::values(q.as_bytes(), ACCESS_TOKEN).filter(|v| !v.is_empty()) {
                        add(v, TokenPlace::Query)?;
                    }
                }
                TokenPlace::Cookie => {
                    let Some(name) = &self.cookie_name else { continue };
                    for v in cookies(req, name) {
                        add(Cow::Borrowed(v), TokenPlace::Cookie)?;
                    }
                }
            }
        }
        Ok(found)
    }

    pub(super) fn location(&self, place: TokenPlace) -> Option<CredentialLocation> {
        match place {
            TokenPlace::Header => Some(self.header_location.clone()),
            TokenPlace::Query => Some(self.query_location.clone()),
            TokenPlace::Cookie => self
                .cookie_name
                .as_ref()
                .map(|name| CredentialLocation { place: CredentialPlace::Cookie, name: Arc::clone(name) }),
        }
    }

    /// Every place a token is read from.
    pub(super) fn places(&self, strip: &mut dyn FnMut(Place<'_>)) {
        for place in &self.token_places {
            match place {
                TokenPlace::Header => strip(self.header_location.borrow()),
                TokenPlace::Query => strip(self.query_location.borrow()),
                TokenPlace::Cookie => {
                    if let Some(name) = &self.cookie_name {
                        strip(Place { place: CredentialPlace::Cookie, name });
                    }
                }
            }
        }
    }
}
