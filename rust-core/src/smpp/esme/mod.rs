//! The SMPP 3.4 ESME session behind the protocol-neutral [`SmscClient`]: binds
//! (one transceiver, or a transmitter and a receiver on two connections), windowed
//! submits, throttling, receipts, MO, keep-alive, unbind. Sans-IO like every core:
//! bytes and `now` in, bytes, timers and events out.
//!
//! # Decisions
//! * **Sequence numbers** come from one counter per session (both connections of a
//!   pair), 1..=0x7FFFFFFF, wrapping to 1, skipping a number still awaiting its
//!   response. Responses are matched by sequence number in any order.
//! * **Throttling** (ESME_RTHROTTLED, ESME_RMSGQFUL, in submit_sm_resp or
//!   generic_nack) pauses every submit: `submit_room()` is 0 until the pause ends.
//!   The throttled message is reported `Rejected { permanence: Temporary }`, once:
//!   the bridge then holds it until its own back-off passes and submits it again
//!   once the pause is over; nothing is resubmitted by the session itself, so the
//!   message is neither lost nor doubled. The responses to submits sent before the
//!   pause began are part of the same burst and do not lengthen it; a throttling
//!   answer to a submit sent after it doubles the next pause.
//! * **A request left unanswered** past `response_timeout` breaks the session:
//!   unbind is sent on every bound connection, each outstanding submit is reported
//!   `Unanswered` (the bridge submits it again on the next session: at least once,
//!   as the SMSC may have taken it), then `Down`.
//! * **MO and receipts** are answered only when the bridge says so. A token names an
//!   entry of the session's table of unanswered deliveries (connection, sequence
//!   number, deliver_sm or data_sm); the table is emptied when the session ends and
//!   tokens are not reused for 2^32 deliveries, so an answer that comes after a
//!   reconnect finds nothing and is dropped.
//! * **Malformed PDUs** do not end the session: a request is answered with its
//!   `*_resp` (or generic_nack) carrying the error status; a broken response is
//!   taken for what its header says (so a submit_sm_resp with status 0 and a
//!   broken body still counts as accepted, without an id). Only a framing error
//!   (command_length outside 16..=max) ends it.

mod config;
#[cfg(test)]
mod tests;

pub use config::{BindMode, Numbering, SmppConfig, TonNpi};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::codec::DecodeError;
use super::codec::{encode, Decoder};
use super::convert::{message_from_sm, submit_sm_long};
use super::error::SmppError;
use super::pdu::{Body, CommandId, DataSm, Header, Pdu, SmeAddr, SubmitSm, SubmitSmResp};
use super::receipt::{is_delivered, is_failed, IdSource, Receipt};
use super::status::{CommandStatus, StatusClass};
use crate::message::Message;
use crate::sms::number::{attribute_mo, Ton};
use crate::smsc::{
    AddressSide, ConnIndex, LongMessages, MoAnswer, MoToken, Permanence, SmscClient, SmscEvent,
    StatusReport, SubmitError, SubmitId,
};

/// Largest sequence number; the next one is 1 again.
pub const MAX_SEQUENCE: u32 = 0x7FFF_FFFF;

/// What a connection binds as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Transceiver,
    Transmitter,
    Receiver,
}

impl Role {
    fn bind(self, bind: super::pdu::Bind) -> Body {
        match self {
            Role::Transceiver => Body::BindTransceiver(bind),
            Role::Transmitter => Body::BindTransmitter(bind),
            Role::Receiver => Body::BindReceiver(bind),
        }
    }

    fn bind_name(self) -> &'static str {
        match self {
            Role::Transceiver => "bind_transceiver",
            Role::Transmitter => "bind_transmitter",
            Role::Receiver => "bind_receiver",
        }
    }

    fn bind_resp(self) -> CommandId {
        match self {
            Role::Transceiver => CommandId::BindTransceiverResp,
            Role::Transmitter => CommandId::BindTransmitterResp,
            Role::Receiver => CommandId::BindReceiverResp,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    /// No TCP connection reported for this session yet.
    Idle,
    Binding,
    Bound,
    Unbinding,
    Unbound,
}

/// One TCP connection of the session.
#[derive(Debug)]
struct Conn {
    role: Role,
    state: ConnState,
    /// The driver reported it connected and has not reported it lost.
    tcp_up: bool,
    decoder: Decoder,
    out: Vec<u8>,
    /// Last PDU received or request sent: enquire_link counts its idle time from it.
    last_activity: Instant,
    enquiring: bool,
}

/// A request of ours awaiting its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Bind,
    Submit { id: SubmitId, sent_at: Instant },
    EnquireLink,
    Unbind,
}

impl Request {
    fn name(self) -> &'static str {
        match self {
            Request::Bind => "bind",
            Request::Submit { .. } => "submit_sm",
            Request::EnquireLink => "enquire_link",
            Request::Unbind => "unbind",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    conn: ConnIndex,
    request: Request,
    deadline: Instant,
}

/// Which response an unanswered delivery gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeliveryKind {
    DeliverSm,
    DataSm,
}

#[derive(Debug, Clone, Copy)]
struct PendingDelivery {
    conn: ConnIndex,
    sequence: u32,
    kind: DeliveryKind,
}

/// The pause of all submits after throttling.
#[derive(Debug, Clone, Copy)]
struct Throttle {
    /// Submits wait until then.
    until: Option<Instant>,
    /// When the latest pause began.
    began: Option<Instant>,
    /// Length of the next pause.
    next: Duration,
}

/// A response as far as the session needs it (also read from a broken PDU's header).
struct Response {
    command: CommandId,
    status: CommandStatus,
    sequence: u32,
    message_id: Option<String>,
}

/// An SMPP 3.4 ESME session toward one SMSC, across reconnections. See the module
/// docs for its behaviour.
pub struct SmppClient {
    config: SmppConfig,
    conns: Vec<Conn>,
    /// The session started (a connection was reported) and has not ended.
    open: bool,
    up: bool,
    logout_wanted: bool,
    next_sequence: u32,
    /// Our requests awaiting a response, by sequence number.
    pending: BTreeMap<u32, Pending>,
    /// The SMSC's deliveries awaiting the bridge's answer, by token.
    deliveries: HashMap<u32, PendingDelivery>,
    next_token: u32,
    throttle: Throttle,
    events: VecDeque<SmscEvent>,
}

impl std::fmt::Debug for SmppClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmppClient")
            .field("bind", &self.config.bind)
            .field("open", &self.open)
            .field("up", &self.up)
            .field("pending", &self.pending.len())
            .field("deliveries", &self.deliveries.len())
            .finish()
    }
}

impl SmppClient {
    pub fn new(config: SmppConfig) -> Self {
        let now = Instant::now();
        let roles: &[Role] = match config.bind {
            BindMode::Transceiver => &[Role::Transceiver],
            BindMode::TransmitterReceiver => &[Role::Transmitter, Role::Receiver],
        };
        let conns = roles
            .iter()
            .map(|&role| Conn {
                role,
                state: ConnState::Idle,
                tcp_up: false,
                decoder: Decoder::new(config.max_pdu),
                out: Vec::new(),
                last_activity: now,
                enquiring: false,
            })
            .collect();
        SmppClient {
            throttle: Throttle {
                until: None,
                began: None,
                next: config.throttle_pause,
            },
            config,
            conns,
            open: false,
            up: false,
            logout_wanted: false,
            next_sequence: 1,
            pending: BTreeMap::new(),
            deliveries: HashMap::new(),
            next_token: 0,
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &SmppConfig {
        &self.config
    }

    /// Every bind succeeded and the session has not ended.
    pub fn is_bound(&self) -> bool {
        self.up && self.open
    }

    /// submit_sm sent and not yet answered.
    pub fn outstanding_submits(&self) -> usize {
        self.pending
            .values()
            .filter(|p| matches!(p.request, Request::Submit { .. }))
            .count()
    }

    /// Submits are paused after throttling until this instant.
    pub fn throttled_until(&self) -> Option<Instant> {
        self.throttle.until
    }

    #[cfg(test)]
    fn set_next_sequence(&mut self, sequence: u32) {
        self.next_sequence = sequence;
    }

    // ---- the session's life ----

    /// A new session on fresh connections: everything of the last one is forgotten.
    fn start(&mut self) {
        for conn in &mut self.conns {
            conn.state = ConnState::Idle;
            conn.decoder = Decoder::new(self.config.max_pdu);
            conn.out.clear();
            conn.enquiring = false;
        }
        self.open = true;
        self.up = false;
        self.logout_wanted = false;
        self.next_sequence = 1;
        self.pending.clear();
        self.deliveries.clear();
        self.throttle = Throttle {
            until: None,
            began: None,
            next: self.config.throttle_pause,
        };
    }

    /// The session is over: optionally unbind the bound connections (without waiting
    /// for the answers), report every outstanding submit unanswered, then `Down`.
    fn end(&mut self, reason: String, unbind: bool) {
        if !self.open {
            return;
        }
        if unbind {
            for i in 0..self.conns.len() {
                if self.conns[i].state == ConnState::Bound {
                    let sequence = self.take_sequence();
                    self.send(i, Pdu::new(sequence, Body::Unbind));
                }
            }
        }
        for p in std::mem::take(&mut self.pending).into_values() {
            if let Request::Submit { id, .. } = p.request {
                self.events.push_back(SmscEvent::Unanswered { id });
            }
        }
        self.deliveries.clear();
        for conn in &mut self.conns {
            if conn.state != ConnState::Idle {
                conn.state = ConnState::Unbound;
            }
        }
        self.open = false;
        self.up = false;
        self.throttle.until = None;
        self.events.push_back(SmscEvent::Down { reason });
    }

    fn violation(&mut self, detail: String) {
        self.events.push_back(SmscEvent::Violation { detail });
    }

    // ---- output ----

    fn take_sequence(&mut self) -> u32 {
        loop {
            let sequence = self.next_sequence;
            self.next_sequence = if sequence >= MAX_SEQUENCE {
                1
            } else {
                sequence + 1
            };
            if !self.pending.contains_key(&sequence) {
                return sequence;
            }
        }
    }

    /// Queue `pdu` on connection `conn`. Our own PDUs always encode except a submit
    /// (checked by `request`); a failure is reported rather than ignored.
    fn send(&mut self, conn: ConnIndex, pdu: Pdu) {
        if let Err(e) = encode(&pdu, &mut self.conns[conn].out) {
            self.violation(format!("cannot encode {}: {e}", pdu.command_id().name()));
        }
    }

    /// Send a request and await its response.
    fn request(
        &mut self,
        conn: ConnIndex,
        body: Body,
        request: Request,
        now: Instant,
    ) -> Result<u32, SmppError> {
        let sequence = self.take_sequence();
        encode(&Pdu::new(sequence, body), &mut self.conns[conn].out)?;
        self.pending.insert(
            sequence,
            Pending {
                conn,
                request,
                deadline: now + self.config.response_timeout,
            },
        );
        self.conns[conn].last_activity = now;
        Ok(sequence)
    }

    fn new_token(&mut self, delivery: PendingDelivery) -> MoToken {
        loop {
            let token = self.next_token;
            self.next_token = self.next_token.wrapping_add(1);
            if let std::collections::hash_map::Entry::Vacant(slot) = self.deliveries.entry(token) {
                slot.insert(delivery);
                return MoToken(token);
            }
        }
    }

    /// Unbind once logout is wanted and no bind or submit awaits its answer; `Down`
    /// once every connection is unbound.
    fn progress_logout(&mut self, now: Instant) {
        if !self.open || !self.logout_wanted {
            return;
        }
        let busy = self
            .pending
            .values()
            .any(|p| matches!(p.request, Request::Bind | Request::Submit { .. }));
        if busy {
            return;
        }
        let mut unbinding = false;
        for i in 0..self.conns.len() {
            match self.conns[i].state {
                ConnState::Bound => {
                    if self.request(i, Body::Unbind, Request::Unbind, now).is_ok() {
                        self.conns[i].state = ConnState::Unbinding;
                        unbinding = true;
                    }
                }
                ConnState::Unbinding => unbinding = true,
                ConnState::Idle | ConnState::Binding | ConnState::Unbound => {}
            }
        }
        if !unbinding {
            self.end("logged out".into(), false);
        }
    }

    // ---- input ----

    fn on_pdu(&mut self, conn: ConnIndex, pdu: Pdu, now: Instant) {
        let sequence = pdu.sequence_number;
        let command = pdu.command_id();
        if command.is_response() {
            let message_id = match &pdu.body {
                Body::SubmitSmResp(SubmitSmResp { message_id, .. }) if !message_id.is_empty() => {
                    Some(message_id.to_string_lossy().into_owned())
                }
                _ => None,
            };
            let response = Response {
                command,
                status: pdu.command_status,
                sequence,
                message_id,
            };
            self.on_response(conn, response, now);
            return;
        }
        match pdu.body {
            Body::DeliverSm(sm) => self.on_delivery(conn, sequence, DeliveryKind::DeliverSm, sm),
            Body::DataSm(data) => match sm_of_data_sm(&data) {
                Ok(sm) => self.on_delivery(conn, sequence, DeliveryKind::DataSm, sm),
                Err(e) => self.refuse_delivery(conn, sequence, DeliveryKind::DataSm, e),
            },
            Body::EnquireLink => {
                self.send(conn, Pdu::new(sequence, Body::EnquireLinkResp));
            }
            Body::Unbind => {
                self.send(conn, Pdu::new(sequence, Body::UnbindResp));
                self.conns[conn].state = ConnState::Unbound;
                self.end("the SMSC unbound".into(), true);
            }
            // No response exists, and an ESME has nothing to do with it.
            Body::AlertNotification(_) => {}
            Body::Outbind(_) => {
                self.violation("outbind on a connection the ESME opened".into());
            }
            // bind_*, submit_sm, query_sm, cancel_sm, replace_sm: an SMSC's commands.
            body => {
                let name = body.command_id().name();
                if let Some(resp) = body.command_id().response() {
                    self.send(
                        conn,
                        Pdu::response(sequence, CommandStatus::ESME_RINVCMDID, Body::empty(resp)),
                    );
                }
                self.violation(format!("{name} (sequence {sequence}) sent to an ESME"));
            }
        }
    }

    /// A PDU whose body did not decode: answer a request with its error, take a
    /// response for what its header says.
    fn on_broken(&mut self, conn: ConnIndex, header: Header, error: DecodeError, now: Instant) {
        self.violation(error.to_string());
        match header.command().filter(|c| c.is_response()) {
            Some(command) => {
                let response = Response {
                    command,
                    status: header.command_status,
                    sequence: header.sequence_number,
                    message_id: None,
                };
                self.on_response(conn, response, now);
            }
            None => {
                if let Some(reply) = error.reply() {
                    self.send(conn, reply);
                }
            }
        }
    }

    fn on_response(&mut self, conn: ConnIndex, r: Response, now: Instant) {
        let Some(&p) = self.pending.get(&r.sequence) else {
            self.violation(format!(
                "{} (sequence {}) answers no request",
                r.command.name(),
                r.sequence
            ));
            return;
        };
        let expected = match p.request {
            Request::Bind => self.conns[p.conn].role.bind_resp(),
            Request::Submit { .. } => CommandId::SubmitSmResp,
            Request::EnquireLink => CommandId::EnquireLinkResp,
            Request::Unbind => CommandId::UnbindResp,
        };
        if p.conn != conn || (r.command != expected && r.command != CommandId::GenericNack) {
            self.violation(format!(
                "{} (sequence {}) on connection {conn} does not answer {} on connection {}",
                r.command.name(),
                r.sequence,
                p.request.name(),
                p.conn
            ));
            return;
        }
        self.pending.remove(&r.sequence);
        match p.request {
            Request::Bind => self.on_bind_resp(conn, r.command, r.status),
            Request::Submit { id, sent_at } => self.on_submit_resp(id, sent_at, r, now),
            Request::EnquireLink => self.conns[conn].enquiring = false,
            Request::Unbind => {
                self.conns[conn].state = ConnState::Unbound;
            }
        }
        self.progress_logout(now);
    }

    fn on_bind_resp(&mut self, conn: ConnIndex, command: CommandId, status: CommandStatus) {
        if status.is_ok() && command != CommandId::GenericNack {
            self.conns[conn].state = ConnState::Bound;
            let all_bound = self.conns.iter().all(|c| c.state == ConnState::Bound);
            if all_bound && !self.up {
                self.up = true;
                self.events.push_back(SmscEvent::Up);
            }
            return;
        }
        let role = self.conns[conn].role;
        self.conns[conn].state = ConnState::Unbound;
        self.end(bind_refusal(role, command, status), true);
    }

    fn on_submit_resp(&mut self, id: SubmitId, sent_at: Instant, r: Response, now: Instant) {
        let status = r.status;
        let class = match status.class() {
            // generic_nack with status 0 makes no sense: the submit was not taken.
            StatusClass::Ok if r.command == CommandId::GenericNack => StatusClass::Temporary,
            class => class,
        };
        let permanence = match class {
            StatusClass::Ok => {
                self.throttle_lifted_by(sent_at);
                let format = self.config.submit_id_format;
                self.events.push_back(SmscEvent::Accepted {
                    id,
                    smsc_id: r.message_id.map(|m| format.normalise(&m)),
                });
                return;
            }
            StatusClass::Throttled => {
                self.throttled(sent_at, now);
                Permanence::Temporary
            }
            StatusClass::Temporary => Permanence::Temporary,
            StatusClass::Permanent => Permanence::Permanent,
        };
        self.events.push_back(SmscEvent::Rejected {
            id,
            code: status.0,
            permanence,
            text: Some(status.to_string()),
        });
    }

    /// Pause every submit, unless this answers a submit sent before the present
    /// pause began (the same burst of refusals).
    fn throttled(&mut self, sent_at: Instant, now: Instant) {
        if self.throttle.began.is_some_and(|began| sent_at <= began) {
            return;
        }
        let pause = self.throttle.next;
        self.throttle.began = Some(now);
        self.throttle.until = Some(now + pause);
        self.throttle.next = pause
            .saturating_mul(2)
            .min(self.config.throttle_pause_max)
            .max(self.config.throttle_pause);
    }

    /// A submit sent since the last pause got through: the next pause is short again.
    fn throttle_lifted_by(&mut self, sent_at: Instant) {
        if self.throttle.began.is_none_or(|began| sent_at > began) {
            self.throttle.next = self.config.throttle_pause;
        }
    }

    fn on_delivery(&mut self, conn: ConnIndex, sequence: u32, kind: DeliveryKind, sm: SubmitSm) {
        let delivery = PendingDelivery {
            conn,
            sequence,
            kind,
        };
        if sm.is_delivery_receipt() {
            let report = self.status_report(&sm, sequence);
            let token = self.new_token(delivery);
            self.events
                .push_back(SmscEvent::StatusReport { token, report });
            return;
        }
        match message_from_sm(&sm, &self.config.text) {
            Ok(mut message) => {
                let token = self.new_token(delivery);
                let from = sm.source.addr.to_string_lossy();
                let to = sm.destination.addr.to_string_lossy();
                let attributed = attribute_mo(
                    &mut message,
                    (&from, Ton::from_smpp(sm.source.ton)),
                    (&to, Ton::from_smpp(sm.destination.ton)),
                    &self.config.numbers,
                );
                self.events.push_back(match attributed {
                    Ok(()) => SmscEvent::Mo {
                        token,
                        message: Box::new(message),
                    },
                    Err((side, e)) => SmscEvent::MoUnattributable {
                        token,
                        side,
                        detail: format!("deliver_sm from {from:?} to {to:?}: {e}"),
                    },
                });
            }
            Err(e) => self.refuse_delivery(conn, sequence, kind, e),
        }
    }

    /// A delivery that can never become a `Message` (bad address, bad text): refused
    /// for good, so that the SMSC does not offer it again and again.
    fn refuse_delivery(
        &mut self,
        conn: ConnIndex,
        sequence: u32,
        kind: DeliveryKind,
        error: SmppError,
    ) {
        self.violation(format!(
            "{} (sequence {sequence}) refused: {error}",
            kind.name()
        ));
        self.send(
            conn,
            Pdu::response(sequence, CommandStatus::ESME_RX_P_APPN, kind.empty_resp()),
        );
    }

    fn status_report(&mut self, sm: &SubmitSm, sequence: u32) -> StatusReport {
        let receipt = Receipt::from_sm(sm, &self.config.text);
        let smsc_id = match &receipt.id {
            Some((id, IdSource::Tlv)) => self.config.submit_id_format.normalise(id),
            Some((id, IdSource::Text)) => self.config.receipt_id_format.normalise(id),
            None => {
                // Still reported (and so answered), or the SMSC offers it forever.
                self.violation(format!(
                    "delivery receipt (sequence {sequence}) names no message id"
                ));
                String::new()
            }
        };
        let state = receipt.state.unwrap_or(0);
        StatusReport {
            smsc_id,
            recipient: super::convert::address(&sm.source)
                .map(|a| a.as_str().to_owned())
                .unwrap_or_else(|_| sm.source.addr.to_string_lossy().into_owned()),
            delivered: is_delivered(state),
            failed: is_failed(state),
            expired: state == crate::smpp::pdu::message_state::EXPIRED,
            status: u32::from(state),
            error: receipt.error,
        }
    }
}

impl DeliveryKind {
    fn name(self) -> &'static str {
        match self {
            DeliveryKind::DeliverSm => "deliver_sm",
            DeliveryKind::DataSm => "data_sm",
        }
    }

    fn empty_resp(self) -> Body {
        match self {
            DeliveryKind::DeliverSm => Body::DeliverSmResp(SubmitSmResp::default()),
            DeliveryKind::DataSm => Body::DataSmResp(SubmitSmResp::default()),
        }
    }
}

/// data_sm carries the fields of deliver_sm that matter here, with its user data in
/// message_payload: read it as that deliver_sm.
fn sm_of_data_sm(data: &DataSm) -> Result<SubmitSm, SmppError> {
    let narrow = |a: &SmeAddr<65>| SmeAddr::<21>::new(a.ton, a.npi, a.addr.as_bytes());
    Ok(SubmitSm {
        service_type: data.service_type,
        source: narrow(&data.source)?,
        destination: narrow(&data.destination)?,
        esm_class: data.esm_class,
        registered_delivery: data.registered_delivery,
        data_coding: data.data_coding,
        tlvs: data.tlvs.clone(),
        ..SubmitSm::default()
    })
}

/// `Down`'s reason for a refused bind, saying what to check where SMPP tells.
fn bind_refusal(role: Role, command: CommandId, status: CommandStatus) -> String {
    let hint = match status {
        CommandStatus::ESME_RINVPASWD => ": the password is wrong",
        CommandStatus::ESME_RINVSYSID => ": the SMSC does not know this system_id",
        CommandStatus::ESME_RINVSYSTYP => ": the SMSC does not accept this system_type",
        CommandStatus::ESME_RALYBND => {
            ": the SMSC still holds an earlier bind of this system_id; \
             binding again after the reconnect back-off"
        }
        _ => "",
    };
    let via = match command {
        CommandId::GenericNack => " (generic_nack)",
        _ => "",
    };
    format!("{} refused{via}: {status}{hint}", role.bind_name())
}

/// The status a submit that cannot be encoded is reported with: the field's own
/// status where there is one, else "submit_sm failed" (never a temporary status:
/// the message will not encode later either).
fn unencodable_status(e: &SmppError) -> CommandStatus {
    match e.status() {
        s if s.class() == StatusClass::Permanent => s,
        _ => CommandStatus::ESME_RSUBMITFAIL,
    }
}

impl SmscClient for SmppClient {
    fn protocol(&self) -> &'static str {
        "smpp"
    }

    fn connection_count(&self) -> usize {
        self.conns.len()
    }

    fn mo_hold_limit(&self) -> Option<std::time::Duration> {
        Some(self.config.mo_hold_limit)
    }

    fn connected(&mut self, conn: ConnIndex, now: Instant) {
        if conn >= self.conns.len() || self.conns[conn].tcp_up {
            return;
        }
        // A connection of the ended session is still up: the driver closes them all
        // first; this one joins no session.
        let leftovers = self.conns.iter().any(|c| c.tcp_up);
        self.conns[conn].tcp_up = true;
        if !self.open {
            if leftovers {
                return;
            }
            self.start();
        }
        let bind = match self.config.bind_body() {
            Ok(bind) => bind,
            Err(reason) => {
                self.end(reason, false);
                return;
            }
        };
        let c = &mut self.conns[conn];
        c.state = ConnState::Binding;
        c.last_activity = now;
        let body = c.role.bind(bind);
        if let Err(e) = self.request(conn, body, Request::Bind, now) {
            self.end(format!("cannot encode the bind: {e}"), false);
        }
    }

    fn connection_lost(&mut self, conn: ConnIndex, _now: Instant) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.tcp_up = false;
        c.out.clear();
        if c.state != ConnState::Idle {
            self.end(format!("connection {conn} to the SMSC lost"), false);
        }
    }

    fn handle_input(&mut self, conn: ConnIndex, bytes: &[u8], now: Instant) {
        if !self.open
            || self
                .conns
                .get(conn)
                .is_none_or(|c| c.state == ConnState::Idle)
        {
            return;
        }
        self.conns[conn].decoder.push(bytes);
        while self.open {
            let Some(item) = self.conns[conn].decoder.poll() else {
                break;
            };
            self.conns[conn].last_activity = now;
            match item {
                Ok(pdu) => self.on_pdu(conn, pdu, now),
                Err(DecodeError::Body { header, error }) => {
                    self.on_broken(conn, header, DecodeError::Body { header, error }, now)
                }
                Err(e @ DecodeError::Framing(_)) => {
                    self.violation(e.to_string());
                    self.end(format!("connection {conn}: {e}"), false);
                }
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if !self.open {
            return;
        }
        if let Some((&sequence, p)) = self.pending.iter().find(|(_, p)| p.deadline <= now) {
            let reason = format!(
                "no answer to {} (sequence {sequence}) on connection {} within {:?}",
                p.request.name(),
                p.conn,
                self.config.response_timeout
            );
            // An unanswered unbind ends the logout; anything else breaks the session.
            let unbind = p.request != Request::Unbind;
            self.end(reason, unbind);
            return;
        }
        if self.throttle.until.is_some_and(|t| t <= now) {
            self.throttle.until = None;
        }
        let interval = self.config.enquire_link_interval;
        if interval.is_zero() {
            return;
        }
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            let idle = c.state == ConnState::Bound && c.last_activity + interval <= now;
            if idle && !c.enquiring {
                let sent = self.request(i, Body::EnquireLink, Request::EnquireLink, now);
                self.conns[i].enquiring = sent.is_ok();
            }
        }
    }

    fn long_messages(&self) -> LongMessages {
        self.config.long_messages
    }

    fn requests_reports(&self) -> bool {
        // Bits 0-1: a receipt on success and failure (1) or on failure only (2).
        self.config.registered_delivery & 0x03 != 0
    }

    fn submit_room(&self) -> usize {
        let transmitter_bound = self.conns[0].state == ConnState::Bound;
        if !self.is_bound()
            || !transmitter_bound
            || self.logout_wanted
            || self.throttle.until.is_some()
        {
            return 0;
        }
        self.config
            .window
            .saturating_sub(self.outstanding_submits())
    }

    fn submit(&mut self, id: SubmitId, message: &Message, now: Instant) -> Result<(), SubmitError> {
        if self.submit_room() == 0 {
            return Err(SubmitError::NoRoom);
        }
        let unencodable = |e: SmppError| SubmitError::Unencodable {
            reason: e.to_string(),
            code: unencodable_status(&e).0,
        };
        let mut sm = submit_sm_long(message, &self.config.text, self.config.long_messages)
            .map_err(unencodable)?;
        self.config.source_numbering.apply(&mut sm.source);
        self.config.destination_numbering.apply(&mut sm.destination);
        sm.registered_delivery = self.config.registered_delivery;
        let request = Request::Submit { id, sent_at: now };
        // Connection 0 is the transceiver or the transmitter.
        self.request(0, Body::SubmitSm(sm), request, now)
            .map(|_| ())
            .map_err(unencodable)
    }

    fn answer(&mut self, token: MoToken, answer: MoAnswer, _now: Instant) {
        let Some(d) = self.deliveries.remove(&token.0) else {
            return;
        };
        if !self.open {
            return;
        }
        let status = match answer {
            MoAnswer::Accept => CommandStatus::ESME_ROK,
            MoAnswer::RetryLater => CommandStatus::ESME_RX_T_APPN,
            MoAnswer::Refuse(AddressSide::Originator) => CommandStatus::ESME_RINVSRCADR,
            MoAnswer::Refuse(AddressSide::Destination) => CommandStatus::ESME_RINVDSTADR,
        };
        self.send(
            d.conn,
            Pdu::response(d.sequence, status, d.kind.empty_resp()),
        );
    }

    fn logout(&mut self, now: Instant) {
        if !self.open {
            return;
        }
        self.logout_wanted = true;
        self.progress_logout(now);
    }

    fn poll_transmit(&mut self, conn: ConnIndex, buf: &mut Vec<u8>) -> usize {
        let Some(c) = self.conns.get_mut(conn) else {
            return 0;
        };
        let n = c.out.len();
        buf.append(&mut c.out);
        n
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if !self.open {
            return None;
        }
        let responses = self.pending.values().map(|p| p.deadline);
        let interval = self.config.enquire_link_interval;
        let enquires = self
            .conns
            .iter()
            .filter(|c| c.state == ConnState::Bound && !c.enquiring && !interval.is_zero())
            .map(|c| c.last_activity + interval);
        responses.chain(enquires).chain(self.throttle.until).min()
    }

    fn poll_event(&mut self) -> Option<SmscEvent> {
        self.events.pop_front()
    }

    fn is_open(&self) -> bool {
        self.open
    }
}
