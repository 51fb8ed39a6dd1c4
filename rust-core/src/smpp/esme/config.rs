//! Settings of an [`SmppClient`](super::SmppClient).

use std::time::Duration;

use crate::smpp::codec::DEFAULT_MAX_PDU;
use crate::smpp::coding::TextConfig;
use crate::smpp::pdu::{npi, registered_delivery, ton, Bind, SmeAddr, INTERFACE_VERSION_34};
use crate::smpp::receipt::IdFormat;
use crate::sms::concat::LongMessages;
use crate::sms::number::NumberConfig;

/// How the session binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BindMode {
    /// One connection with bind_transceiver: submits and deliveries share it.
    #[default]
    Transceiver,
    /// Two connections: bind_transmitter on connection 0 (submits) and
    /// bind_receiver on connection 1 (deliveries), for SMSCs without transceiver
    /// binds. The pair is one session: up once both are bound, down when either ends.
    TransmitterReceiver,
}

impl BindMode {
    /// TCP connections the mode uses.
    pub fn connection_count(self) -> usize {
        match self {
            BindMode::Transceiver => 1,
            BindMode::TransmitterReceiver => 2,
        }
    }
}

/// A type of number and numbering plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TonNpi {
    pub ton: u8,
    pub npi: u8,
}

impl TonNpi {
    pub const fn new(ton: u8, npi: u8) -> TonNpi {
        TonNpi { ton, npi }
    }

    /// A pair SMPP 3.4 defines (5.2.5, 5.2.6), for settings from a binding: a GSM
    /// type-of-address octet (0x91, 0x81) given by mistake is caught here rather than
    /// sent to an SMSC that refuses every submit. The error names what is wrong.
    pub fn defined(ton_value: i64, npi_value: i64) -> Result<TonNpi, String> {
        let Some(t) = u8::try_from(ton_value)
            .ok()
            .filter(|t| *t <= ton::ABBREVIATED)
        else {
            return Err(format!(
                "ton {ton_value} is not an SMPP 3.4 type of number (0..=6): e.g. 0 unknown, \
                 1 international, 2 national"
            ));
        };
        let Some(n) = u8::try_from(npi_value)
            .ok()
            .filter(|n| DEFINED_NPI.contains(n))
        else {
            return Err(format!(
                "npi {npi_value} is not an SMPP 3.4 numbering plan {DEFINED_NPI:?} \
                 (e.g. 1 ISDN/E.164)"
            ));
        };
        Ok(TonNpi::new(t, n))
    }
}

/// The numbering plans SMPP 3.4 defines (5.2.6); the others are reserved.
const DEFINED_NPI: [u8; 10] = [
    npi::UNKNOWN,
    npi::ISDN,
    npi::DATA,
    npi::TELEX,
    npi::LAND_MOBILE,
    npi::NATIONAL,
    npi::PRIVATE,
    npi::ERMES,
    npi::INTERNET,
    npi::WAP_CLIENT_ID,
];

/// The TON/NPI sent for each form of address `smpp::sme_addr` tells apart. The
/// defaults are that function's own; an SMSC that wants, say, national numbers as
/// TON 2 gets `numeric: TonNpi::new(ton::NATIONAL, npi::ISDN)`. An empty address is
/// always sent as 0/0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Numbering {
    /// `+` and digits (sent without the `+`).
    pub international: TonNpi,
    /// Digits alone.
    pub numeric: TonNpi,
    /// Anything else (an alphanumeric sender).
    pub alphanumeric: TonNpi,
}

impl Default for Numbering {
    fn default() -> Self {
        Numbering {
            international: TonNpi::new(ton::INTERNATIONAL, npi::ISDN),
            numeric: TonNpi::new(ton::UNKNOWN, npi::ISDN),
            alphanumeric: TonNpi::new(ton::ALPHANUMERIC, npi::UNKNOWN),
        }
    }
}

impl Numbering {
    /// Give `addr`, as `sme_addr` classified it, the TON/NPI configured for its form.
    pub(super) fn apply(&self, addr: &mut SmeAddr<21>) {
        if addr.addr.is_empty() {
            return;
        }
        let chosen = match addr.ton {
            ton::INTERNATIONAL => self.international,
            ton::ALPHANUMERIC => self.alphanumeric,
            _ => self.numeric,
        };
        addr.ton = chosen.ton;
        addr.npi = chosen.npi;
    }
}

/// Settings of an SMPP 3.4 ESME session.
#[derive(Debug, Clone)]
pub struct SmppConfig {
    /// At most 15 characters.
    pub system_id: String,
    /// At most 8 characters.
    pub password: String,
    /// At most 12 characters; many SMSCs want it empty, some a fixed word.
    pub system_type: String,
    pub bind: BindMode,
    /// submit_sm sent and not yet answered, at most.
    pub window: usize,
    /// enquire_link on a connection after this long without a PDU received or a
    /// request sent on it; `Duration::ZERO` turns it off.
    pub enquire_link_interval: Duration,
    /// A request (bind, submit_sm, enquire_link, unbind) not answered within this
    /// breaks the session.
    pub response_timeout: Duration,
    /// First pause of all submits after ESME_RTHROTTLED or ESME_RMSGQFUL; each
    /// further throttling before a submit succeeds doubles it, up to
    /// `throttle_pause_max`.
    pub throttle_pause: Duration,
    pub throttle_pause_max: Duration,
    /// TON/NPI of source_addr per address form.
    pub source_numbering: Numbering,
    /// TON/NPI of destination_addr per address form.
    pub destination_numbering: Numbering,
    /// How text in data_coding 0 is laid out.
    pub text: TextConfig,
    /// How this SMSC's numbers are put in normal form (with the TON of each address)
    /// and what becomes of an MO whose address has none.
    pub numbers: NumberConfig,
    /// How a message longer than one SMS goes: parts with a header in short_message
    /// (the default), parts with sar_* TLVs, or whole in message_payload.
    pub long_messages: LongMessages,
    /// registered_delivery of every submit_sm (1: a receipt on success or failure).
    pub registered_delivery: u8,
    /// How submit_sm_resp's message_id (and a receipt's receipted_message_id TLV) is
    /// written.
    pub submit_id_format: IdFormat,
    /// How the `id:` of a receipt's text is written.
    pub receipt_id_format: IdFormat,
    /// Largest PDU accepted from the SMSC, in octets; a longer command_length is a
    /// framing error that ends the session.
    pub max_pdu: usize,
    /// How long an MO (deliver_sm) may wait for room in the buffer server's ring
    /// before it is answered ESME_RX_T_APPN (the SMSC delivers it again later).
    pub mo_hold_limit: Duration,
}

impl Default for SmppConfig {
    fn default() -> Self {
        SmppConfig {
            system_id: String::new(),
            password: String::new(),
            system_type: String::new(),
            bind: BindMode::Transceiver,
            window: 10,
            enquire_link_interval: Duration::from_secs(30),
            response_timeout: Duration::from_secs(30),
            throttle_pause: Duration::from_secs(1),
            throttle_pause_max: Duration::from_secs(60),
            source_numbering: Numbering::default(),
            destination_numbering: Numbering::default(),
            text: TextConfig::default(),
            long_messages: LongMessages::default(),
            numbers: NumberConfig::default(),
            registered_delivery: registered_delivery::RECEIPT_ALWAYS,
            submit_id_format: IdFormat::AsIs,
            receipt_id_format: IdFormat::AsIs,
            max_pdu: DEFAULT_MAX_PDU,
            mo_hold_limit: Duration::from_secs(10),
        }
    }
}

impl SmppConfig {
    /// The body of every bind this configuration sends, or why there can be none
    /// (a credential too long for its field).
    pub fn bind_body(&self) -> Result<Bind, String> {
        let field = |name: &str, e| format!("{name} cannot be sent: {e}");
        Ok(Bind {
            system_id: self
                .system_id
                .as_str()
                .try_into()
                .map_err(|e| field("system_id", e))?,
            password: self
                .password
                .as_str()
                .try_into()
                .map_err(|e| field("password", e))?,
            system_type: self
                .system_type
                .as_str()
                .try_into()
                .map_err(|e| field("system_type", e))?,
            interface_version: INTERFACE_VERSION_34,
            address_range: SmeAddr::default(),
        })
    }
}
