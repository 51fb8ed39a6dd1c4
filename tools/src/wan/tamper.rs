//! Sans-IO byte-stream faults for the emulator's tampering mode: what an on-path
//! attacker (or a broken middlebox) can do to a TCP stream it relays. Each chunk read
//! from a source may be bit-flipped, truncated, dropped, duplicated, held back and
//! sent after the next one (reordered), or preceded by an earlier chunk of the same
//! direction (replayed).

use std::collections::VecDeque;

use super::rng::Rng;

/// Chance per chunk of each fault (at most one fault per chunk, drawn in this order).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TamperConfig {
    /// Flip one random bit.
    pub flip: f64,
    /// Forward only a random prefix.
    pub truncate: f64,
    /// Forward nothing.
    pub drop: f64,
    /// Forward it twice.
    pub duplicate: f64,
    /// Hold it back and forward it after the next chunk.
    pub reorder: f64,
    /// Forward an earlier chunk of this direction again, then this one.
    pub replay: f64,
}

impl TamperConfig {
    /// The same chance `p` for every fault.
    pub fn all(p: f64) -> Self {
        TamperConfig {
            flip: p,
            truncate: p,
            drop: p,
            duplicate: p,
            reorder: p,
            replay: p,
        }
    }
}

/// Faults applied so far, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TamperCounts {
    pub flipped: u64,
    pub truncated: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub replayed: u64,
}

impl TamperCounts {
    pub fn total(&self) -> u64 {
        self.flipped
            + self.truncated
            + self.dropped
            + self.duplicated
            + self.reordered
            + self.replayed
    }
}

/// Earlier chunks kept per direction for replays.
const HISTORY: usize = 16;

/// The tampering state of one direction of one connection.
#[derive(Debug, Default)]
pub(crate) struct Tamperer {
    held: Option<Vec<u8>>,
    history: VecDeque<Vec<u8>>,
}

impl Tamperer {
    /// Append to `out` the chunks to forward in place of `chunk`, counting faults.
    pub(crate) fn apply(
        &mut self,
        config: &TamperConfig,
        chunk: &[u8],
        rng: &mut Rng,
        counts: &mut TamperCounts,
        out: &mut Vec<Vec<u8>>,
    ) {
        if chunk.is_empty() {
            return;
        }
        let earlier = (!self.history.is_empty())
            .then(|| self.history[rng.next_u64() as usize % self.history.len()].clone());
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(chunk.to_vec());
        let draw = rng.unit();
        let mut edge = 0.0;
        let mut hit = |p: f64| {
            edge += p;
            draw < edge
        };
        let held = self.held.take();
        if hit(config.flip) {
            let mut c = chunk.to_vec();
            let bit = rng.next_u64() as usize % (c.len() * 8);
            c[bit / 8] ^= 1 << (bit % 8);
            counts.flipped += 1;
            out.push(c);
        } else if hit(config.truncate) {
            let keep = rng.next_u64() as usize % chunk.len();
            counts.truncated += 1;
            if keep > 0 {
                out.push(chunk[..keep].to_vec());
            }
        } else if hit(config.drop) {
            counts.dropped += 1;
        } else if hit(config.duplicate) {
            counts.duplicated += 1;
            out.push(chunk.to_vec());
            out.push(chunk.to_vec());
        } else if held.is_none() && hit(config.reorder) {
            counts.reordered += 1;
            self.held = Some(chunk.to_vec());
        } else if hit(config.replay) && earlier.is_some() {
            counts.replayed += 1;
            out.extend(earlier);
            out.push(chunk.to_vec());
        } else {
            out.push(chunk.to_vec());
        }
        // A held-back chunk goes after the one that overtook it.
        out.extend(held);
    }

    /// A chunk still held back (forward it when the source ends).
    pub(crate) fn take_held(&mut self) -> Option<Vec<u8>> {
        self.held.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: TamperConfig, chunks: &[&[u8]], seed: u64) -> (Vec<Vec<u8>>, TamperCounts) {
        let mut t = Tamperer::default();
        let mut rng = Rng::new(seed);
        let mut counts = TamperCounts::default();
        let mut out = Vec::new();
        for c in chunks {
            t.apply(&config, c, &mut rng, &mut counts, &mut out);
        }
        out.extend(t.take_held());
        (out, counts)
    }

    #[test]
    fn no_faults_forward_everything_unchanged() {
        let chunks: [&[u8]; 3] = [b"abc", b"def", b"g"];
        let (out, counts) = run(TamperConfig::default(), &chunks, 1);
        assert_eq!(out, vec![b"abc".to_vec(), b"def".to_vec(), b"g".to_vec()]);
        assert_eq!(counts.total(), 0);
    }

    #[test]
    fn each_fault_does_what_it_says() {
        let chunks: [&[u8]; 2] = [b"first chunk", b"second chunk"];
        let only = |f: fn(&mut TamperConfig)| {
            let mut c = TamperConfig::default();
            f(&mut c);
            c
        };
        let (out, n) = run(only(|c| c.drop = 1.0), &chunks, 1);
        assert!(out.is_empty() && n.dropped == 2);
        let (out, n) = run(only(|c| c.duplicate = 1.0), &chunks, 1);
        assert_eq!(out.len(), 4);
        assert_eq!(
            (out[0].clone(), out[1].clone()),
            (chunks[0].to_vec(), chunks[0].to_vec())
        );
        assert_eq!(n.duplicated, 2);
        let (out, n) = run(only(|c| c.reorder = 1.0), &chunks, 1);
        assert_eq!(out, vec![chunks[1].to_vec(), chunks[0].to_vec()]);
        assert_eq!(n.reordered, 1);
        let (out, n) = run(only(|c| c.flip = 1.0), &chunks, 1);
        for (o, c) in out.iter().zip(chunks) {
            let bits: u32 = o.iter().zip(c).map(|(a, b)| (a ^ b).count_ones()).sum();
            assert_eq!(bits, 1);
        }
        assert_eq!(n.flipped, 2);
        let (out, n) = run(only(|c| c.truncate = 1.0), &chunks, 1);
        assert!(out
            .iter()
            .zip(chunks)
            .all(|(o, c)| o.len() < c.len() && c.starts_with(o)));
        assert_eq!(n.truncated, 2);
        // The first chunk has nothing to replay; the second replays the first.
        let (out, n) = run(only(|c| c.replay = 1.0), &chunks, 1);
        assert_eq!(
            out,
            vec![chunks[0].to_vec(), chunks[0].to_vec(), chunks[1].to_vec()]
        );
        assert_eq!(n.replayed, 1);
    }

    #[test]
    fn mixed_faults_are_repeatable_by_seed() {
        let chunks: Vec<Vec<u8>> = (0..200u8).map(|i| vec![i; 1 + i as usize % 7]).collect();
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let a = run(TamperConfig::all(0.1), &refs, 9);
        let b = run(TamperConfig::all(0.1), &refs, 9);
        assert_eq!(a, b);
        assert!(a.1.total() > 50, "{:?}", a.1);
        assert!(a.1.flipped > 0 && a.1.reordered > 0 && a.1.replayed > 0);
    }
}
