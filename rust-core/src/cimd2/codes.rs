//! CIMD2 error codes (parameter 900): one table with what each means and whether a
//! refusal with it is worth trying again later.

use crate::smsc::Permanence;

/// (code, meaning, permanence). Meanings as Kannel and the CIMD2 specification name
/// them; the temporary ones are the SMSC's own troubles, not the message's.
pub const ERROR_CODES: &[(u32, &str, Permanence)] = &[
    (0, "no error", Permanence::Permanent),
    (1, "unexpected operation", Permanence::Permanent),
    (2, "syntax error", Permanence::Permanent),
    (3, "unsupported parameter", Permanence::Permanent),
    (
        4,
        "connection to the message centre lost",
        Permanence::Temporary,
    ),
    (
        5,
        "no response from the message centre",
        Permanence::Temporary,
    ),
    (6, "general system error", Permanence::Temporary),
    (7, "cannot find information", Permanence::Permanent),
    (8, "parameter formatting error", Permanence::Permanent),
    (9, "requested operation failed", Permanence::Temporary),
    (100, "invalid login", Permanence::Permanent),
    (101, "incorrect access type", Permanence::Permanent),
    (102, "too many users with this login", Permanence::Temporary),
    (
        103,
        "login refused by the message centre",
        Permanence::Permanent,
    ),
    (300, "incorrect destination address", Permanence::Permanent),
    (
        301,
        "incorrect number of destination addresses",
        Permanence::Permanent,
    ),
    (302, "syntax error in user data", Permanence::Permanent),
    (
        303,
        "incorrect combination of binary, header and normal user data",
        Permanence::Permanent,
    ),
    (304, "incorrect data coding scheme", Permanence::Permanent),
    (305, "incorrect validity period", Permanence::Permanent),
    (306, "incorrect originator address", Permanence::Permanent),
    (307, "incorrect protocol identifier", Permanence::Permanent),
    (308, "incorrect first delivery time", Permanence::Permanent),
    (309, "incorrect reply path", Permanence::Permanent),
    (
        310,
        "incorrect status report request",
        Permanence::Permanent,
    ),
    (311, "incorrect cancel-enabled flag", Permanence::Permanent),
    (312, "incorrect priority", Permanence::Permanent),
    (313, "incorrect tariff class", Permanence::Permanent),
    (314, "incorrect service description", Permanence::Permanent),
    (315, "incorrect transport type", Permanence::Permanent),
    (316, "incorrect message type", Permanence::Permanent),
    (318, "incorrect MMS flag", Permanence::Permanent),
    (319, "incorrect operation timer", Permanence::Permanent),
];

/// Error code this side uses when a message cannot be put into a submit at all.
pub const ERR_PARAMETER_FORMATTING: u32 = 8;
/// Incorrect destination address (an MO whose recipient cannot be attributed).
pub const ERR_DESTINATION: u32 = 300;
/// Incorrect originator address (an MO whose sender cannot be attributed).
pub const ERR_ORIGINATOR: u32 = 306;
/// Error code of our negative answer to a deliver we cannot take now (the SMSC
/// delivers it again later).
pub const TEMPORARY_REFUSAL: u32 = 9;

/// What `code` means, when the table knows it.
pub fn error_text(code: u32) -> Option<&'static str> {
    ERROR_CODES.iter().find(|e| e.0 == code).map(|e| e.1)
}

/// Whether a submit refused with `code` may succeed later. Codes the table does not
/// know are taken as permanent: retrying an unknown refusal forever would block the
/// message's slot.
pub fn permanence(code: u32) -> Permanence {
    ERROR_CODES
        .iter()
        .find(|e| e.0 == code)
        .map_or(Permanence::Permanent, |e| e.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_without_repeats() {
        assert!(ERROR_CODES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn smsc_troubles_are_temporary_and_message_faults_permanent() {
        assert_eq!(permanence(6), Permanence::Temporary);
        assert_eq!(permanence(102), Permanence::Temporary);
        assert_eq!(permanence(300), Permanence::Permanent);
        assert_eq!(permanence(12345), Permanence::Permanent);
        assert_eq!(error_text(304), Some("incorrect data coding scheme"));
        assert_eq!(error_text(12345), None);
    }
}
