//! What an event of the control poll is for. Health-check and metrics
//! sockets get tokens from ranges of their own, which their owners hand
//! out; everything else has one fixed token.

use crate::sys::poll::Token;

/// Metrics connections get tokens from here (64 of them).
pub const METRICS_CONNS: usize = 16;
/// Health-check sockets get tokens from here up.
pub const HEALTH_CHECKS: usize = 1024;

/// What a control-poll event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlToken {
    /// The signal pipe: SIGTERM, SIGINT, SIGHUP.
    Signals,
    /// A wake-up from another thread: metadata reads, DNS answers, ACME,
    /// worker reports (mio allows one waker per poll, so they share it).
    Wake,
    /// The status (control) socket.
    Status,
    /// The metrics listener or one of its connections.
    Metrics,
    /// A health-check socket.
    Health,
}

impl ControlToken {
    /// The token a fixed-token source registers with.
    pub fn token(self) -> Token {
        Token(match self {
            ControlToken::Signals => 1,
            ControlToken::Wake => 2,
            ControlToken::Status => 3,
            ControlToken::Metrics => 4,
            ControlToken::Health => HEALTH_CHECKS,
        })
    }

    /// What `t` is for; `None` for a token nothing registers.
    pub fn of(t: Token) -> Option<ControlToken> {
        match t.0 {
            1 => Some(ControlToken::Signals),
            2 => Some(ControlToken::Wake),
            3 => Some(ControlToken::Status),
            4 => Some(ControlToken::Metrics),
            n if (METRICS_CONNS..METRICS_CONNS + 64).contains(&n) => Some(ControlToken::Metrics),
            n if n >= HEALTH_CHECKS => Some(ControlToken::Health),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_names_its_owner() {
        for t in [
            ControlToken::Signals,
            ControlToken::Wake,
            ControlToken::Status,
            ControlToken::Metrics,
            ControlToken::Health,
        ] {
            assert_eq!(ControlToken::of(t.token()), Some(t));
        }
        assert_eq!(
            ControlToken::of(Token(METRICS_CONNS + 63)),
            Some(ControlToken::Metrics)
        );
        assert_eq!(
            ControlToken::of(Token(HEALTH_CHECKS + 5000)),
            Some(ControlToken::Health)
        );
        assert_eq!(ControlToken::of(Token(0)), None);
        assert_eq!(ControlToken::of(Token(METRICS_CONNS + 64)), None);
    }
}
