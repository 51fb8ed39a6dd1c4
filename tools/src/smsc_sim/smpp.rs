//! The simulator's SMPP side: [`SmscSession`] behind [`SimSession`].

use std::collections::HashMap;
use std::time::Instant;

use smslink::message::Message;
use smslink::smpp::smsc_session::{BindKind, Receipt, SessionEvent, SmscConfig, SmscSession};
use smslink::smpp::{message_state, registered_delivery, CommandStatus, Password, SystemId};

use super::session::{Answer, DeliveryId, Report, SimEvent, SimSession, SubmitId};
use super::SimConfig;

/// Our system_id in bind responses.
const SMSC_SYSTEM_ID: &str = "smslink-sim";
/// Octets of a command_length field.
const LENGTH_OCTETS: usize = 4;
/// `YYMMDDhhmm`: the dates of a receipt's text.
const RECEIPT_DATE_LEN: usize = 10;

/// What an SMPP configuration must satisfy beyond the shared checks.
pub(super) fn validate(config: &SimConfig) -> Result<(), String> {
    SystemId::new(&config.user)
        .map_err(|e| format!("user (SMPP system_id) {:?}: {e}", config.user))?;
    Password::new(&config.password).map_err(|e| format!("password: {e}"))?;
    if config.window == 0 {
        return Err("window must be at least 1".into());
    }
    Ok(())
}

pub(super) struct SmppLink {
    session: SmscSession,
    frames: FrameCounter,
    /// Our deliver_sm in flight: sequence number -> the caller's id.
    in_flight: HashMap<u32, DeliveryId>,
}

impl SmppLink {
    pub fn new(config: &SimConfig, now: Instant) -> SmppLink {
        SmppLink {
            session: SmscSession::new(
                SmscConfig {
                    system_id: config.user.clone(),
                    password: config.password.clone(),
                    smsc_system_id: SystemId::new(SMSC_SYSTEM_ID).unwrap_or_default(),
                    response_timeout: config.response_timeout,
                    enquire_link_interval: config.enquire_link_interval,
                    window: config.window,
                    ..SmscConfig::default()
                },
                now,
            ),
            frames: FrameCounter::default(),
            in_flight: HashMap::new(),
        }
    }

    /// The event in shared terms; `None` for one with nothing to report.
    fn translate(&mut self, event: SessionEvent) -> Option<SimEvent> {
        Some(match event {
            SessionEvent::Bound {
                kind, system_id, ..
            } => SimEvent::LoggedIn {
                user: format!("{system_id} ({})", kind_name(kind)),
                receives: kind.receives(),
            },
            SessionEvent::BindRejected {
                kind,
                system_id,
                status,
            } => SimEvent::LoginRejected {
                user: format!("{system_id} ({}, {status:?})", kind_name(kind)),
            },
            SessionEvent::Submit {
                seq,
                message,
                registered_delivery,
            } => SimEvent::Submit {
                id: seq,
                message,
                // The simulator's receipts all say "delivered": only a request for
                // receipts on success and failure gets one.
                wants_report: registered_delivery & 0x03 == registered_delivery::RECEIPT_ALWAYS,
            },
            SessionEvent::DeliverAcked { seq, .. } => SimEvent::Delivered {
                id: self.in_flight.remove(&seq)?,
            },
            SessionEvent::DeliverRejected { seq, status, .. } => SimEvent::Refused {
                id: self.in_flight.remove(&seq)?,
                retry: status.class().is_retryable(),
            },
            SessionEvent::DeliverFailed { seq, reason, .. } => SimEvent::Failed {
                id: self.in_flight.remove(&seq)?,
                reason: format!("{reason:?}"),
            },
            SessionEvent::ProtocolViolation(v) => SimEvent::Violation(format!("{v:?}")),
            SessionEvent::Closed { reason } => SimEvent::Closed(format!("{reason:?}")),
        })
    }
}

fn kind_name(kind: BindKind) -> &'static str {
    match kind {
        BindKind::Transmitter => "transmitter",
        BindKind::Receiver => "receiver",
        BindKind::Transceiver => "transceiver",
    }
}

impl SimSession for SmppLink {
    fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.session.handle_input(bytes, now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
    }

    fn handle_connection_lost(&mut self, now: Instant) {
        self.session.handle_connection_lost(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.session.poll_timeout()
    }

    fn poll_transmit(&mut self, out: &mut Vec<u8>) {
        self.session.poll_transmit(out);
    }

    fn poll_event(&mut self) -> Option<SimEvent> {
        loop {
            let event = self.session.poll_event()?;
            if let Some(event) = self.translate(event) {
                return Some(event);
            }
        }
    }

    fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    fn can_deliver(&self) -> bool {
        self.session.can_deliver()
    }

    fn is_pending(&self, id: SubmitId) -> bool {
        self.session.is_pending(id)
    }

    fn answer(&mut self, id: SubmitId, answer: &Answer<'_>, now: Instant) -> Result<(), String> {
        let result = match answer {
            Answer::Accept(a) => self.session.accept_submit(id, a.message_id, now),
            Answer::Reject(status) => self.session.reject_submit(id, CommandStatus(*status), now),
            // Kannel, for one, requeues a message refused with a system error.
            Answer::Nack => self
                .session
                .nack_submit(id, CommandStatus::ESME_RSYSERR, now),
            Answer::Throttle => self
                .session
                .reject_submit(id, CommandStatus::ESME_RTHROTTLED, now),
        };
        result.map_err(|e| e.to_string())
    }

    fn deliver(&mut self, id: DeliveryId, message: &Message, now: Instant) -> Result<(), String> {
        let seq = self
            .session
            .deliver(message, now)
            .map_err(|e| e.to_string())?;
        self.in_flight.insert(seq, id);
        Ok(())
    }

    fn report(&mut self, id: DeliveryId, report: &Report, now: Instant) -> Result<(), String> {
        let date = report
            .timestamp
            .get(..RECEIPT_DATE_LEN)
            .unwrap_or(&report.timestamp)
            .to_owned();
        let receipt = Receipt {
            message_id: report.message_id.clone(),
            recipient: report.to,
            sender: report.from,
            state: message_state::DELIVERED,
            error: 0,
            submit_date: date.clone(),
            done_date: date,
            text: report.text.clone(),
        };
        let seq = self
            .session
            .receipt(&receipt, now)
            .map_err(|e| e.to_string())?;
        self.in_flight.insert(seq, id);
        Ok(())
    }

    fn packet_limit(&mut self, bytes: &[u8], limit: u64) -> Option<usize> {
        self.frames.limit(bytes, limit)
    }

    fn packets_in(&self) -> u64 {
        self.frames.count
    }
}

/// Counts PDUs in a byte stream by their command_length, however it is cut.
#[derive(Debug, Default)]
struct FrameCounter {
    length: [u8; LENGTH_OCTETS],
    /// Octets of the current PDU's command_length seen.
    have: usize,
    /// Octets of the current PDU still to come after its command_length.
    remaining: u64,
    count: u64,
}

impl FrameCounter {
    /// Count the PDUs `bytes` completes; when the `limit`-th completes, the offset of
    /// its last octet. A command_length below 4 counts as a PDU of 4 octets (the
    /// session reports the framing error).
    fn limit(&mut self, bytes: &[u8], limit: u64) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            if self.have < LENGTH_OCTETS {
                self.length[self.have] = bytes[i];
                self.have += 1;
                i += 1;
                if self.have == LENGTH_OCTETS {
                    let len = u32::from_be_bytes(self.length);
                    self.remaining = u64::from(len).saturating_sub(LENGTH_OCTETS as u64);
                }
            } else {
                let take = self.remaining.min((bytes.len() - i) as u64);
                self.remaining -= take;
                i += take as usize;
            }
            if self.have == LENGTH_OCTETS && self.remaining == 0 {
                self.have = 0;
                self.count += 1;
                if self.count >= limit {
                    return Some(i - 1);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdu(len: u32) -> Vec<u8> {
        let mut v = len.to_be_bytes().to_vec();
        v.resize(len as usize, 0xAA);
        v
    }

    #[test]
    fn frames_are_counted_however_the_stream_is_cut() {
        let stream: Vec<u8> = [pdu(16), pdu(40), pdu(17), pdu(300)].concat();
        for chunk in [1, 3, 4, 5, 16, 17, 100, stream.len()] {
            let mut counter = FrameCounter::default();
            let mut at = None;
            for (n, piece) in stream.chunks(chunk).enumerate() {
                if let Some(i) = counter.limit(piece, 3) {
                    at = Some(n * chunk + i);
                    break;
                }
            }
            assert_eq!(at, Some(16 + 40 + 17 - 1), "chunks of {chunk}");
            assert_eq!(counter.count, 3);
        }
        let mut counter = FrameCounter::default();
        assert_eq!(counter.limit(&stream, 99), None);
        assert_eq!(counter.count, 4);
    }
}
