//! Keyset pagination shared by every list: newest first, by id (ids sort by creation time).

/// One page to fetch: at most `limit` rows whose id sorts before `before`.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: u32,
    /// Exclusive upper bound on the id (the last id of the previous page).
    pub before: Option<String>,
}

/// A page of results, and the id to continue from when there are more.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub next_before: Option<String>,
}

impl<T> Listing<T> {
    /// Builds a listing from `limit + 1` fetched rows.
    pub(crate) fn from_overfetch(mut items: Vec<T>, limit: u32, id_of: impl Fn(&T) -> String) -> Self {
        let limit = limit as usize;
        let next_before = if items.len() > limit {
            items.truncate(limit);
            items.last().map(&id_of)
        } else {
            None
        };
        Self { items, next_before }
    }
}
