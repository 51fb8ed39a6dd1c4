//! SMPP session options as C sees them: a plain struct the caller fills (starting
//! from `smslink_smpp_options_default`), checked when it becomes an `SmppConfig`.

use std::ffi::c_char;
use std::time::Duration;

use smslink_core::ring::MAX_CAPACITY;
use smslink_core::smpp::{registered_delivery, BindMode, SmppConfig, TonNpi};

use crate::abi::{fill_c_array, guard, out_ptr, read_c_array, write_out, Error};
use crate::result::smslink_result;

/// `smslink_smpp_options.bind_mode`: one connection, bind_transceiver.
pub const SMSLINK_BIND_TRANSCEIVER: u32 = 0;
/// `smslink_smpp_options.bind_mode`: bind_transmitter (submits) and bind_receiver
/// (deliveries) on two connections, for SMSCs without transceiver binds.
pub const SMSLINK_BIND_TRANSMITTER_RECEIVER: u32 = 1;

/// Bytes of `smslink_smpp_options.system_type`: SMPP's 12 characters and the NUL.
pub const SMSLINK_SYSTEM_TYPE_SIZE: usize = 13;

/// How a buffer server's SMPP 3.4 session binds and submits. Fill it with
/// `smslink_smpp_options_default`, change what the SMSC needs, then pass it to
/// `smslink_config_set_smsc_smpp` (which copies it).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct smslink_smpp_options {
    /// SMSLINK_BIND_TRANSCEIVER (default) or SMSLINK_BIND_TRANSMITTER_RECEIVER.
    pub bind_mode: u32,
    /// system_type of the bind, NUL-terminated (default empty; some SMSCs want a
    /// fixed word).
    pub system_type: [c_char; SMSLINK_SYSTEM_TYPE_SIZE],
    /// submit_sm sent and not yet answered, at most (1..=65536, default 10).
    pub window: u32,
    /// enquire_link after this many milliseconds without traffic on a connection
    /// (default 30000; 0: never).
    pub enquire_link_ms: u32,
    /// A request not answered within this many milliseconds breaks the session
    /// (> 0, default 30000).
    pub response_timeout_ms: u32,
    /// TON and NPI of a source_addr made only of digits (default 0 unknown, 1
    /// ISDN). "+" and digits are always sent as 1/1 (international, ISDN) without
    /// the "+", anything else as 5/0 (alphanumeric).
    pub source_numeric_ton: u8,
    pub source_numeric_npi: u8,
    /// The same for destination_addr (default 0/1).
    pub destination_numeric_ton: u8,
    pub destination_numeric_npi: u8,
    /// Ask the SMSC for a delivery receipt of every MT (default true).
    pub registered_delivery: bool,
    /// GSM 03.38 text (data_coding 0) packed 8 characters in 7 octets; most SMSCs
    /// expect one character per octet (default false).
    pub gsm_packed: bool,
}

impl smslink_smpp_options {
    /// The options that leave `SmppConfig`'s defaults as they are.
    fn defaults() -> smslink_smpp_options {
        let d = SmppConfig::default();
        let mut system_type = [0; SMSLINK_SYSTEM_TYPE_SIZE];
        fill_c_array(&mut system_type, &d.system_type);
        smslink_smpp_options {
            bind_mode: match d.bind {
                BindMode::Transceiver => SMSLINK_BIND_TRANSCEIVER,
                BindMode::TransmitterReceiver => SMSLINK_BIND_TRANSMITTER_RECEIVER,
            },
            system_type,
            window: u32::try_from(d.window).unwrap_or(u32::MAX),
            enquire_link_ms: millis(d.enquire_link_interval),
            response_timeout_ms: millis(d.response_timeout),
            source_numeric_ton: d.source_numbering.numeric.ton,
            source_numeric_npi: d.source_numbering.numeric.npi,
            destination_numeric_ton: d.destination_numbering.numeric.ton,
            destination_numeric_npi: d.destination_numbering.numeric.npi,
            registered_delivery: d.registered_delivery != registered_delivery::NONE,
            gsm_packed: d.text.gsm_packed,
        }
    }

    /// The session settings these options and credentials make, every value checked.
    pub(crate) fn config(&self, system_id: &str, password: &str) -> Result<SmppConfig, Error> {
        let mut config = SmppConfig {
            system_id: system_id.to_owned(),
            password: password.to_owned(),
            system_type: read_c_array(&self.system_type, "system_type")?.to_owned(),
            ..SmppConfig::default()
        };
        // The bind's own encoder says which credential does not fit its field.
        config.bind_body().map_err(Error::invalid)?;
        config.bind = match self.bind_mode {
            SMSLINK_BIND_TRANSCEIVER => BindMode::Transceiver,
            SMSLINK_BIND_TRANSMITTER_RECEIVER => BindMode::TransmitterReceiver,
            other => {
                return Err(Error::invalid(format!(
                    "bind_mode {other} is neither SMSLINK_BIND_TRANSCEIVER (0) nor \
                     SMSLINK_BIND_TRANSMITTER_RECEIVER (1)"
                )))
            }
        };
        // No more MT can be outstanding than the link's ring holds.
        if self.window == 0 || self.window as usize > MAX_CAPACITY {
            return Err(Error::invalid(format!(
                "window {} is outside 1..={MAX_CAPACITY}",
                self.window
            )));
        }
        config.window = self.window as usize;
        if self.response_timeout_ms == 0 {
            return Err(Error::invalid("response_timeout_ms must be > 0"));
        }
        config.enquire_link_interval = Duration::from_millis(self.enquire_link_ms.into());
        config.response_timeout = Duration::from_millis(self.response_timeout_ms.into());
        config.source_numbering.numeric = ton_npi(
            "source_numeric",
            self.source_numeric_ton,
            self.source_numeric_npi,
        )?;
        config.destination_numbering.numeric = ton_npi(
            "destination_numeric",
            self.destination_numeric_ton,
            self.destination_numeric_npi,
        )?;
        config.registered_delivery = if self.registered_delivery {
            registered_delivery::RECEIPT_ALWAYS
        } else {
            registered_delivery::NONE
        };
        config.text.gsm_packed = self.gsm_packed;
        Ok(config)
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// A TON/NPI pair SMPP 3.4 defines (`TonNpi::defined`), the field named as in C.
fn ton_npi(what: &str, ton_value: u8, npi_value: u8) -> Result<TonNpi, Error> {
    TonNpi::defined(ton_value.into(), npi_value.into())
        .map_err(|e| Error::invalid(format!("{what}_{e}")))
}

/// Write the default SMPP options to `*out`: transceiver bind, empty system_type,
/// window 10, enquire_link every 30 s, responses within 30 s, numeric addresses as
/// TON 0 / NPI 1 both ways, a delivery receipt for every MT, unpacked GSM text.
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_smpp_options_default(
    out: *mut smslink_smpp_options,
) -> smslink_result {
    guard(|| {
        let out = out_ptr(out, "out")?;
        write_out(out, smslink_smpp_options::defaults());
        Ok(())
    })
}
