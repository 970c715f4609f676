//! SETTINGS (RFC 9113 §6.5): the client's values as they arrive, checked,
//! and the values we announce. What a change of INITIAL_WINDOW_SIZE does
//! to open streams is [`super::flow`]'s and the connection's business.

use super::frame::{DEFAULT_MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT};
use super::ErrorCode;

/// SETTINGS_HEADER_TABLE_SIZE.
pub const HEADER_TABLE_SIZE: u16 = 0x1;
/// SETTINGS_ENABLE_PUSH.
pub const ENABLE_PUSH: u16 = 0x2;
/// SETTINGS_MAX_CONCURRENT_STREAMS.
pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// SETTINGS_INITIAL_WINDOW_SIZE.
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
/// SETTINGS_MAX_FRAME_SIZE.
pub const MAX_FRAME_SIZE: u16 = 0x5;
/// SETTINGS_MAX_HEADER_LIST_SIZE.
pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
/// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441): never announced by us.
pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
/// SETTINGS_NO_RFC7540_PRIORITIES (RFC 9218).
pub const NO_RFC7540_PRIORITIES: u16 = 0x9;

/// The largest flow-control window (2^31 − 1).
pub const MAX_WINDOW: u32 = 0x7fff_ffff;
/// INITIAL_WINDOW_SIZE's initial value.
pub const DEFAULT_WINDOW: u32 = 65_535;

/// Why a SETTINGS parameter was refused: a connection error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsError {
    /// ENABLE_PUSH other than 0 or 1: PROTOCOL_ERROR.
    EnablePush(u32),
    /// INITIAL_WINDOW_SIZE above 2^31 − 1: FLOW_CONTROL_ERROR.
    InitialWindowSize(u32),
    /// MAX_FRAME_SIZE outside 2^14..2^24 − 1: PROTOCOL_ERROR.
    MaxFrameSize(u32),
    /// ENABLE_CONNECT_PROTOCOL other than 0 or 1: PROTOCOL_ERROR.
    EnableConnectProtocol(u32),
    /// NO_RFC7540_PRIORITIES other than 0 or 1: PROTOCOL_ERROR.
    NoRfc7540Priorities(u32),
}

impl SettingsError {
    /// The code to send.
    pub fn code(self) -> ErrorCode {
        match self {
            SettingsError::InitialWindowSize(_) => ErrorCode::FlowControl,
            _ => ErrorCode::Protocol,
        }
    }

    /// The reason, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            SettingsError::EnablePush(_) => "SETTINGS_ENABLE_PUSH not 0 or 1",
            SettingsError::InitialWindowSize(_) => "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
            SettingsError::MaxFrameSize(_) => "SETTINGS_MAX_FRAME_SIZE out of range",
            SettingsError::EnableConnectProtocol(_) => {
                "SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1"
            }
            SettingsError::NoRfc7540Priorities(_) => "SETTINGS_NO_RFC7540_PRIORITIES not 0 or 1",
        }
    }
}

/// A peer's settings, initial values until it says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The table size its decoder has; our encoder uses no dynamic table,
    /// so this is only recorded.
    pub header_table_size: u32,
    /// Whether it takes pushes; we never push.
    pub enable_push: bool,
    /// Streams it lets us open; we open none.
    pub max_concurrent_streams: Option<u32>,
    /// Initial window for streams we send on.
    pub initial_window_size: u32,
    /// Largest frame it takes from us.
    pub max_frame_size: u32,
    /// Largest header list it takes from us (advisory).
    pub max_header_list_size: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            header_table_size: 4096,
            enable_push: true,
            max_concurrent_streams: None,
            initial_window_size: DEFAULT_WINDOW,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_header_list_size: None,
        }
    }
}

impl Settings {
    /// Applies one parameter, checked (§6.5.2). Unknown identifiers are
    /// ignored, as the RFC says.
    pub fn apply(&mut self, id: u16, value: u32) -> Result<(), SettingsError> {
        let flag = |v: u32, e: SettingsError| if v <= 1 { Ok(v == 1) } else { Err(e) };
        match id {
            HEADER_TABLE_SIZE => self.header_table_size = value,
            ENABLE_PUSH => self.enable_push = flag(value, SettingsError::EnablePush(value))?,
            MAX_CONCURRENT_STREAMS => self.max_concurrent_streams = Some(value),
            INITIAL_WINDOW_SIZE => {
                if value > MAX_WINDOW {
                    return Err(SettingsError::InitialWindowSize(value));
                }
                self.initial_window_size = value;
            }
            MAX_FRAME_SIZE => {
                if !(DEFAULT_MAX_FRAME_SIZE..=MAX_FRAME_SIZE_LIMIT).contains(&value) {
                    return Err(SettingsError::MaxFrameSize(value));
                }
                self.max_frame_size = value;
            }
            MAX_HEADER_LIST_SIZE => self.max_header_list_size = Some(value),
            ENABLE_CONNECT_PROTOCOL => {
                // A client has nothing to enable: checked, then ignored.
                flag(value, SettingsError::EnableConnectProtocol(value))?;
            }
            NO_RFC7540_PRIORITIES => {
                flag(value, SettingsError::NoRfc7540Priorities(value))?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// What we announce. Not ENABLE_CONNECT_PROTOCOL (WebSockets stay on
/// HTTP/1.1) and not ENABLE_PUSH (only a client may send it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ours {
    /// Streams a client may have open at once.
    pub max_concurrent_streams: u32,
    /// Initial window of every stream the client sends on; at least the
    /// default, so a client still using the default before our SETTINGS
    /// arrive never overruns it.
    pub initial_window_size: u32,
    /// The connection window we open at once with a WINDOW_UPDATE.
    pub connection_window: u32,
    /// Largest header list (decoded, §4.1 sizes).
    pub max_header_list_size: u32,
}

impl Default for Ours {
    fn default() -> Self {
        Ours {
            max_concurrent_streams: 100,
            initial_window_size: DEFAULT_WINDOW,
            connection_window: 1 << 20,
            max_header_list_size: 16_384,
        }
    }
}

impl Ours {
    /// The parameters of our SETTINGS frame. Frame size and table size are
    /// the defaults, so they are not sent.
    pub fn params(&self) -> Vec<(u16, u32)> {
        let mut p = vec![
            (MAX_CONCURRENT_STREAMS, self.max_concurrent_streams),
            (MAX_HEADER_LIST_SIZE, self.max_header_list_size),
        ];
        if self.initial_window_size != DEFAULT_WINDOW {
            p.push((INITIAL_WINDOW_SIZE, self.initial_window_size));
        }
        p.push((NO_RFC7540_PRIORITIES, 1));
        p
    }

    /// The values, clamped to what the codec supports.
    pub fn clamped(self) -> Ours {
        Ours {
            initial_window_size: self.initial_window_size.clamp(DEFAULT_WINDOW, MAX_WINDOW),
            connection_window: self.connection_window.clamp(DEFAULT_WINDOW, MAX_WINDOW),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_rfc_initial_values() {
        let s = Settings::default();
        assert_eq!(s.header_table_size, 4096);
        assert!(s.enable_push);
        assert_eq!(s.initial_window_size, 65_535);
        assert_eq!(s.max_frame_size, 16_384);
        assert_eq!(s.max_concurrent_streams, None);
    }

    #[test]
    fn enable_push_must_be_0_or_1() {
        let mut s = Settings::default();
        s.apply(ENABLE_PUSH, 0).unwrap();
        assert!(!s.enable_push);
        assert_eq!(s.apply(ENABLE_PUSH, 2), Err(SettingsError::EnablePush(2)));
        assert_eq!(SettingsError::EnablePush(2).code(), ErrorCode::Protocol);
    }

    #[test]
    fn initial_window_size_above_2_31_is_a_flow_control_error() {
        let mut s = Settings::default();
        s.apply(INITIAL_WINDOW_SIZE, MAX_WINDOW).unwrap();
        let e = s.apply(INITIAL_WINDOW_SIZE, MAX_WINDOW + 1).unwrap_err();
        assert_eq!(e.code(), ErrorCode::FlowControl);
        assert_eq!(s.initial_window_size, MAX_WINDOW);
    }

    #[test]
    fn max_frame_size_must_be_in_range() {
        let mut s = Settings::default();
        assert!(s.apply(MAX_FRAME_SIZE, 16_383).is_err());
        assert!(s.apply(MAX_FRAME_SIZE, 1 << 24).is_err());
        s.apply(MAX_FRAME_SIZE, (1 << 24) - 1).unwrap();
        assert_eq!(s.max_frame_size, (1 << 24) - 1);
    }

    #[test]
    fn connect_protocol_and_priorities_flags_are_checked() {
        let mut s = Settings::default();
        s.apply(ENABLE_CONNECT_PROTOCOL, 1).unwrap();
        assert!(s.apply(ENABLE_CONNECT_PROTOCOL, 2).is_err());
        s.apply(NO_RFC7540_PRIORITIES, 1).unwrap();
        assert!(s.apply(NO_RFC7540_PRIORITIES, 7).is_err());
    }

    #[test]
    fn unknown_settings_are_ignored() {
        let mut s = Settings::default();
        s.apply(0x99, 12345).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn other_values_are_recorded() {
        let mut s = Settings::default();
        s.apply(HEADER_TABLE_SIZE, 0).unwrap();
        s.apply(MAX_CONCURRENT_STREAMS, 7).unwrap();
        s.apply(MAX_HEADER_LIST_SIZE, 999).unwrap();
        assert_eq!(s.header_table_size, 0);
        assert_eq!(s.max_concurrent_streams, Some(7));
        assert_eq!(s.max_header_list_size, Some(999));
    }

    #[test]
    fn we_never_announce_push_or_extended_connect() {
        let p = Ours::default().params();
        assert!(!p
            .iter()
            .any(|&(id, _)| id == ENABLE_PUSH || id == ENABLE_CONNECT_PROTOCOL));
        assert!(p.contains(&(MAX_CONCURRENT_STREAMS, 100)));
        assert!(p.contains(&(MAX_HEADER_LIST_SIZE, 16_384)));
    }

    #[test]
    fn our_windows_are_clamped_to_what_the_codec_supports() {
        let o = Ours {
            initial_window_size: 10,
            connection_window: u32::MAX,
            ..Ours::default()
        }
        .clamped();
        assert_eq!(o.initial_window_size, DEFAULT_WINDOW);
        assert_eq!(o.connection_window, MAX_WINDOW);
        let p = Ours {
            initial_window_size: 100_000,
            ..Ours::default()
        }
        .params();
        assert!(p.contains(&(INITIAL_WINDOW_SIZE, 100_000)));
    }
}
