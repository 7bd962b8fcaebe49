//! Where Twilio reaches orderline: ORDERLINE_PUBLIC_URL, path included. Every URL handed back to
//! Twilio (actions, redirects, waitUrl, whisper, stream) is made absolute here, and the URL a
//! request was signed over is rebuilt here. Owns no routing and no signature maths.
//!
//! Twilio resolves a relative action or Redirect against the URL of the document it came from
//! (twilio.com/docs/voice/twiml/redirect: "relative URLs … resolved relative to the current
//! document URL"), and signs the URL it requested (twilio-python request_validator.py), so a
//! base with a path (`https://host/orderline`) must appear in every URL we write.

/// The public base URL, split into its origin and its path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `https://host[:port]`, no trailing slash.
    origin: String,
    /// `` or `/orderline` (no trailing slash).
    prefix: String,
}

impl PublicUrl {
    /// `base` as ORDERLINE_PUBLIC_URL gives it (already checked to start with http(s)://).
    pub fn new(base: &str) -> PublicUrl {
        let base = base.trim().trim_end_matches('/');
        let after_scheme = base.find("://").map_or(0, |i| i + 3);
        match base[after_scheme..].find('/') {
            Some(i) => PublicUrl {
                origin: base[..after_scheme + i].to_string(),
                prefix: base[after_scheme + i..].trim_end_matches('/').to_string(),
            },
            None => PublicUrl { origin: base.to_string(), prefix: String::new() },
        }
    }

    /// The path prefix (`/orderline`), empty when the base has none.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// True when Twilio reaches us over https.
    pub fn is_https(&self) -> bool {
        self.origin.starts_with("https://")
    }

    /// The absolute URL of one of our paths (`/twilio/voice/menu?n=2`).
    pub fn to(&self, path_and_query: &str) -> String {
        format!("{}{}{}", self.origin, self.prefix, path_and_query)
    }

    /// The URL Twilio requested, and signed, for a request that reached us at `path_and_query`:
    /// the prefix is in the path when Twilio talks to us directly, and missing when a proxy in
    /// front stripped it.
    pub fn requested(&self, path_and_query: &str) -> String {
        let has_prefix = !self.prefix.is_empty()
            && path_and_query
                .strip_prefix(&self.prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']));
        if has_prefix { format!("{}{}", self.origin, path_and_query) } else { self.to(path_and_query) }
    }

    /// Media Streams connect only to `wss://` on port 443 (twilio.com/docs/voice/twiml/stream:
    /// "the url … must be a wss URL", and Twilio's WebSocket client uses port 443 only), and so
    /// does ConversationRelay (twilio.com/docs/voice/conversationrelay/onboarding: "Ensure your
    /// WebSocket server is accessible via a wss:// URL"): the URL made from this base must be one.
    /// A plain `http://` base on a loopback address (the emulator, tests) is the one exception,
    /// since no real Twilio call can reach it anyway. `mode` names the ORDERLINE_PROMPT_MODE.
    pub fn check_stream_url(&self, path: &str, mode: &str) -> Result<(), String> {
        let stream = self.websocket(path);
        let host_port = self.origin.split_once("://").map_or("", |(_, rest)| rest);
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (host, Some(port)),
            _ => (host_port, None),
        };
        let loopback = host == "localhost"
            || host == "[::1]"
            || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
        let ok = if self.is_https() { matches!(port, None | Some("443")) } else { loopback };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "ORDERLINE_PROMPT_MODE={mode} needs ORDERLINE_PUBLIC_URL to be https:// on port 443: the \
                 WebSocket URL would be {stream}, and Twilio opens it only over wss:// on 443"
            ))
        }
    }

    /// The WebSocket URL of one of our paths: `https` becomes `wss`, `http` (local testing) `ws`.
    pub fn websocket(&self, path: &str) -> String {
        let url = self.to(path);
        match url.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}"),
            Some(("http", rest)) => format!("ws://{rest}"),
            _ => url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_without_a_path_makes_root_urls() {
        let url = PublicUrl::new("https://line.example.com/");
        assert_eq!(url.prefix(), "");
        assert_eq!(url.to("/twilio/voice/menu?n=2"), "https://line.example.com/twilio/voice/menu?n=2");
        assert_eq!(url.requested("/twilio/voice"), "https://line.example.com/twilio/voice");
        assert_eq!(url.websocket("/twilio/media"), "wss://line.example.com/twilio/media");
    }

    #[test]
    fn media_streams_need_wss_on_443_except_on_loopback() {
        for ok in [
            "https://line.example.com",
            "https://line.example.com:443/x",
            "http://127.0.0.1:0",
            "http://localhost:8080/p",
        ] {
            assert_eq!(PublicUrl::new(ok).check_stream_url("/twilio/media", "media_stream"), Ok(()), "{ok}");
        }
        for bad in ["https://line.example.com:8443", "http://line.example.com", "http://10.0.0.5:8080"] {
            let err = PublicUrl::new(bad).check_stream_url("/twilio/relay", "conversation_relay").unwrap_err();
            assert!(err.contains("ORDERLINE_PUBLIC_URL") && err.contains("wss://"), "{bad}: {err}");
            assert!(err.contains("conversation_relay") && err.contains("/twilio/relay"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_base_with_a_path_keeps_it_in_every_url() {
        let url = PublicUrl::new("http://127.0.0.1:8080/shop/orderline");
        assert_eq!(url.prefix(), "/shop/orderline");
        assert_eq!(url.to("/twilio/voice/menu?n=2"), "http://127.0.0.1:8080/shop/orderline/twilio/voice/menu?n=2");
        assert_eq!(url.websocket("/twilio/media"), "ws://127.0.0.1:8080/shop/orderline/twilio/media");
        // Reached directly: the prefix is in the request's path already.
        assert_eq!(
            url.requested("/shop/orderline/twilio/voice?x=1"),
            "http://127.0.0.1:8080/shop/orderline/twilio/voice?x=1"
        );
        // Behind a proxy that strips it.
        assert_eq!(url.requested("/twilio/voice"), "http://127.0.0.1:8080/shop/orderline/twilio/voice");
        // A path that only starts with the same letters is not under the prefix.
        assert_eq!(url.requested("/shop/orderlinex"), "http://127.0.0.1:8080/shop/orderline/shop/orderlinex");
    }
}
