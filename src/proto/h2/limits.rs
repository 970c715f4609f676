//! What the codec refuses to take from a client, and the counters that
//! say it did. Each [`Limit`] hit is counted in [`Counters`] (the front
//! turns them into metrics, issue #33); the connection-level ones end the
//! connection with GOAWAY(ENHANCE_YOUR_CALM), the per-stream ones refuse
//! the stream. The codec has no clock: rates are counted in fixed windows
//! over the `Instant`s the caller passes in.

use std::time::{Duration, Instant};

use super::ErrorCode;

/// A limit the codec enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// CONTINUATION frames in one header block.
    Continuations,
    /// Bytes of one header block before decoding.
    BlockBytes,
    /// A decoded list over SETTINGS_MAX_HEADER_LIST_SIZE (name + value +
    /// 32 per field): the stream is answered 431.
    ListSize,
    /// More fields than allowed in one list: the stream is answered 431.
    FieldCount,
    /// A table-size update that is not at a block's start or is above
    /// ours: COMPRESSION_ERROR.
    TableUpdate,
    /// Client RST_STREAMs within one window (rapid reset).
    ResetRate,
    /// Client RST_STREAMs over the connection's life.
    ResetTotal,
    /// Stream errors we emitted over the connection's life.
    StreamErrors,
    /// Streams opened within one call of `receive`.
    NewStreamsPerRead,
    /// Streams past MAX_CONCURRENT_STREAMS: refused one by one.
    ConcurrentStreams,
    /// PINGs within one window.
    PingRate,
    /// SETTINGS within one window.
    SettingsRate,
    /// Empty DATA and CONTINUATION frames that end nothing, within one
    /// window.
    EmptyFrameRate,
    /// WINDOW_UPDATEs within one window.
    WindowUpdateRate,
    /// Control frames (acks, resets, window updates) queued and not
    /// written: a client that sends and never reads.
    QueuedControl,
}

impl Limit {
    /// Every limit, in [`Limit::index`] order.
    pub const ALL: [Limit; 15] = [
        Limit::Continuations,
        Limit::BlockBytes,
        Limit::ListSize,
        Limit::FieldCount,
        Limit::TableUpdate,
        Limit::ResetRate,
        Limit::ResetTotal,
        Limit::StreamErrors,
        Limit::NewStreamsPerRead,
        Limit::ConcurrentStreams,
        Limit::PingRate,
        Limit::SettingsRate,
        Limit::EmptyFrameRate,
        Limit::WindowUpdateRate,
        Limit::QueuedControl,
    ];

    /// Its place in [`Limit::ALL`] and in [`Counters::limits`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The code a connection ended by this limit is closed with; None
    /// for the per-stream limits.
    pub fn connection_code(self) -> Option<ErrorCode> {
        match self {
            Limit::ListSize | Limit::FieldCount | Limit::ConcurrentStreams => None,
            Limit::TableUpdate => Some(ErrorCode::Compression),
            _ => Some(ErrorCode::EnhanceYourCalm),
        }
    }

    /// A short name, for logs and (later) metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Continuations => "continuations",
            Limit::BlockBytes => "block_bytes",
            Limit::ListSize => "list_size",
            Limit::FieldCount => "field_count",
            Limit::TableUpdate => "table_update",
            Limit::ResetRate => "reset_rate",
            Limit::ResetTotal => "reset_total",
            Limit::StreamErrors => "stream_errors",
            Limit::NewStreamsPerRead => "new_streams_per_read",
            Limit::ConcurrentStreams => "concurrent_streams",
            Limit::PingRate => "ping_rate",
            Limit::SettingsRate => "settings_rate",
            Limit::EmptyFrameRate => "empty_frame_rate",
            Limit::WindowUpdateRate => "window_update_rate",
            Limit::QueuedControl => "queued_control",
        }
    }
}

/// The numbers, one connection's. Defaults follow what HAProxy, nginx and
/// the 2023 rapid-reset and 2024 CONTINUATION advisories settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CONTINUATION frames after one HEADERS.
    pub max_continuations: u32,
    /// Bytes of one block, all fragments together, before decoding.
    pub max_block_bytes: usize,
    /// Fields in one list (100, as for HTTP/1).
    pub max_fields: usize,
    /// The window the rates are counted in.
    pub window: Duration,
    /// Client RST_STREAMs per window.
    pub max_resets_per_window: u32,
    /// Client RST_STREAMs over the connection's life.
    pub max_resets_total: u64,
    /// Stream errors we emit over the connection's life.
    pub max_stream_errors: u64,
    /// Streams opened in one `receive`.
    pub max_new_streams_per_read: u32,
    /// PINGs per window.
    pub max_pings_per_window: u32,
    /// SETTINGS per window.
    pub max_settings_per_window: u32,
    /// Empty frames per window.
    pub max_empty_frames_per_window: u32,
    /// WINDOW_UPDATEs per window.
    pub max_window_updates_per_window: u32,
    /// Control frames queued and not yet written.
    pub max_queued_control: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_continuations: 8,
            max_block_bytes: 32 * 1024,
            max_fields: 100,
            window: Duration::from_secs(10),
            max_resets_per_window: 200,
            max_resets_total: 10_000,
            max_stream_errors: 100,
            max_new_streams_per_read: 100,
            max_pings_per_window: 100,
            max_settings_per_window: 100,
            max_empty_frames_per_window: 100,
            max_window_updates_per_window: 10_000,
            max_queued_control: 1_000,
        }
    }
}

/// A count in a fixed window of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rate {
    start: Option<Instant>,
    count: u32,
}

impl Rate {
    /// Counts one at `now`; true when that makes more than `max` in the
    /// current window. A clock that goes backwards keeps the window.
    pub fn hit(&mut self, now: Instant, window: Duration, max: u32) -> bool {
        self.hit_by(now, window, max, 1)
    }

    /// [`Rate::hit`] for one that counts as `weight`.
    pub fn hit_by(&mut self, now: Instant, window: Duration, max: u32, weight: u32) -> bool {
        match self.start {
            Some(s) if now.saturating_duration_since(s) < window => {}
            _ => {
                self.start = Some(now);
                self.count = 0;
            }
        }
        self.count = self.count.saturating_add(weight);
        self.count > max
    }

    /// The count in the current window.
    pub fn count(&self) -> u32 {
        self.count
    }
}

/// What a connection saw and did, for the front's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Times each limit was hit, by [`Limit::index`].
    pub limits: [u64; Limit::ALL.len()],
    /// Frames received.
    pub frames_received: u64,
    /// Streams the client opened.
    pub streams_opened: u64,
    /// RST_STREAMs the client sent.
    pub resets_received: u64,
    /// Stream errors we emitted (RST_STREAM for a fault of the client).
    pub stream_errors_sent: u64,
}

impl Counters {
    /// Times `l` was hit.
    pub fn hits(&self, l: Limit) -> u64 {
        self.limits[l.index()]
    }

    /// Counts a hit of `l`.
    pub fn hit(&mut self, l: Limit) {
        self.limits[l.index()] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_counts_within_its_window() {
        let t0 = Instant::now();
        let w = Duration::from_secs(1);
        let mut r = Rate::default();
        assert!(!r.hit(t0, w, 2));
        assert!(!r.hit(t0 + Duration::from_millis(500), w, 2));
        assert!(r.hit(t0 + Duration::from_millis(999), w, 2));
        assert_eq!(r.count(), 3);
    }

    #[test]
    fn a_new_window_starts_a_new_count() {
        let t0 = Instant::now();
        let w = Duration::from_secs(1);
        let mut r = Rate::default();
        r.hit(t0, w, 1);
        assert!(!r.hit(t0 + w, w, 1));
        assert_eq!(r.count(), 1);
    }

    #[test]
    fn a_clock_going_back_keeps_the_window() {
        let t0 = Instant::now() + Duration::from_secs(5);
        let w = Duration::from_secs(1);
        let mut r = Rate::default();
        r.hit(t0, w, 1);
        assert!(r.hit(t0 - Duration::from_secs(3), w, 1));
    }

    #[test]
    fn connection_limits_end_with_enhance_your_calm_or_compression() {
        for l in Limit::ALL {
            match l {
                Limit::ListSize | Limit::FieldCount | Limit::ConcurrentStreams => {
                    assert_eq!(l.connection_code(), None)
                }
                Limit::TableUpdate => assert_eq!(l.connection_code(), Some(ErrorCode::Compression)),
                _ => assert_eq!(l.connection_code(), Some(ErrorCode::EnhanceYourCalm)),
            }
        }
    }

    #[test]
    fn every_limit_has_its_own_counter_and_name() {
        let mut c = Counters::default();
        for (i, l) in Limit::ALL.iter().enumerate() {
            assert_eq!(l.index(), i);
            c.hit(*l);
        }
        assert!(Limit::ALL.iter().all(|&l| c.hits(l) == 1));
        let names: std::collections::BTreeSet<_> = Limit::ALL.iter().map(|l| l.name()).collect();
        assert_eq!(names.len(), Limit::ALL.len());
    }
}
