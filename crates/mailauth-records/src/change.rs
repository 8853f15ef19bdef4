//! [`Change`]: one change to one RRset (create, update or delete), the
//! unit a diff produces and a provider or the master-file editor applies,
//! and the order in which a batch of them is applied.
//!
//! Owns the type and its ordering only. Computing changes (the diff of a
//! served zone against the desired records, ownership) and applying them
//! to a DNS server or an API live in `mailauth-core`; editing a master
//! file with them lives in [`crate::masterfile`].

use serde::{Deserialize, Serialize};

use crate::{Name, RType, RecordSet};

/// One change to one RRset. Records compare on name, type and data; a TTL
/// difference alone is an `Update` too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Change {
    Create { new: RecordSet },
    Update { old: RecordSet, new: RecordSet },
    Delete { old: RecordSet },
}

impl Change {
    pub fn name(&self) -> &Name {
        match self {
            Change::Create { new } | Change::Update { new, .. } => &new.name,
            Change::Delete { old } => &old.name,
        }
    }
    pub fn rtype(&self) -> &RType {
        match self {
            Change::Create { new } | Change::Update { new, .. } => &new.rtype,
            Change::Delete { old } => &old.rtype,
        }
    }
    /// Deletes first, then updates, then creates (a CNAME that replaces a
    /// TXT at the same name needs the TXT gone first); within a kind, by
    /// name and type.
    pub fn sort_key(&self) -> (u8, Name, RType) {
        let rank = match self {
            Change::Delete { .. } => 0,
            Change::Update { .. } => 1,
            Change::Create { .. } => 2,
        };
        (rank, self.name().clone(), self.rtype().clone())
    }
}
