//! The record of replacements this program created, per token: only these are ever deleted as
//! orphans, and only when no destination can still hold them. Ids and flags, never values.

use crate::state::{StateError, Store};
use serde::{Deserialize, Serialize};

/// State sub-folder of the records.
pub const MINTED: &str = "minted";
/// The newest this many per token are kept.
const MAX: usize = 64;

/// One replacement this program created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Minted {
    pub id: String,
    /// A destination may hold it: set before its first write, cleared once a later rotation
    /// of the token completed (every destination then holds a newer value).
    #[serde(default)]
    pub pushed: bool,
}

pub fn load(store: &Store, name: &str) -> Result<Vec<Minted>, StateError> {
    Ok(store.load(MINTED, name)?.unwrap_or_default())
}

/// Apply `change` to `name`'s record and save it when it changed.
pub fn update(
    store: &Store,
    name: &str,
    change: impl FnOnce(&mut Vec<Minted>),
) -> Result<(), StateError> {
    let before = load(store, name)?;
    let mut list = before.clone();
    change(&mut list);
    let excess = list.len().saturating_sub(MAX);
    list.drain(..excess);
    if list == before {
        return Ok(());
    }
    store.save(MINTED, name, &list)
}

/// Record that `id` was created (not yet written anywhere).
pub fn created(list: &mut Vec<Minted>, id: &str) {
    if !list.iter().any(|m| m.id == id) {
        list.push(Minted {
            id: id.to_string(),
            pushed: false,
        });
    }
}

/// `id` is about to be written to a destination.
pub fn pushed(list: &mut [Minted], id: &str) {
    for m in list.iter_mut().filter(|m| m.id == id) {
        m.pushed = true;
    }
}

/// A rotation to `current` completed: no destination holds any other replacement any more.
pub fn superseded(list: &mut [Minted], current: &str) {
    for m in list.iter_mut().filter(|m| m.id != current) {
        m.pushed = false;
    }
}

/// `id` was deleted.
pub fn gone(list: &mut Vec<Minted>, id: &str) {
    list.retain(|m| m.id != id);
}
