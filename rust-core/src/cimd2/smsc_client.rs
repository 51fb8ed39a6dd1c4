//! CIMD2 behind the protocol-neutral [`SmscClient`]: one [`ClientSession`] per TCP
//! connection, its events translated into [`SmscEvent`]s.

use std::time::Instant;

use super::codes;
use super::session::{ClientConfig, ClientEvent, ClientSession, SessionError, StatusReport};
use crate::message::{Address, Message};
use crate::sms::number::{attribute_mo, to_smsc, Ton};
use crate::smsc::{
    self, AddressSide, ConnIndex, MoAnswer, MoToken, SmscClient, SmscEvent, SubmitError, SubmitId,
};

/// The CIMD2 status code (061) that means "delivered".
const DELIVERED: u32 = 4;
/// The CIMD2 status code (061) that means "validity period expired".
const EXPIRED: u32 = 2;
/// Status codes the SMSC reports once it has given up on a message.
const FAILED: [u32; 6] = [2, 3, 6, 7, 8, 9];

/// A CIMD2 client toward one SMSC, across reconnections.
pub struct Cimd2Client {
    config: ClientConfig,
    session: Option<ClientSession>,
    /// Counts connections, so that an answer meant for a deliver of an earlier
    /// connection never answers a newer deliver with the same packet number.
    generation: u32,
    /// The login was refused with this text; `Down` says so.
    login_refused: Option<String>,
}

impl Cimd2Client {
    pub fn new(config: ClientConfig) -> Self {
        Cimd2Client {
            config,
            session: None,
            generation: 0,
            login_refused: None,
        }
    }

    fn token(&self, number: u8) -> MoToken {
        MoToken((self.generation << 8) | u32::from(number))
    }

    fn translate(&mut self, event: ClientEvent) -> Option<SmscEvent> {
        Some(match event {
            ClientEvent::LoggedIn => SmscEvent::Up,
            ClientEvent::LoginFailed { code, text } => {
                self.login_refused = Some(format!(
                    "login refused: error {code} {}",
                    text.or_else(|| codes::error_text(code).map(str::to_owned))
                        .unwrap_or_default()
                ));
                return None;
            }
            ClientEvent::SubmitAccepted { id, timestamp, .. } => SmscEvent::Accepted {
                id,
                smsc_id: timestamp,
            },
            ClientEvent::SubmitRejected { id, code, text } => SmscEvent::Rejected {
                id,
                code,
                permanence: codes::permanence(code),
                text,
            },
            ClientEvent::SubmitFailed { id, .. } => SmscEvent::Unanswered { id },
            ClientEvent::Deliver(mut message) => {
                let token = self.pending_token()?;
                let (from, to) = (message.from, message.to);
                let attributed = attribute_mo(
                    &mut message,
                    (from.as_str(), Ton::Unknown),
                    (to.as_str(), Ton::Unknown),
                    &self.config.numbers,
                );
                match attributed {
                    Ok(()) => SmscEvent::Mo { token, message },
                    Err((side, e)) => SmscEvent::MoUnattributable {
                        token,
                        side,
                        detail: format!("deliver from {from:?} to {to:?}: {e}"),
                    },
                }
            }
            ClientEvent::StatusReport(report) => SmscEvent::StatusReport {
                token: self.pending_token()?,
                report: neutral_report(report),
            },
            ClientEvent::ProtocolViolation(v) => SmscEvent::Violation {
                detail: format!("{v:?}"),
            },
            ClientEvent::Closed { reason } => SmscEvent::Down {
                reason: self
                    .login_refused
                    .take()
                    .unwrap_or_else(|| format!("{reason:?}")),
            },
        })
    }

    fn pending_token(&self) -> Option<MoToken> {
        let number = self.session.as_ref()?.pending_deliver()?;
        Some(self.token(number))
    }
}

fn neutral_report(r: StatusReport) -> smsc::StatusReport {
    smsc::StatusReport {
        smsc_id: r.sc_timestamp,
        recipient: r.destination,
        delivered: r.status == DELIVERED,
        failed: FAILED.contains(&r.status),
        expired: r.status == EXPIRED,
        status: r.status,
        error: r.status_error,
    }
}

impl SmscClient for Cimd2Client {
    fn protocol(&self) -> &'static str {
        "cimd2"
    }

    fn connected(&mut self, _conn: ConnIndex, now: Instant) {
        self.generation = self.generation.wrapping_add(1) & 0x00ff_ffff;
        self.login_refused = None;
        self.session = Some(ClientSession::new(self.config.clone(), now));
    }

    fn connection_lost(&mut self, _conn: ConnIndex, now: Instant) {
        if let Some(session) = self.session.as_mut() {
            session.handle_connection_lost(now);
        }
    }

    fn handle_input(&mut self, _conn: ConnIndex, bytes: &[u8], now: Instant) {
        if let Some(session) = self.session.as_mut() {
            session.handle_input(bytes, now);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some(session) = self.session.as_mut() {
            session.handle_timeout(now);
        }
    }

    fn report_id_needs_recipient(&self) -> bool {
        true
    }

    fn requests_reports(&self) -> bool {
        self.config.status_report_request != 0
    }

    fn submit_room(&self) -> usize {
        usize::from(self.session.as_ref().is_some_and(|s| s.can_submit()))
    }

    fn submit(&mut self, id: SubmitId, message: &Message, now: Instant) -> Result<(), SubmitError> {
        let session = self.session.as_mut().ok_or(SubmitError::NoRoom)?;
        let written = to_smsc(&message.to, &self.config.numbers);
        let rewritten;
        let message = if written == message.to.as_str() {
            message
        } else {
            let mut m = message.clone();
            // Only ever shorter (a `+` dropped): it fits.
            m.to = Address::new(written).unwrap_or(message.to);
            rewritten = m;
            &rewritten
        };
        session.submit(id, message, now).map_err(|e| match e {
            SessionError::Encode(reason) => SubmitError::Unencodable {
                reason,
                code: codes::ERR_PARAMETER_FORMATTING,
            },
            _ => SubmitError::NoRoom,
        })
    }

    fn answer(&mut self, token: MoToken, answer: MoAnswer, now: Instant) {
        let Some(number) = self.session.as_ref().and_then(|s| s.pending_deliver()) else {
            return;
        };
        if self.token(number) != token {
            return;
        }
        if let Some(session) = self.session.as_mut() {
            let _ = match answer {
                MoAnswer::Accept => session.ack_deliver(now),
                // CIMD2 has no "later": a negative answer makes the SMSC retry.
                MoAnswer::RetryLater => session.reject_deliver(codes::TEMPORARY_REFUSAL, now),
                MoAnswer::Refuse(AddressSide::Originator) => {
                    session.reject_deliver(codes::ERR_ORIGINATOR, now)
                }
                MoAnswer::Refuse(AddressSide::Destination) => {
                    session.reject_deliver(codes::ERR_DESTINATION, now)
                }
            };
        }
    }

    fn logout(&mut self, now: Instant) {
        if let Some(session) = self.session.as_mut() {
            // Closed already: nothing to say. Otherwise logout follows any answer
            // still awaited (CIMD2 allows one request at a time).
            let _ = session.logout(now);
        }
    }

    fn poll_transmit(&mut self, _conn: ConnIndex, buf: &mut Vec<u8>) -> usize {
        self.session.as_mut().map_or(0, |s| s.poll_transmit(buf))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.session.as_ref().and_then(|s| s.poll_timeout())
    }

    fn poll_event(&mut self) -> Option<SmscEvent> {
        loop {
            let event = self.session.as_mut()?.poll_event()?;
            if let Some(e) = self.translate(event) {
                return Some(e);
            }
        }
    }

    fn is_open(&self) -> bool {
        self.session.as_ref().is_some_and(|s| !s.is_closed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cimd2::{encode, param, parse_frame, Operation, Packet};
    use crate::sms::number::NumberConfig;

    fn logged_in(numbers: NumberConfig, now: Instant) -> Cimd2Client {
        let mut c = Cimd2Client::new(ClientConfig {
            numbers,
            ..ClientConfig::default()
        });
        c.connected(0, now);
        let mut out = Vec::new();
        c.poll_transmit(0, &mut out);
        let mut wire = Vec::new();
        encode(&Packet::new(Operation::LoginResponse, 1), true, &mut wire);
        c.handle_input(0, &wire, now);
        assert_eq!(c.poll_event(), Some(SmscEvent::Up));
        c
    }

    fn deliver(c: &mut Cimd2Client, number: u8, from: &str, to: &str, now: Instant) -> SmscEvent {
        let mut wire = Vec::new();
        let p = Packet::new(Operation::DeliverMessage, number)
            .with(param::DESTINATION_ADDRESS, to)
            .with(param::ORIGINATING_ADDRESS, from)
            .with(param::USER_DATA, "hi");
        encode(&p, true, &mut wire);
        c.handle_input(0, &wire, now);
        c.poll_event().expect("an event for the deliver")
    }

    fn answer(c: &mut Cimd2Client) -> Packet {
        let mut out = Vec::new();
        c.poll_transmit(0, &mut out);
        parse_frame(&out, true).unwrap()
    }

    #[test]
    fn mo_numbers_are_normalised_and_unattributable_ones_refused_with_306_or_300() {
        let now = Instant::now();
        let numbers = NumberConfig {
            country_code: Some("46".into()),
            ..NumberConfig::default()
        };
        let mut c = logged_in(numbers, now);
        for (n, from) in [(0u8, "4670000001"), (2, "+4670000001"), (4, "070000001")] {
            let SmscEvent::Mo { token, message } = deliver(&mut c, n, from, "1000", now) else {
                panic!("not an MO")
            };
            assert_eq!(message.from.as_str(), "+4670000001", "{from}");
            assert_eq!(message.to.as_str(), "1000");
            c.answer(token, MoAnswer::Accept, now);
            assert_eq!(answer(&mut c).op, Operation::DeliverMessageResponse);
        }
        let mut c = logged_in(NumberConfig::default(), now);
        for (n, from, to, side, code) in [
            (6, "", "1000", AddressSide::Originator, "306"),
            (8, "4670000001", "+46+7", AddressSide::Destination, "300"),
        ] {
            let event = deliver(&mut c, n, from, to, now);
            let SmscEvent::MoUnattributable { token, side: s, .. } = event else {
                panic!("not refused: {event:?}")
            };
            assert_eq!(s, side);
            c.answer(token, MoAnswer::Refuse(s), now);
            let p = answer(&mut c);
            assert_eq!(p.get(param::ERROR_CODE), Some(code.as_bytes()));
        }
    }

    #[test]
    fn mt_recipients_go_without_plus_when_the_smsc_wants_that() {
        let now = Instant::now();
        let numbers = NumberConfig {
            mt_international: crate::sms::number::InternationalForm::Bare,
            ..NumberConfig::default()
        };
        let mut c = logged_in(numbers, now);
        let m = Message::text("12345", "+46700000001", "hi").unwrap();
        c.submit(3, &m, now).unwrap();
        let p = answer(&mut c);
        assert_eq!(p.get(param::DESTINATION_ADDRESS), Some(&b"46700000001"[..]));
    }
}
