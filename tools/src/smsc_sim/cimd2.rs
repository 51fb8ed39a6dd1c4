//! The simulator's CIMD2 side: [`ServerSession`] behind [`SimSession`].

use std::time::Instant;

use smslink::cimd2::session::{
    ServerConfig, ServerEvent, ServerSession, StatusReport, STATUS_DELIVERED,
};
use smslink::message::Message;

use super::session::{Answer, DeliveryId, Report, SimEvent, SimSession, SubmitId};
use super::SimConfig;

/// ETX, the last octet of every CIMD2 packet.
const ETX: u8 = 0x03;
const MAX_PACKET: usize = 4096;

pub(super) struct Cimd2Link {
    session: ServerSession,
    packets_in: u64,
    /// The status report in flight (stop-and-wait: one at most); the session's events
    /// about it do not name it.
    report: Option<DeliveryId>,
}

impl Cimd2Link {
    pub fn new(config: &SimConfig, now: Instant) -> Cimd2Link {
        Cimd2Link {
            session: ServerSession::new(
                ServerConfig {
                    user: config.user.clone(),
                    password: config.password.clone(),
                    response_timeout: config.response_timeout,
                    max_retries: config.max_retries,
                    checksum: true,
                    max_packet: MAX_PACKET,
                },
                now,
            ),
            packets_in: 0,
            report: None,
        }
    }

    /// The event in shared terms; `None` for one with nothing to report.
    fn translate(&mut self, event: ServerEvent) -> Option<SimEvent> {
        Some(match event {
            ServerEvent::LoggedIn { user } => SimEvent::LoggedIn {
                user,
                receives: true,
            },
            ServerEvent::LoginRejected { user } => SimEvent::LoginRejected { user },
            ServerEvent::Submit {
                message,
                number,
                status_report_request,
            } => SimEvent::Submit {
                id: SubmitId::from(number),
                message,
                wants_report: status_report_request != 0,
            },
            ServerEvent::DeliverAcked { client_ref } => SimEvent::Delivered { id: client_ref },
            ServerEvent::DeliverRejected { client_ref, .. } => SimEvent::Refused {
                id: client_ref,
                retry: false,
            },
            ServerEvent::DeliverFailed { client_ref, reason } => SimEvent::Failed {
                id: client_ref,
                reason: format!("{reason:?}"),
            },
            ServerEvent::StatusReportAcked => SimEvent::Delivered {
                id: self.report.take()?,
            },
            ServerEvent::StatusReportRejected { .. } => SimEvent::Refused {
                id: self.report.take()?,
                retry: false,
            },
            ServerEvent::StatusReportFailed { reason } => SimEvent::Failed {
                id: self.report.take()?,
                reason: format!("{reason:?}"),
            },
            ServerEvent::ProtocolViolation(v) => SimEvent::Violation(format!("{v:?}")),
            ServerEvent::Closed { reason } => SimEvent::Closed(format!("{reason:?}")),
        })
    }
}

impl SimSession for Cimd2Link {
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
        self.session.pending_submit().map(SubmitId::from) == Some(id)
    }

    fn answer(&mut self, _id: SubmitId, answer: &Answer<'_>, now: Instant) -> Result<(), String> {
        // Stop-and-wait: the pending submit is the one.
        let result = match answer {
            Answer::Accept(a) => self.session.accept_submit(a.destination, a.timestamp, now),
            Answer::Reject(code) => self.session.reject_submit(*code, now),
            Answer::Nack | Answer::Throttle => self.session.nack_submit(now),
        };
        result.map_err(|e| e.to_string())
    }

    fn deliver(&mut self, id: DeliveryId, message: &Message, now: Instant) -> Result<(), String> {
        let mut message = message.clone();
        message.client_ref = id;
        self.session
            .deliver(&message, now)
            .map_err(|e| e.to_string())
    }

    fn report(&mut self, id: DeliveryId, report: &Report, now: Instant) -> Result<(), String> {
        let status = StatusReport {
            destination: report.to.as_str().to_owned(),
            originator: None,
            sc_timestamp: report.timestamp.clone(),
            status: STATUS_DELIVERED,
            status_error: None,
            discharge_time: Some(report.timestamp.clone()),
        };
        self.session
            .status_report(&status, now)
            .map_err(|e| e.to_string())?;
        self.report = Some(id);
        Ok(())
    }

    fn packet_limit(&mut self, bytes: &[u8], limit: u64) -> Option<usize> {
        for (i, b) in bytes.iter().enumerate() {
            if *b == ETX {
                self.packets_in += 1;
                if self.packets_in >= limit {
                    return Some(i);
                }
            }
        }
        None
    }

    fn packets_in(&self) -> u64 {
        self.packets_in
    }
}
