//! Joining the parts of a concatenated MO back into one message, sans-IO: parts go
//! in with their ring sequence numbers and `now`, whole messages come out with the
//! sequence numbers of every part they were made of.
//!
//! Parts are grouped by link, sender, receiver, reference and total, so two phones
//! (or two messages of one phone) never mix; they may arrive in any order, and a
//! repeated part is kept once (its sequence number still rides along, so that
//! acknowledging the message frees it too). A group that stays incomplete for the
//! timeout is handed out with what it has, marked incomplete, never dropped.
//!
//! The caller keeps the parts unprocessed in its receiving ring until the joined
//! message is acknowledged: a part is then as durable as any message, and the
//! ring's back-pressure holds. A ring can fill with parts of messages that cannot
//! complete (their other parts wait behind the full ring): `release_oldest` hands
//! out the oldest group early to break that.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::message::{Address, Coding, Message, Part};

/// Where parts are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    link: usize,
    from: Address,
    to: Address,
    reference: u16,
    total: u8,
}

#[derive(Debug)]
struct Group {
    first_at: Instant,
    /// By part index - 1.
    parts: Vec<Option<Message>>,
    present: usize,
    /// Every sequence number the group holds, repeats included.
    seqs: Vec<u64>,
}

/// A message joined from its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub link: usize,
    pub message: Message,
    /// The ring sequence numbers of its parts (repeats included), lowest first: all
    /// are processed when the message is.
    pub seqs: Vec<u64>,
    /// Part numbers (1-based) that never came; empty for a whole message.
    pub missing: Vec<u8>,
}

/// What became of a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Kept until the rest of its message comes.
    Held,
    /// It completed its message.
    Joined(Joined),
    /// A repeat of a part of a message completed a moment ago (within the timeout):
    /// nothing to hand out; its slot can be processed now.
    Repeat,
}

/// See the module docs.
#[derive(Debug)]
pub struct Reassembler {
    timeout: Duration,
    groups: HashMap<Key, Group>,
    /// Messages completed within the timeout, so that late repeats of their parts
    /// do not start a message of their own.
    done: HashMap<Key, Instant>,
}

impl Reassembler {
    /// Kannel waits 1,800 s for the rest of a message; the caller chooses.
    pub fn new(timeout: Duration) -> Self {
        Reassembler {
            timeout,
            groups: HashMap::new(),
            done: HashMap::new(),
        }
    }

    /// Take part `message` (its `part` set; a message without one is `Repeat`, as it
    /// is nothing to hold) stored as `seq` on `link`.
    pub fn offer(&mut self, link: usize, seq: u64, message: &Message, now: Instant) -> Offer {
        let Some(part) = message.part else {
            return Offer::Repeat;
        };
        let key = Key {
            link,
            from: message.from,
            to: message.to,
            reference: part.reference,
            total: part.total,
        };
        if self
            .done
            .get(&key)
            .is_some_and(|at| now < *at + self.timeout)
        {
            return Offer::Repeat;
        }
        let group = self.groups.entry(key).or_insert_with(|| Group {
            first_at: now,
            parts: vec![None; usize::from(part.total)],
            present: 0,
            seqs: Vec::new(),
        });
        group.seqs.push(seq);
        if let Some(slot) = group.parts.get_mut(usize::from(part.index) - 1) {
            if slot.is_none() {
                *slot = Some(message.clone());
                group.present += 1;
            }
        }
        if group.present < group.parts.len() {
            return Offer::Held;
        }
        match self.groups.remove(&key) {
            Some(group) => {
                self.done.insert(key, now);
                Offer::Joined(join(key, group))
            }
            None => Offer::Held,
        }
    }

    /// Groups older than the timeout, handed out incomplete.
    pub fn expire(&mut self, now: Instant) -> Vec<Joined> {
        let timeout = self.timeout;
        self.done.retain(|_, at| now < *at + timeout);
        let due: Vec<Key> = self
            .groups
            .iter()
            .filter(|(_, g)| now >= g.first_at + self.timeout)
            .map(|(k, _)| *k)
            .collect();
        let mut out: Vec<Joined> = due
            .into_iter()
            .filter_map(|k| self.groups.remove(&k).map(|g| join(k, g)))
            .collect();
        out.sort_by_key(|j| j.seqs.first().copied());
        out
    }

    /// The oldest group of `link`, handed out now (incomplete).
    pub fn release_oldest(&mut self, link: usize) -> Option<Joined> {
        let key = self
            .groups
            .iter()
            .filter(|(k, _)| k.link == link)
            .min_by_key(|(_, g)| (g.first_at, g.seqs.first().copied()))
            .map(|(k, _)| *k)?;
        let group = self.groups.remove(&key)?;
        Some(join(key, group))
    }

    /// Ring slots `link`'s groups hold.
    pub fn held(&self, link: usize) -> usize {
        self.groups
            .iter()
            .filter(|(k, _)| k.link == link)
            .map(|(_, g)| g.seqs.len())
            .sum()
    }

    /// When `expire` next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.groups
            .values()
            .map(|g| g.first_at + self.timeout)
            .min()
    }

    /// Whether any part is held.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Forget `link`'s groups (its receiving ring starts again).
    pub fn clear_link(&mut self, link: usize) {
        self.groups.retain(|k, _| k.link != link);
        self.done.retain(|k, _| k.link != link);
    }
}

/// The parts that came, in order: text joined as text when every part is text,
/// otherwise the octets of each part one after the other.
fn join(key: Key, mut group: Group) -> Joined {
    group.seqs.sort_unstable();
    let missing: Vec<u8> = (1..=key.total)
        .filter(|i| group.parts[usize::from(*i) - 1].is_none())
        .collect();
    let present: Vec<&Message> = group.parts.iter().flatten().collect();
    let all_text = present.iter().all(|m| m.coding == Coding::Text);
    let mut payload = Vec::new();
    for m in &present {
        payload.extend_from_slice(m.payload());
    }
    let mut message = Message::EMPTY;
    if let Some(first) = present.first() {
        message.set_envelope(&first.envelope());
    }
    message.from = key.from;
    message.to = key.to;
    // Whole: no part. Incomplete: the first part that never came.
    message.part = missing
        .first()
        .and_then(|&index| Part::new(key.reference, key.total, index).ok());
    message.coding = if all_text {
        Coding::Text
    } else {
        Coding::Binary
    };
    // At most 255 parts of at most 140 octets (as UTF-8, a few times that): within
    // the payload limit, which the parts were each checked against.
    let _ = message.set_payload(&payload);
    Joined {
        link: key.link,
        message,
        seqs: group.seqs,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::concat::{split_text, Chunk, RefWidth};
    use proptest::prelude::*;

    fn part(from: &str, text: &str, reference: u16, total: u8, index: u8) -> Message {
        let mut m = Message::text(from, "1000", text).unwrap();
        m.part = Some(Part::new(reference, total, index).unwrap());
        m
    }

    #[test]
    fn parts_of_two_senders_with_one_reference_do_not_mix() {
        let now = Instant::now();
        let mut r = Reassembler::new(Duration::from_secs(60));
        assert_eq!(
            r.offer(0, 1, &part("+461", "a1", 7, 2, 1), now),
            Offer::Held
        );
        assert_eq!(
            r.offer(0, 2, &part("+462", "b2", 7, 2, 2), now),
            Offer::Held
        );
        assert_eq!(
            r.offer(1, 3, &part("+461", "X2", 7, 2, 2), now),
            Offer::Held,
            "other link"
        );
        let Offer::Joined(a) = r.offer(0, 4, &part("+461", "a2", 7, 2, 2), now) else {
            panic!("joined")
        };
        assert_eq!(
            (a.message.text_str(), a.seqs.as_slice()),
            (Some("a1a2"), &[1, 4][..])
        );
        assert_eq!(a.message.from.as_str(), "+461");
        assert!(a.missing.is_empty() && a.message.part.is_none());
        let Offer::Joined(b) = r.offer(0, 5, &part("+462", "b1", 7, 2, 1), now) else {
            panic!("joined")
        };
        assert_eq!(b.message.text_str(), Some("b1b2"));
        assert_eq!(r.held(0), 0);
        assert_eq!(r.held(1), 1);
        // A late repeat of a part of a joined message starts nothing.
        assert_eq!(
            r.offer(0, 6, &part("+462", "b1", 7, 2, 1), now),
            Offer::Repeat
        );
        assert_eq!(r.held(0), 0);
    }

    #[test]
    fn an_incomplete_message_is_handed_out_after_the_timeout() {
        let now = Instant::now();
        let mut r = Reassembler::new(Duration::from_secs(60));
        r.offer(0, 1, &part("+461", "one ", 9, 3, 1), now);
        r.offer(0, 2, &part("+461", "three", 9, 3, 3), now);
        assert_eq!(r.poll_timeout(), Some(now + Duration::from_secs(60)));
        assert!(r.expire(now + Duration::from_secs(59)).is_empty());
        let [j] = &r.expire(now + Duration::from_secs(60))[..] else {
            panic!("one message")
        };
        assert_eq!(j.message.text_str(), Some("one three"));
        assert_eq!(
            (j.missing.as_slice(), j.seqs.as_slice()),
            (&[2][..], &[1, 2][..])
        );
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn a_full_ring_of_parts_gives_up_its_oldest_message() {
        let now = Instant::now();
        let mut r = Reassembler::new(Duration::from_secs(60));
        for seq in 1..=4u64 {
            let from = format!("+46{seq}");
            r.offer(
                0,
                seq,
                &part(&from, "x", 1, 2, 1),
                now + Duration::from_secs(seq),
            );
        }
        assert_eq!(r.held(0), 4);
        let j = r.release_oldest(0).unwrap();
        assert_eq!(
            (j.message.from.as_str(), j.seqs.as_slice()),
            ("+461", &[1][..])
        );
        assert_eq!(r.held(0), 3);
        assert_eq!(r.release_oldest(1), None);
    }

    proptest! {
        #[test]
        fn any_order_with_repeats_joins_to_the_text(
            text in "[a-z€ж😀 ]{0,600}",
            seed in any::<u64>(),
            repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let split = split_text(&text, RefWidth::Eight).unwrap();
            let total = split.total() as u8;
            let mut parts: Vec<Message> = split.chunks.iter().zip(1u8..).map(|(c, i)| {
                let Chunk::Text(t) = c else { unreachable!() };
                part("+4670", t, 42, total, i)
            }).collect();
            for r in &repeats {
                parts.push(parts[r.index(parts.len())].clone());
            }
            // A deterministic shuffle from the seed.
            let mut order: Vec<usize> = (0..parts.len()).collect();
            let mut s = seed | 1;
            for i in (1..order.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                order.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let now = Instant::now();
            let mut r = Reassembler::new(Duration::from_secs(60));
            let mut joined = Vec::new();
            let mut repeats_after = 0;
            for (n, &i) in order.iter().enumerate() {
                match r.offer(0, n as u64 + 1, &parts[i], now) {
                    Offer::Joined(j) => joined.push(j),
                    Offer::Repeat => repeats_after += 1,
                    Offer::Held => {}
                }
            }
            prop_assert_eq!(joined.len(), 1);
            prop_assert!(joined[0].missing.is_empty());
            prop_assert_eq!(joined[0].message.text_str(), Some(text.as_str()));
            prop_assert!(r.is_empty());
            prop_assert_eq!(
                joined[0].seqs.len() + repeats_after,
                parts.len(),
                "every part's seq is handed back once"
            );
        }
    }
}
