//! A set of link numbers that costs nothing per idle link: what the event loop
//! visits in a turn, and what the journal's commit works on (see `persist`).

/// Link ids queued for the next turn, each at most once (a flag per link).
#[derive(Debug, Default)]
pub(crate) struct ReadySet {
    queued: Vec<bool>,
    ids: Vec<usize>,
}

impl ReadySet {
    pub(crate) fn new(links: usize) -> Self {
        ReadySet {
            queued: vec![false; links],
            ids: Vec::new(),
        }
    }

    /// Queue `id` unless it is queued already.
    pub(crate) fn mark(&mut self, id: usize) {
        if let Some(q) = self.queued.get_mut(id) {
            if !*q {
                *q = true;
                self.ids.push(id);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The queued ids, in the order they were queued.
    pub(crate) fn ids(&self) -> &[usize] {
        &self.ids
    }

    /// Keep only the ids for which `keep` is true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let queued = &mut self.queued;
        self.ids.retain(|&id| {
            let k = keep(id);
            if !k {
                queued[id] = false;
            }
            k
        });
    }

    /// The queued ids (in the order they were queued) into `out`, emptying the set.
    pub(crate) fn drain_into(&mut self, out: &mut Vec<usize>) {
        for &id in &self.ids {
            self.queued[id] = false;
        }
        out.append(&mut self.ids);
    }
}
