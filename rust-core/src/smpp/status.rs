//! SMPP 3.4 command_status values (section 5.1.3) in one table: name, value, text, and
//! whether a sender should retry.

/// A command_status value. Known values are associated constants
/// (`CommandStatus::ESME_RTHROTTLED`); any other value is kept as it came.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CommandStatus(pub u32);

/// What a status means for the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    Ok,
    /// The peer is overloaded: pause sending, then retry (ESME_RTHROTTLED, ESME_RMSGQFUL).
    Throttled,
    /// Retry later, or after rebinding.
    Temporary,
    /// Retrying the same request will fail again.
    Permanent,
}

impl StatusClass {
    /// Throttled and temporary failures are worth another attempt.
    pub fn is_retryable(self) -> bool {
        matches!(self, StatusClass::Throttled | StatusClass::Temporary)
    }
}

/// One row of the status table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusInfo {
    pub status: CommandStatus,
    /// The SMPP name, e.g. `ESME_RTHROTTLED`.
    pub name: &'static str,
    /// The specification's description.
    pub text: &'static str,
    pub class: StatusClass,
}

macro_rules! status_table {
    ($($name:ident = $value:literal, $class:ident, $text:literal;)*) => {
        impl CommandStatus {
            $(pub const $name: CommandStatus = CommandStatus($value);)*
        }

        /// Every status SMPP 3.4 defines, in value order.
        pub const STATUSES: &[StatusInfo] = &[
            $(StatusInfo {
                status: CommandStatus($value),
                name: stringify!($name),
                text: $text,
                class: StatusClass::$class,
            },)*
        ];
    };
}

// Classes: throttling and queue-full pause the sender; errors of the SMSC's own state
// (system error, bind state, bind failure, temporary application error at the
// receiver) are retried; everything about the request's contents or the credentials
// is permanent. Kannel likewise retries only throttling and gives up for good on a
// bad system_id, password or system_type.
status_table! {
    ESME_ROK = 0x0000_0000, Ok, "No error";
    ESME_RINVMSGLEN = 0x0000_0001, Permanent, "Message length is invalid";
    ESME_RINVCMDLEN = 0x0000_0002, Permanent, "Command length is invalid";
    ESME_RINVCMDID = 0x0000_0003, Permanent, "Invalid command ID";
    ESME_RINVBNDSTS = 0x0000_0004, Temporary, "Incorrect bind status for given command";
    ESME_RALYBND = 0x0000_0005, Temporary, "ESME already in bound state";
    ESME_RINVPRTFLG = 0x0000_0006, Permanent, "Invalid priority flag";
    ESME_RINVREGDLVFLG = 0x0000_0007, Permanent, "Invalid registered delivery flag";
    ESME_RSYSERR = 0x0000_0008, Temporary, "System error";
    ESME_RINVSRCADR = 0x0000_000A, Permanent, "Invalid source address";
    ESME_RINVDSTADR = 0x0000_000B, Permanent, "Invalid destination address";
    ESME_RINVMSGID = 0x0000_000C, Permanent, "Message ID is invalid";
    ESME_RBINDFAIL = 0x0000_000D, Temporary, "Bind failed";
    ESME_RINVPASWD = 0x0000_000E, Permanent, "Invalid password";
    ESME_RINVSYSID = 0x0000_000F, Permanent, "Invalid system ID";
    ESME_RCANCELFAIL = 0x0000_0011, Permanent, "Cancel SM failed";
    ESME_RREPLACEFAIL = 0x0000_0013, Permanent, "Replace SM failed";
    ESME_RMSGQFUL = 0x0000_0014, Throttled, "Message queue full";
    ESME_RINVSERTYP = 0x0000_0015, Permanent, "Invalid service type";
    ESME_RINVNUMDESTS = 0x0000_0033, Permanent, "Invalid number of destinations";
    ESME_RINVDLNAME = 0x0000_0034, Permanent, "Invalid distribution list name";
    ESME_RINVDESTFLAG = 0x0000_0040, Permanent, "Destination flag is invalid";
    ESME_RINVSUBREP = 0x0000_0042, Permanent, "Invalid submit with replace request";
    ESME_RINVESMCLASS = 0x0000_0043, Permanent, "Invalid esm_class field data";
    ESME_RCNTSUBDL = 0x0000_0044, Permanent, "Cannot submit to distribution list";
    ESME_RSUBMITFAIL = 0x0000_0045, Permanent, "submit_sm or submit_multi failed";
    ESME_RINVSRCTON = 0x0000_0048, Permanent, "Invalid source address TON";
    ESME_RINVSRCNPI = 0x0000_0049, Permanent, "Invalid source address NPI";
    ESME_RINVDSTTON = 0x0000_0050, Permanent, "Invalid destination address TON";
    ESME_RINVDSTNPI = 0x0000_0051, Permanent, "Invalid destination address NPI";
    ESME_RINVSYSTYP = 0x0000_0053, Permanent, "Invalid system_type field";
    ESME_RINVREPFLAG = 0x0000_0054, Permanent, "Invalid replace_if_present flag";
    ESME_RINVNUMMSGS = 0x0000_0055, Permanent, "Invalid number of messages";
    ESME_RTHROTTLED = 0x0000_0058, Throttled, "Throttling error (ESME has exceeded allowed message limits)";
    ESME_RINVSCHED = 0x0000_0061, Permanent, "Invalid scheduled delivery time";
    ESME_RINVEXPIRY = 0x0000_0062, Permanent, "Invalid message validity period (expiry time)";
    ESME_RINVDFTMSGID = 0x0000_0063, Permanent, "Predefined message invalid or not found";
    ESME_RX_T_APPN = 0x0000_0064, Temporary, "ESME receiver temporary app error code";
    ESME_RX_P_APPN = 0x0000_0065, Permanent, "ESME receiver permanent app error code";
    ESME_RX_R_APPN = 0x0000_0066, Permanent, "ESME receiver reject message error code";
    ESME_RQUERYFAIL = 0x0000_0067, Permanent, "query_sm request failed";
    ESME_RINVOPTPARSTREAM = 0x0000_00C0, Permanent, "Error in the optional part of the PDU body";
    ESME_ROPTPARNOTALLWD = 0x0000_00C1, Permanent, "Optional parameter not allowed";
    ESME_RINVPARLEN = 0x0000_00C2, Permanent, "Invalid parameter length";
    ESME_RMISSINGOPTPARAM = 0x0000_00C3, Permanent, "Expected optional parameter missing";
    ESME_RINVOPTPARAMVAL = 0x0000_00C4, Permanent, "Invalid optional parameter value";
    ESME_RDELIVERYFAILURE = 0x0000_00FE, Permanent, "Delivery failure (used for data_sm_resp)";
    ESME_RUNKNOWNERR = 0x0000_00FF, Permanent, "Unknown error";
}

impl CommandStatus {
    /// The table row for this value, if SMPP 3.4 defines it.
    pub fn info(self) -> Option<&'static StatusInfo> {
        STATUSES
            .binary_search_by_key(&self, |row| row.status)
            .ok()
            .map(|i| &STATUSES[i])
    }

    pub fn name(self) -> Option<&'static str> {
        self.info().map(|row| row.name)
    }

    /// How to treat this status. A value outside the table (reserved, or vendor-specific
    /// 0x400-0x4FF) is permanent: retrying a failure nobody can interpret could loop
    /// forever; a deployment that knows its SMSC's codes maps them before this.
    pub fn class(self) -> StatusClass {
        match self.info() {
            Some(row) => row.class,
            None => StatusClass::Permanent,
        }
    }

    pub fn is_ok(self) -> bool {
        self == CommandStatus::ESME_ROK
    }
}

impl std::fmt::Debug for CommandStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "CommandStatus(0x{:08X})", self.0),
        }
    }
}

impl std::fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.info() {
            Some(row) => write!(f, "{} (0x{:08X}): {}", row.name, self.0, row.text),
            None if (0x400..=0x4FF).contains(&self.0) => {
                write!(f, "0x{:08X}: vendor-specific error", self.0)
            }
            None => write!(f, "0x{:08X}: reserved status", self.0),
        }
    }
}

impl From<u32> for CommandStatus {
    fn from(value: u32) -> CommandStatus {
        CommandStatus(value)
    }
}
