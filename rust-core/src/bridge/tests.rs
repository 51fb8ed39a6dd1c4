//! The bridge against a scripted SMSC session and a real link pair in memory. The
//! whole path under faults is proven in `tests/buffer_server_sim.rs`; these pin the
//! individual rules.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::*;
use crate::journal::{JournalConfig, SimStorage};
use crate::link::persist::Persistence;
use crate::link::{Event, LinkConfig};
use crate::ring::SlotState;
use crate::smsc::{ConnIndex, MoAnswer, MoToken, Permanence, SmscEvent, SubmitError, SubmitId};

/// An SMSC session whose events the test scripts and whose commands it records.
#[derive(Default)]
struct Script {
    window: usize,
    open: bool,
    outstanding: Vec<SubmitId>,
    submitted: Vec<SubmitId>,
    answers: Vec<(MoToken, MoAnswer)>,
    events: VecDeque<SmscEvent>,
    logouts: usize,
    hold_limit: Option<Duration>,
}

/// The bridge owns its session; the test keeps a handle to the same script.
#[derive(Clone, Default)]
struct Fake(std::sync::Arc<parking_lot::Mutex<Script>>);

impl SmscClient for Fake {
    fn protocol(&self) -> &'static str {
        "fake"
    }
    fn mo_hold_limit(&self) -> Option<Duration> {
        self.0.lock().hold_limit
    }
    fn requests_reports(&self) -> bool {
        true
    }
    fn connected(&mut self, _conn: ConnIndex, _now: Instant) {
        self.0.lock().open = true;
    }
    fn connection_lost(&mut self, _conn: ConnIndex, _now: Instant) {
        let mut s = self.0.lock();
        s.open = false;
        let lost: Vec<_> = s.outstanding.drain(..).collect();
        for id in lost {
            s.events.push_back(SmscEvent::Unanswered { id });
        }
        s.events.push_back(SmscEvent::Down {
            reason: "lost".into(),
        });
    }
    fn handle_input(&mut self, _conn: ConnIndex, _bytes: &[u8], _now: Instant) {}
    fn handle_timeout(&mut self, _now: Instant) {}
    fn submit_room(&self) -> usize {
        let s = self.0.lock();
        if s.open {
            s.window.saturating_sub(s.outstanding.len())
        } else {
            0
        }
    }
    fn submit(
        &mut self,
        id: SubmitId,
        message: &Message,
        _now: Instant,
    ) -> Result<(), SubmitError> {
        if message.text_str() == Some("unencodable") {
            return Err(SubmitError::Unencodable {
                reason: "test".into(),
                code: 8,
            });
        }
        let mut s = self.0.lock();
        s.outstanding.push(id);
        s.submitted.push(id);
        Ok(())
    }
    fn answer(&mut self, token: MoToken, answer: MoAnswer, _now: Instant) {
        self.0.lock().answers.push((token, answer));
    }
    fn logout(&mut self, _now: Instant) {
        self.0.lock().logouts += 1;
    }
    fn poll_transmit(&mut self, _conn: ConnIndex, _buf: &mut Vec<u8>) -> usize {
        0
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn poll_event(&mut self) -> Option<SmscEvent> {
        self.0.lock().events.pop_front()
    }
    fn is_open(&self) -> bool {
        self.0.lock().open
    }
}

impl Fake {
    fn answer_submit(&self, event: SmscEvent) {
        let id = match &event {
            SmscEvent::Accepted { id, .. } | SmscEvent::Rejected { id, .. } => *id,
            _ => unreachable!("not a submit answer"),
        };
        let mut s = self.0.lock();
        s.outstanding.retain(|o| *o != id);
        s.events.push_back(event);
    }
}

/// The buffer server's endpoint ("bs") and the IM side's ("im"), joined in memory.
struct World {
    now: Instant,
    bs: Endpoint,
    im: Endpoint,
    bridge: Bridge,
    smsc: Fake,
    im_events: Vec<Event>,
    /// The buffer server's journal, committed at every step of `pump` when there.
    journal: Option<Persistence<SimStorage>>,
    /// Journal segments released so far.
    released: usize,
}

impl World {
    fn new(window: usize, capacity: usize) -> World {
        let now = Instant::now();
        let config = |name: &str| {
            let mut c = LinkConfig::new(name, b"bridge test key, 16+");
            c.capacity = capacity;
            c
        };
        let smsc = Fake::default();
        smsc.0.lock().window = window;
        let config_bridge = BridgeConfig {
            retry_after: Duration::from_secs(1),
            retry_max: Duration::from_secs(4),
            max_attempts: 3,
        };
        let mut w = World {
            now,
            bs: Endpoint::new(config("bs"), now).unwrap(),
            im: Endpoint::new(config("im"), now).unwrap(),
            bridge: Bridge::new(Box::new(smsc.clone()), config_bridge),
            smsc,
            im_events: Vec::new(),
            journal: None,
            released: 0,
        };
        w.bs.connected(now, crate::link::Side::Dialer);
        w.im.connected(now, crate::link::Side::Listener);
        w.bridge.smsc_connected(0, now);
        w.pump();
        w
    }

    /// Move bytes both ways and let the bridge react until nothing changes.
    fn pump(&mut self) {
        let mut buf = Vec::new();
        for _ in 0..50 {
            self.bridge.poll(&mut self.bs, self.now);
            if let Some(journal) = &mut self.journal {
                let done = journal.commit(&mut [&mut self.bs], self.now, |_, _| {});
                self.released += done.expect("commit").released;
            }
            let mut moved = false;
            buf.clear();
            while self.bs.poll_transmit(self.now, &mut buf) > 0 {}
            if !buf.is_empty() {
                moved = true;
                self.im.handle_input(&buf, self.now).unwrap();
            }
            buf.clear();
            while self.im.poll_transmit(self.now, &mut buf) > 0 {}
            if !buf.is_empty() {
                moved = true;
                self.bs.handle_input(&buf, self.now).unwrap();
            }
            while let Some(e) = self.im.poll_event() {
                self.im_events.push(e);
            }
            while self.bs.poll_event().is_some() {}
            if !moved {
                break;
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.bridge.handle_timeout(self.now);
        self.pump();
    }

    fn send_mt(&mut self, text: &str) -> u64 {
        let seq = self
            .im
            .send(&Message::text("1000", "+4670", text).unwrap())
            .unwrap();
        self.pump();
        seq
    }

    /// Final outcomes the IM side heard, by seq.
    fn outcomes(&self) -> Vec<(u64, Outcome)> {
        self.im_events
            .iter()
            .filter_map(|e| match e {
                Event::StatusChanged {
                    seq,
                    state: SlotState::Processed,
                    outcome: Some(o),
                    ..
                } => Some((*seq, *o)),
                _ => None,
            })
            .collect()
    }

    fn submitted(&self) -> Vec<SubmitId> {
        self.smsc.0.lock().submitted.clone()
    }

    fn mo(&mut self, token: u32, text: &str) {
        let message = Box::new(Message::text("+4670", "1000", text).unwrap());
        self.smsc.0.lock().events.push_back(SmscEvent::Mo {
            token: MoToken(token),
            message,
        });
        self.pump();
    }

    fn im_received(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((seq, m)) = self.im.next_received() {
            out.push(m.text_str().unwrap_or("").to_owned());
            self.im.mark_processed(seq, Outcome::Accepted).unwrap();
        }
        self.pump();
        out
    }
}

#[test]
fn mt_is_submitted_under_its_link_seq_and_the_answer_becomes_its_outcome() {
    let mut w = World::new(1, 8);
    let a = w.send_mt("a");
    let b = w.send_mt("b");
    assert_eq!(w.submitted(), vec![a], "window 1: one at a time");
    w.smsc.answer_submit(SmscEvent::Accepted {
        id: a,
        smsc_id: None,
    });
    w.pump();
    assert_eq!(w.submitted(), vec![a, b]);
    w.smsc.answer_submit(SmscEvent::Rejected {
        id: b,
        code: 300,
        permanence: Permanence::Permanent,
        text: None,
    });
    w.pump();
    assert_eq!(
        w.outcomes(),
        vec![(a, Outcome::Accepted), (b, Outcome::Rejected { code: 300 })]
    );
    assert!(w.bridge.is_idle());
    let s = w.bridge.stats();
    assert_eq!((s.mt_submitted, s.mt_accepted, s.mt_rejected), (2, 1, 1));
}

#[test]
fn a_window_keeps_several_submits_outstanding_and_answers_come_in_any_order() {
    let mut w = World::new(3, 16);
    let seqs: Vec<u64> = (0..5).map(|i| w.send_mt(&format!("m{i}"))).collect();
    assert_eq!(w.submitted(), seqs[..3]);
    for id in [seqs[2], seqs[0]] {
        w.smsc
            .answer_submit(SmscEvent::Accepted { id, smsc_id: None });
    }
    w.pump();
    assert_eq!(w.submitted(), seqs, "two answers made room for two more");
    let outcomes: Vec<u64> = w.outcomes().iter().map(|o| o.0).collect();
    assert_eq!(outcomes, vec![seqs[2], seqs[0]]);
}

#[test]
fn a_submit_without_answer_is_submitted_again_on_the_next_session() {
    let mut w = World::new(1, 8);
    let a = w.send_mt("a");
    w.bridge.smsc_connection_lost(0, w.now);
    w.pump();
    assert_eq!(w.submitted(), vec![a]);
    w.bridge.smsc_connected(0, w.now);
    w.pump();
    assert_eq!(w.submitted(), vec![a, a]);
    assert_eq!(w.bridge.stats().mt_resubmitted, 1);
    w.smsc.answer_submit(SmscEvent::Accepted {
        id: a,
        smsc_id: None,
    });
    w.pump();
    assert_eq!(
        w.outcomes(),
        vec![(a, Outcome::Accepted)],
        "exactly one outcome"
    );
}

#[test]
fn a_temporary_refusal_is_retried_after_a_growing_back_off_then_given_up() {
    let mut w = World::new(1, 8);
    let a = w.send_mt("a");
    let refuse = |w: &mut World| {
        w.smsc.answer_submit(SmscEvent::Rejected {
            id: a,
            code: 6,
            permanence: Permanence::Temporary,
            text: None,
        });
        w.pump();
    };
    refuse(&mut w);
    assert_eq!(w.submitted().len(), 1, "not before the back-off");
    assert_eq!(
        w.bridge.poll_timeout(),
        Some(w.now + Duration::from_secs(1))
    );
    w.advance(Duration::from_secs(1));
    assert_eq!(w.submitted().len(), 2);
    refuse(&mut w);
    w.advance(Duration::from_secs(1));
    assert_eq!(w.submitted().len(), 2, "the second wait is twice as long");
    w.advance(Duration::from_secs(1));
    assert_eq!(w.submitted().len(), 3);
    refuse(&mut w);
    // max_attempts = 3: the third refusal is final, with the SMSC's code.
    assert_eq!(w.outcomes(), vec![(a, Outcome::Rejected { code: 6 })]);
    assert_eq!(w.bridge.stats().mt_temporary_failures, 2);
}

#[test]
fn a_message_the_protocol_cannot_carry_is_rejected_and_the_next_one_goes() {
    let mut w = World::new(1, 8);
    let bad = w.send_mt("unencodable");
    let good = w.send_mt("fine");
    assert_eq!(w.submitted(), vec![good]);
    assert_eq!(w.outcomes(), vec![(bad, Outcome::Rejected { code: 8 })]);
    assert!(matches!(
        w.bridge.poll_event(),
        Some(BridgeEvent::MtUnencodable { seq, .. }) if seq == bad
    ));
}

#[test]
fn a_long_mt_goes_as_its_parts_and_has_one_outcome() {
    let mut w = World::new(2, 8);
    let long = w.send_mt(&"x".repeat(400)); // 3 parts of 153, 153, 94
    let ids: Vec<SubmitId> = (1..=3)
        .map(|i| crate::smsc::part_submit_id(long, i))
        .collect();
    assert_eq!(w.submitted(), ids[..2], "window 2: two parts outstanding");
    w.smsc.answer_submit(SmscEvent::Accepted {
        id: ids[1],
        smsc_id: Some("b".into()),
    });
    w.pump();
    assert_eq!(w.submitted(), ids);
    for id in [ids[2], ids[0]] {
        w.smsc
            .answer_submit(SmscEvent::Accepted { id, smsc_id: None });
        w.pump();
    }
    assert_eq!(w.outcomes(), vec![(long, Outcome::Accepted)]);
    let s = w.bridge.stats();
    assert_eq!((s.mt_submitted, s.mt_accepted), (3, 1));

    // A permanent refusal of one part rejects the message at once; a temporary one
    // retries that part only.
    let other = w.send_mt(&"y".repeat(200));
    let ids: Vec<SubmitId> = (1..=2)
        .map(|i| crate::smsc::part_submit_id(other, i))
        .collect();
    w.smsc.answer_submit(SmscEvent::Rejected {
        id: ids[0],
        code: 6,
        permanence: Permanence::Temporary,
        text: None,
    });
    w.pump();
    w.advance(Duration::from_secs(1));
    assert_eq!(w.submitted()[3..], [ids[0], ids[1], ids[0]]);
    w.smsc.answer_submit(SmscEvent::Rejected {
        id: ids[1],
        code: 300,
        permanence: Permanence::Permanent,
        text: None,
    });
    w.pump();
    assert_eq!(w.outcomes()[1], (other, Outcome::Rejected { code: 300 }));
    // The other part's late answer changes nothing.
    w.smsc.answer_submit(SmscEvent::Accepted {
        id: ids[0],
        smsc_id: None,
    });
    w.pump();
    assert_eq!(w.outcomes().len(), 2);
    assert!(w.bridge.is_idle());
}

#[test]
fn mo_is_answered_only_once_stored_and_held_in_order_while_the_ring_is_full() {
    let mut w = World::new(1, 2);
    w.mo(1, "one");
    w.mo(2, "two");
    // The ring (2 slots) holds both; the IM side has not processed them yet.
    w.mo(3, "three");
    w.mo(4, "four");
    let answered: Vec<u32> = w.smsc.0.lock().answers.iter().map(|a| a.0 .0).collect();
    assert_eq!(answered, vec![1, 2], "three and four wait unanswered");
    assert_eq!(w.bridge.stats().mo_backpressured, 2);
    assert_eq!(w.im_received(), vec!["one", "two"]);
    assert_eq!(w.im_received(), vec!["three", "four"]);
    let answers = w.smsc.0.lock().answers.clone();
    assert_eq!(
        answers,
        (1..=4)
            .map(|t| (MoToken(t), MoAnswer::Accept))
            .collect::<Vec<_>>()
    );
}

#[test]
fn held_mo_are_forgotten_when_the_smsc_connection_goes() {
    let mut w = World::new(1, 1);
    w.mo(1, "stored");
    w.mo(2, "held");
    w.bridge.smsc_connection_lost(0, w.now);
    w.pump();
    assert!(w.bridge.is_idle(), "the SMSC delivers the held one again");
    assert_eq!(w.im_received(), vec!["stored"]);
}

#[test]
fn shutdown_takes_no_new_mt_and_logs_out_once_the_last_is_decided() {
    let mut w = World::new(1, 8);
    let a = w.send_mt("a");
    w.bridge.begin_shutdown();
    let _b = w.send_mt("b");
    assert_eq!(w.smsc.0.lock().logouts, 0);
    w.smsc.answer_submit(SmscEvent::Accepted {
        id: a,
        smsc_id: None,
    });
    w.pump();
    assert_eq!(
        w.submitted(),
        vec![a],
        "b stays in the ring for the next run"
    );
    assert!(w.smsc.0.lock().logouts > 0);
}

#[test]
fn an_mo_held_past_the_protocols_limit_is_handed_back_to_retry_later() {
    let mut w = World::new(1, 1);
    w.smsc.0.lock().hold_limit = Some(Duration::from_secs(10));
    w.mo(1, "stored");
    w.mo(2, "held");
    assert_eq!(
        w.bridge.poll_timeout(),
        Some(w.now + Duration::from_secs(10))
    );
    w.advance(Duration::from_secs(9));
    assert_eq!(w.smsc.0.lock().answers.len(), 1, "still held");
    w.advance(Duration::from_secs(1));
    assert_eq!(
        w.smsc.0.lock().answers.clone(),
        vec![
            (MoToken(1), MoAnswer::Accept),
            (MoToken(2), MoAnswer::RetryLater)
        ]
    );
    assert_eq!(w.bridge.stats().mo_deferred, 1);
    assert!(w.bridge.is_idle());
}

#[test]
fn on_a_journaled_link_an_mo_is_answered_only_once_its_record_is_durable() {
    let mut w = World::new(1, 8);
    w.bs = Endpoint::with_journal(w.bs.config().clone(), 0, w.now).unwrap();
    w.bs.connected(w.now, crate::link::Side::Dialer);
    w.im.connected(w.now, crate::link::Side::Listener);
    w.pump();
    w.mo(1, "hello");
    assert!(
        w.smsc.0.lock().answers.is_empty(),
        "answered before durable"
    );
    assert!(w.im_received().is_empty(), "sent before durable");
    let mut records = Vec::new();
    let mark = w.bs.take_records(&mut records).unwrap();
    assert!(records.iter().any(|r| matches!(
        r,
        crate::journal::Record::Accepted {
            dir: crate::journal::Direction::Tx,
            seq: 1,
            ..
        }
    )));
    assert_eq!(w.bs.records_durable(mark), 1..2);
    w.pump();
    assert_eq!(
        w.smsc.0.lock().answers,
        vec![(MoToken(1), MoAnswer::Accept)]
    );
    assert_eq!(w.im_received(), vec!["hello".to_owned()]);
}

#[test]
fn an_unattributable_mo_is_refused_counted_and_never_reaches_the_link() {
    let mut w = World::new(1, 8);
    w.smsc
        .0
        .lock()
        .events
        .push_back(SmscEvent::MoUnattributable {
            token: MoToken(5),
            side: crate::smsc::AddressSide::Originator,
            detail: "empty originator".into(),
        });
    w.pump();
    assert_eq!(
        w.smsc.0.lock().answers,
        vec![(
            MoToken(5),
            MoAnswer::Refuse(crate::smsc::AddressSide::Originator)
        )]
    );
    assert_eq!(w.bridge.stats().mo_unattributable, 1);
    assert!(matches!(
        w.bridge.poll_event(),
        Some(BridgeEvent::MoRefused { .. })
    ));
    assert!(w.im_received().is_empty());
}

#[test]
fn status_reports_of_all_parts_reach_the_im_side_as_one_report_with_the_client_ref() {
    let mut w = World::new(4, 8);
    let mut mt = Message::text("1000", "+4670", &"z".repeat(200)).unwrap();
    mt.client_ref = 77;
    let seq = w.im.send(&mt).unwrap();
    w.pump();
    let ids: Vec<SubmitId> = (1..=2)
        .map(|i| crate::smsc::part_submit_id(seq, i))
        .collect();
    // Part 2's report comes before the answer that names its id.
    let report = |id: &str, delivered: bool| SmscEvent::StatusReport {
        token: MoToken(9),
        report: crate::smsc::StatusReport {
            smsc_id: id.into(),
            recipient: "4670".into(),
            delivered,
            ..Default::default()
        },
    };
    w.smsc.0.lock().events.push_back(report("id-2", true));
    w.pump();
    for (id, smsc_id) in ids.iter().zip(["id-1", "id-2"]) {
        w.smsc.answer_submit(SmscEvent::Accepted {
            id: *id,
            smsc_id: Some(smsc_id.into()),
        });
    }
    w.pump();
    assert_eq!(w.outcomes(), vec![(seq, Outcome::Accepted)]);
    assert!(
        w.im.next_received().is_none(),
        "one part is not the message"
    );
    w.smsc.0.lock().events.push_back(report("id-1", true));
    w.smsc.0.lock().events.push_back(report("nobody", true));
    w.pump();
    let (_, got) = w.im.next_received().expect("the report");
    assert_eq!(got.client_ref, 77);
    assert_eq!((got.from.as_str(), got.to.as_str()), ("+4670", "1000"));
    assert_eq!(
        got.as_report(),
        Some(&crate::message::Report {
            state: crate::message::ReportState::Delivered,
            error: 0,
            parts: 2
        })
    );
    assert!(w.im.next_received().is_none(), "folded into one");
    // Every report was answered; the unknown one is counted once it has waited.
    assert_eq!(w.smsc.0.lock().answers.len(), 3);
    w.advance(Duration::from_secs(61));
    let s = w.bridge.stats();
    assert_eq!(
        (
            s.status_reports,
            s.reports_forwarded,
            s.reports_unknown,
            s.reports_awaited
        ),
        (3, 1, 1, 0)
    );
}

/// What the IM application receives as reports: (client_ref, state, parts).
fn im_reports(w: &mut World) -> Vec<(u64, crate::message::ReportState, u8)> {
    let mut out = Vec::new();
    while let Some((seq, m)) = w.im.next_received() {
        if let Some(r) = m.as_report() {
            out.push((m.client_ref, r.state, r.parts));
        }
        w.im.mark_processed(seq, Outcome::Accepted).unwrap();
    }
    w.pump();
    out
}

fn delivered(id: &str) -> SmscEvent {
    SmscEvent::StatusReport {
        token: MoToken(9),
        report: crate::smsc::StatusReport {
            smsc_id: id.into(),
            recipient: "4670".into(),
            delivered: true,
            ..Default::default()
        },
    }
}

#[test]
fn on_a_journaled_link_a_report_after_a_restart_is_matched_to_its_mt() {
    use crate::message::ReportState::Delivered;
    let journal_config = || JournalConfig {
        segment_size: 4096,
        max_disk_bytes: 1 << 20,
        ..JournalConfig::default()
    };
    let mut w = World::new(4, 8);
    let (journal, states, _) =
        Persistence::open(SimStorage::new(), journal_config(), &[("bs", 8)]).unwrap();
    assert!(states[0].is_none());
    w.journal = Some(journal);
    w.bs = Endpoint::with_journal(w.bs.config().clone(), 0, w.now).unwrap();
    w.bs.connected(w.now, crate::link::Side::Dialer);
    w.im.connected(w.now, crate::link::Side::Listener);
    w.pump();
    let accept = |w: &mut World, seq: u64, parts: u8, ids: &[&str]| {
        for (index, smsc_id) in (1..=parts).zip(ids) {
            let id = if parts == 1 {
                seq
            } else {
                crate::smsc::part_submit_id(seq, index)
            };
            w.smsc.answer_submit(SmscEvent::Accepted {
                id,
                smsc_id: Some((*smsc_id).into()),
            });
        }
        w.pump();
    };
    // A 2-part MT: part 1 is reported delivered before the restart, part 2 after.
    let mut long = Message::text("1000", "+4670", &"z".repeat(200)).unwrap();
    long.client_ref = 77;
    let seq = w.im.send(&long).unwrap();
    w.pump();
    accept(&mut w, seq, 2, &["id-1", "id-2"]);
    w.smsc.0.lock().events.push_back(delivered("id-1"));
    w.pump();
    assert!(im_reports(&mut w).is_empty(), "one part of two");
    // More MT, each reported at once, until the journal has released segments: the
    // long MT's group lives on in the copies at the head of each new segment.
    let mut n = 0;
    while w.released < 2 {
        n += 1;
        assert!(n < 500, "no segment released");
        let mut m = Message::text("1000", "+4670", "short").unwrap();
        m.client_ref = 1000 + n;
        let seq = w.im.send(&m).unwrap();
        w.pump();
        let smsc_id = format!("f-{n}");
        accept(&mut w, seq, 1, &[smsc_id.as_str()]);
        w.smsc.0.lock().events.push_back(delivered(&smsc_id));
        w.pump();
        assert_eq!(im_reports(&mut w), vec![(1000 + n, Delivered, 1)]);
    }

    // The buffer server stops; a new process opens the same journal.
    let storage = w.journal.take().unwrap().into_storage();
    let (journal, mut states, _) =
        Persistence::open(storage, journal_config(), &[("bs", 8)]).unwrap();
    let mut state = states[0].take().expect("the link is in the journal");
    let groups = std::mem::take(&mut state.reports);
    let kept: Vec<(u64, u8, u8, Vec<String>)> = groups
        .values()
        .map(|g| (g.client_ref, g.parts, g.delivered, g.keys.clone()))
        .collect();
    assert_eq!(
        kept,
        vec![(77, 2, 1, vec!["id-2".to_owned()])],
        "only the unfinished MT, awaiting its second part"
    );
    w.bs = Endpoint::restore(w.bs.config().clone(), 0, state, w.now).unwrap();
    w.journal = Some(journal);
    w.bridge = Bridge::new(Box::new(w.smsc.clone()), BridgeConfig::default());
    w.bridge.restore_reports(groups, w.now);
    w.im.connection_lost(w.now);
    w.bs.connected(w.now, crate::link::Side::Dialer);
    w.im.connected(w.now, crate::link::Side::Listener);
    w.bridge.smsc_connected(0, w.now);
    w.pump();
    w.smsc.0.lock().events.push_back(delivered("id-2"));
    w.pump();
    assert_eq!(im_reports(&mut w), vec![(77, Delivered, 2)]);
    w.advance(Duration::from_secs(61));
    let s = w.bridge.stats();
    assert_eq!((s.reports_unknown, s.reports_awaited), (0, 0));
    // Finished: a second restart keeps no group.
    let storage = w.journal.take().unwrap().into_storage();
    let (_, states, _) = Persistence::open(storage, journal_config(), &[("bs", 8)]).unwrap();
    assert!(states[0].as_ref().unwrap().reports.is_empty());
}
