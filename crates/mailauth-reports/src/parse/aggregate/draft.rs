//! A record while it is being read: the raw text of its fields in buffers
//! reused from record to record, checked and typed on `</record>`.

use super::*;

/// The trimmed text of a field, `None` when empty; the buffer is reused
/// from record to record, so the values only parsed into numbers and
/// keywords cost no allocation.
#[derive(Default)]
pub(super) struct Slot {
    pub(super) buf: String,
    pub(super) set: bool,
}

impl Slot {
    /// Takes the value out of `text` (what [`take`] does for a `String`).
    pub(super) fn fill(&mut self, text: &mut String) {
        let t = text.trim();
        self.buf.clear();
        self.buf.push_str(t);
        self.set = !t.is_empty();
        text.clear();
    }

    pub(super) fn get(&self) -> Option<&str> {
        self.set.then_some(self.buf.as_str())
    }

    pub(super) fn clear(&mut self) {
        self.set = false;
    }
}

/// A record while it is being read; raw strings, checked on `</record>`.
#[derive(Default)]
pub(super) struct RecordDraft {
    pub(super) source_ip: Slot,
    pub(super) count: Slot,
    pub(super) disposition: Slot,
    pub(super) dkim: Slot,
    pub(super) spf: Slot,
    pub(super) reasons: Vec<OverrideReason>,
    pub(super) reason_type: Slot,
    pub(super) reason_comment: Option<String>,
    pub(super) envelope_to: Option<String>,
    pub(super) envelope_from: Option<String>,
    pub(super) header_from: Option<String>,
    pub(super) dkim_results: Vec<DkimAuth>,
    pub(super) spf_results: Vec<SpfAuth>,
    pub(super) auth_domain: Option<String>,
    pub(super) auth_selector: Option<String>,
    pub(super) auth_result: Slot,
    pub(super) auth_human: Option<String>,
    pub(super) auth_scope: Slot,
    pub(super) extensions: Vec<Extension>,
}

impl RecordDraft {
    /// Back to empty, keeping the buffers of the slots.
    pub(super) fn reset(&mut self) {
        for slot in [
            &mut self.source_ip,
            &mut self.count,
            &mut self.disposition,
            &mut self.dkim,
            &mut self.spf,
            &mut self.reason_type,
            &mut self.auth_result,
            &mut self.auth_scope,
        ] {
            slot.clear();
        }
        self.reasons.clear();
        self.reason_comment = None;
        self.envelope_to = None;
        self.envelope_from = None;
        self.header_from = None;
        self.dkim_results.clear();
        self.spf_results.clear();
        self.auth_domain = None;
        self.auth_selector = None;
        self.auth_human = None;
        self.extensions.clear();
    }
}
