//! How an ACME order fails, in words an operator can act on: the step
//! that failed ([`OrderStep`]), what the CA or the library said
//! ([`OrderError`]), and the cause under a library error named ([`why`]).
//! The manager thread (`acme.rs`) makes them; the control loop logs them,
//! counts them and shows them in `moirai status`.

/// Where an order failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStep {
    /// The order's async runtime could not start.
    Runtime,
    /// The account could not be loaded, made or registered.
    Account,
    /// The CA refused the new order.
    NewOrder,
    /// An authorization could not be fetched.
    Authorization,
    /// The CA says an authorization is invalid (a validation failed).
    Invalid,
    /// The CA offers no challenge of the method asked for.
    NoChallenge,
    /// The TLS-ALPN-01 certificate could not be made.
    AlpnCertificate,
    /// The CA refused to start a validation.
    Challenge,
    /// The CA's validation failed: its own words follow.
    Validation,
    /// The key or the signing request could not be made.
    Request,
    /// The CA refused to finalize.
    Finalize,
    /// The certificate could not be fetched.
    Certificate,
}

/// Why an order failed: the step, and the CA's or library's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderError {
    /// Where.
    pub step: OrderStep,
    /// What was said.
    pub detail: String,
}

impl OrderError {
    /// An error at `step`, for `map_err` on that step's call.
    pub(super) fn at(step: OrderStep) -> impl FnOnce(String) -> OrderError {
        move |detail| OrderError { step, detail }
    }

    /// The CA tried the challenge and it failed (vs. never got that far).
    pub fn is_validation(&self) -> bool {
        matches!(self.step, OrderStep::Invalid | OrderStep::Validation)
    }
}

impl std::fmt::Display for OrderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.detail;
        match self.step {
            OrderStep::Runtime => write!(f, "cannot start the ACME runtime: {d}"),
            OrderStep::NewOrder => write!(f, "new order: {d}"),
            OrderStep::Authorization => write!(f, "authorization: {d}"),
            OrderStep::Invalid => write!(f, "authorization is {d}"),
            OrderStep::Challenge => write!(f, "challenge: {d}"),
            OrderStep::Finalize => write!(f, "finalize: {d}"),
            OrderStep::Certificate => write!(f, "certificate: {d}"),
            OrderStep::Account
            | OrderStep::NoChallenge
            | OrderStep::AlpnCertificate
            | OrderStep::Validation
            | OrderStep::Request => f.write_str(d),
        }
    }
}

/// An ACME error with its cause named: the CA's problem document, or
/// what failed underneath (DNS, the connection, TLS verification) with
/// every layer's words, instead of hyper's bare "client error (Connect)".
pub(super) fn why(e: &instant_acme::Error) -> String {
    if let instant_acme::Error::Api(problem) = e {
        return format!("the CA refused: {problem}");
    }
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    let all = parts.join(": ");
    let lower = all.to_ascii_lowercase();
    let kind = if lower.contains("dns error") || lower.contains("failed to lookup") {
        "DNS"
    } else if lower.contains("certificate")
        || lower.contains("invalid peer")
        || lower.contains("tls")
    {
        "TLS verification"
    } else if lower.contains("connect") || lower.contains("connection refused") {
        "connect"
    } else {
        "request"
    };
    format!("{kind}: {all}")
}
