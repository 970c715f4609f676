//! Protocol upgrades (RFC 9110 §7.8, WebSocket's RFC 6455 §4): what an
//! upgrade request offers, what a `101` answers, and whether the answer
//! takes the offer. A `101` turns the connection into a raw tunnel that
//! moirai no longer parses, so only one that really switches to a
//! protocol the client asked for may open it: otherwise an application
//! that lets a client choose its status code hands that client a tunnel
//! past the balancer, with forged `X-Forwarded-*` on everything sent
//! through it. HAProxy 2.6 answers such a `101` with 502; so does moirai.

use base64::Engine as _;

use super::token_list_has;

/// The GUID RFC 6455 §1.3 appends to the key before hashing.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What an upgrade request offers, kept (boxed: upgrades are rare) until
/// its response arrives; the request's own bytes may be gone by then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The `Upgrade` value: the protocols the client asked for.
    protocols: Box<[u8]>,
    /// For `websocket`: the `Sec-WebSocket-Accept` a `101` must carry.
    websocket_accept: Option<String>,
}

/// Why an upgrade request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferError {
    /// A WebSocket upgrade without exactly one `Sec-WebSocket-Key`
    /// (RFC 6455 §4.1: 400).
    WebSocketKey,
}

impl Offer {
    /// The offer of a request whose `Upgrade` value is `protocols` and
    /// whose `Sec-WebSocket-Key` values are `keys`.
    pub fn new(protocols: &[u8], keys: &[&[u8]]) -> Result<Offer, OfferError> {
        let websocket_accept = if token_list_has(protocols, b"websocket") {
            let [key] = keys else {
                return Err(OfferError::WebSocketKey);
            };
            let key = key.trim_ascii();
            if key.is_empty() {
                return Err(OfferError::WebSocketKey);
            }
            Some(websocket_accept(key))
        } else {
            None
        };
        Ok(Offer {
            protocols: protocols.into(),
            websocket_accept,
        })
    }

    /// Whether the `101` described by `answer` takes this offer: it says
    /// `Connection: upgrade`, its `Upgrade` names only protocols the
    /// client asked for (at least one), and a switch to `websocket`
    /// carries the accept value that proves the server read the key.
    pub fn accepts(&self, answer: &Switch) -> bool {
        let mut named = answer
            .upgrade
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
            .peekable();
        if !answer.connection_upgrade || named.peek().is_none() {
            return false;
        }
        let mut websocket = false;
        for t in named {
            if !token_list_has(&self.protocols, t) {
                return false;
            }
            websocket |= t.eq_ignore_ascii_case(b"websocket");
        }
        match (&self.websocket_accept, websocket) {
            (Some(want), true) => answer
                .websocket_accept
                .as_deref()
                .is_some_and(|got| got.trim_ascii() == want.as_bytes()),
            _ => true,
        }
    }
}

/// What a `101` says about the switch (recorded only for a `101`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switch {
    /// `Connection` lists `upgrade`.
    pub connection_upgrade: bool,
    /// The `Upgrade` values, joined by commas.
    pub upgrade: Vec<u8>,
    /// The `Sec-WebSocket-Accept` value (the first one; a second makes
    /// the answer unacceptable).
    pub websocket_accept: Option<Box<[u8]>>,
}

/// RFC 6455 §4.2.2: base64 of the SHA-1 of the key and the GUID.
fn websocket_accept(key: &[u8]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(WEBSOCKET_GUID);
    base64::engine::general_purpose::STANDARD.encode(ctx.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6455 §1.3's own example.
    const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn switch(conn: bool, upgrade: &str, accept: Option<&[u8]>) -> Switch {
        Switch {
            connection_upgrade: conn,
            upgrade: upgrade.as_bytes().to_vec(),
            websocket_accept: accept.map(Into::into),
        }
    }

    #[test]
    fn the_rfcs_websocket_example() {
        assert_eq!(websocket_accept(KEY).as_bytes(), ACCEPT);
    }

    #[test]
    fn a_websocket_offer_needs_one_key() {
        assert_eq!(Offer::new(b"websocket", &[]), Err(OfferError::WebSocketKey));
        assert_eq!(
            Offer::new(b"WebSocket", &[b"  "]),
            Err(OfferError::WebSocketKey)
        );
        assert_eq!(
            Offer::new(b"websocket", &[KEY, KEY]),
            Err(OfferError::WebSocketKey)
        );
        assert!(
            Offer::new(b"h2c", &[]).is_ok(),
            "no key for other protocols"
        );
    }

    #[test]
    fn only_a_real_switch_to_an_offered_protocol_is_accepted() {
        let ws = Offer::new(b"websocket", &[KEY]).unwrap();
        let cases: [(Switch, bool); 9] = [
            (switch(true, "websocket", Some(ACCEPT)), true),
            (
                switch(true, "WebSocket", Some(b" s3pPLMBiTxaQ9kYGzzhZRbK+xOo= ")),
                true,
            ),
            (switch(false, "websocket", Some(ACCEPT)), false),
            (switch(true, "", Some(ACCEPT)), false),
            (switch(true, "h2c", Some(ACCEPT)), false),
            (switch(true, "websocket, h2c", Some(ACCEPT)), false),
            (switch(true, "websocket", None), false),
            (
                switch(true, "websocket", Some(b"AAAAAAAAAAAAAAAAAAAAAAAAAAA=")),
                false,
            ),
            (switch(true, ",", Some(ACCEPT)), false),
        ];
        for (answer, ok) in cases {
            assert_eq!(ws.accepts(&answer), ok, "{answer:?}");
        }
        let h2c = Offer::new(b"h2c, foo/2", &[]).unwrap();
        assert!(h2c.accepts(&switch(true, "h2c", None)));
        assert!(h2c.accepts(&switch(true, "foo/2", None)));
        assert!(!h2c.accepts(&switch(true, "foo/3", None)));
        assert!(!h2c.accepts(&switch(true, "websocket", Some(ACCEPT))));
    }
}
