//! Shopify webhook signatures: base64(HMAC-SHA256(client secret, raw body)), compared in
//! constant time. Accepts the previous secret too while a rotation is under way.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The value Shopify sends in `X-Shopify-Hmac-Sha256` for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

/// True when `header` is the signature of `body` under one of the secrets.
pub fn verify(secrets: &[&Secret], body: &[u8], header: &str) -> bool {
    let Ok(expected) = BASE64.decode(header.trim()) else { return false };
    secrets.iter().any(|secret| {
        let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes a key of any length");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_and_secret() {
        let secret = Secret::new("hush");
        let body = br#"{"id":9007199254741107}"#;
        let header = sign("hush", body);
        assert!(verify(&[&secret], body, &header));
        assert!(!verify(&[&secret], br#"{"id":9007199254741108}"#, &header));
        assert!(!verify(&[&Secret::new("other")], body, &header));
        assert!(!verify(&[&secret], body, "not base64!"));
        assert!(!verify(&[&secret], body, ""));
    }

    #[test]
    fn the_previous_secret_still_verifies_during_rotation() {
        let body = b"{}";
        let header = sign("old", body);
        assert!(verify(&[&Secret::new("new"), &Secret::new("old")], body, &header));
    }

    #[test]
    fn matches_a_known_vector() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), base64 (RFC 4231 style check).
        assert_eq!(
            sign("key", b"The quick brown fox jumps over the lazy dog"),
            "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
        );
    }
}
