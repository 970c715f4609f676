//! SIGHUPs (`svcadm refresh`) asked and answered, for
//! `/opt/triton/clb/reconfigure` (which waits for its own), the status
//! document and the log.

/// Where a SIGHUP stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadPhase {
    /// Waiting for the metadata read it asked for.
    Read,
    /// Waiting for every worker to apply this generation.
    Applied(u64),
}

/// Refreshes asked for and their outcomes.
#[derive(Debug, Default)]
pub struct Reloads {
    /// SIGHUPs received.
    pub requested: u64,
    /// SIGHUPs answered.
    pub done: u64,
    /// What the last answered one did, in words.
    pub outcome: Option<String>,
    waiting: Option<ReloadPhase>,
}

impl Reloads {
    /// A SIGHUP arrived: its metadata read is under way.
    pub fn asked(&mut self) {
        self.requested += 1;
        self.waiting = Some(ReloadPhase::Read);
    }

    /// Whether a refresh waits for the metadata read in progress.
    pub fn waits_for_read(&self) -> bool {
        self.waiting == Some(ReloadPhase::Read)
    }

    /// The read produced generation `g`: the refresh is answered once
    /// every worker applies it.
    pub fn wait_for(&mut self, g: u64) {
        if self.waits_for_read() {
            self.waiting = Some(ReloadPhase::Applied(g));
        }
    }

    /// Whether a refresh waits for generation `g`.
    pub fn waits_for(&self, g: u64) -> bool {
        self.waiting == Some(ReloadPhase::Applied(g))
    }

    /// The read ended without a new generation: answered with `outcome`
    /// if a refresh waited for it.
    pub fn read_ended(&mut self, outcome: impl FnOnce() -> String) {
        if self.waits_for_read() {
            self.complete(outcome());
        }
    }

    /// The refresh waited for is answered.
    pub fn complete(&mut self, outcome: String) {
        log::info!("refresh: {outcome}");
        self.done = self.requested;
        self.outcome = Some(outcome);
        self.waiting = None;
    }
}
