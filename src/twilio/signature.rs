//! Twilio request signatures, computed as Twilio's helper libraries compute them:
//! the full URL, then each POST parameter name (sorted) followed by each of its values (sorted,
//! duplicates once), HMAC-SHA1 with the auth token, base64. A URL is accepted with and without
//! its port, since Twilio signs whichever form it was configured with. JSON bodies are covered
//! by a `bodySHA256` query parameter (hex SHA-256 of the body) and signed with no parameters.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

type HmacSha1 = Hmac<Sha1>;

/// The `X-Twilio-Signature` Twilio sends for a form POST of `params` to `url`.
pub fn sign(token: &str, url: &str, params: &[(String, String)]) -> String {
    BASE64.encode(mac(token, url, params).finalize().into_bytes())
}

/// The URL, then the (name, value) pairs sorted, each distinct pair once (see the module's doc).
fn mac(token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    let mut sorted: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut mac = HmacSha1::new_from_slice(token.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// True when `signature` is Twilio's for a form POST of `params` to `url` (with or without port).
/// The URL as it came is tried first: it is the one Twilio signed unless a proxy added or
/// dropped the port, so a genuine request costs one HMAC, not two.
pub fn verify(token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(expected) = BASE64.decode(signature.trim()) else { return false };
    let signs = |candidate: &str| mac(token, candidate, params).verify_slice(&expected).is_ok();
    signs(url) || url_forms(url).iter().any(|candidate| candidate != url && signs(candidate))
}

/// True when `signature` is Twilio's for a JSON `body` posted to `url`, whose query carries
/// `bodySHA256`: the hash must match the body and the URL must be signed.
pub fn verify_json(token: &str, url: &str, body: &[u8], signature: &str) -> bool {
    let Some(claimed) = query_value(url, "bodySHA256") else { return false };
    let actual = hex(&Sha256::digest(body));
    // The hash is public, so an ordinary comparison leaks nothing.
    actual.eq_ignore_ascii_case(claimed) && verify(token, url, &[], signature)
}

/// Hex SHA-256 of a body, as `bodySHA256` carries it.
pub fn body_sha256(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn query_value<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query.split('&').filter_map(|pair| pair.split_once('=')).find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// The URL without its port and with it (the scheme's default port added when it has none),
/// as twilio-python's validator tries them.
fn url_forms(url: &str) -> [String; 2] {
    let Some((scheme, rest)) = url.split_once("://") else { return [url.to_string(), url.to_string()] };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    // An IPv6 literal keeps its colons: the port, if any, follows the closing bracket.
    let (host, port) = match host_port.rfind(':') {
        Some(i) if !host_port[i..].contains(']') => (&host_port[..i], Some(&host_port[i + 1..])),
        _ => (host_port, None),
    };
    let secure = scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss");
    let default_port = if secure { "443" } else { "80" };
    let port = port.unwrap_or(default_port);
    [format!("{scheme}://{userinfo}{host}{tail}"), format!("{scheme}://{userinfo}{host}:{port}{tail}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    // Twilio's published vectors (twilio-python tests/unit/test_request_validator.py).
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn computes_twilios_published_signature() {
        assert_eq!(sign(TOKEN, URL, &params()), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let mut reversed = params();
        reversed.reverse();
        assert_eq!(sign(TOKEN, URL, &reversed), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    }

    #[test]
    fn duplicate_names_sign_each_value_sorted() {
        let params: Vec<(String, String)> =
            [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
        assert_eq!(sign(TOKEN, URL, &params), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn verifies_with_and_without_the_default_port() {
        assert!(verify(TOKEN, URL, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        // Twilio signed the URL with :443 but we know it without.
        assert!(verify(TOKEN, URL, &params(), "kvajT1Ptam85bY51eRf/AJRuM3w="));
        // We know it with :443, Twilio signed it without.
        let with_port = URL.replace(".com", ".com:443");
        assert!(verify(TOKEN, &with_port, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        // Plain http and port 80, both ways.
        let http = URL.replace("https", "http");
        assert!(verify(TOKEN, &http, &params(), "0ZXoZLH/DfblKGATFgpif+LLRf4="));
        let http_1234 = http.replace(".com", ".com:1234");
        assert!(verify(TOKEN, &http_1234, &params(), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="));
    }

    #[test]
    fn a_tampered_parameter_or_url_or_token_fails() {
        let mut tampered = params();
        tampered[2].1 = "1235".into();
        assert!(!verify(TOKEN, URL, &tampered, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        let mut added = params();
        added.push(("Extra".into(), "x".into()));
        assert!(!verify(TOKEN, URL, &added, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!verify(
            TOKEN,
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify("54321", URL, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!verify(TOKEN, URL, &params(), ""));
        assert!(!verify(TOKEN, URL, &params(), "not base64!"));
    }

    #[test]
    fn a_json_body_is_covered_by_its_hash() {
        let body = br#"{"property": "value", "boolean": true}"#;
        assert_eq!(body_sha256(body), "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620");
        let url = format!("{URL}&bodySHA256={}", body_sha256(body));
        assert!(verify_json(TOKEN, &url, body, "a9nBmqA0ju/hNViExpshrM61xv4="));
        assert!(!verify_json(
            TOKEN,
            &url,
            br#"{"property": "other", "boolean": true}"#,
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        assert!(!verify_json(TOKEN, URL, body, "a9nBmqA0ju/hNViExpshrM61xv4="), "no bodySHA256, no pass");
    }
}
