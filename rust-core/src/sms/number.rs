//! Phone numbers in one normal form inside the product: E.164 with `+`
//! (`+46700000001`). An SMSC writes them its own way: with or without `+`, with the
//! international prefix (`00`), nationally (`0700000001`), tagged with a type of
//! number (SMPP's TON) or not (CIMD2). [`normalize`] turns what an SMSC sends into the
//! normal form by the protocol's type of number and the SMSC's [`NumberConfig`];
//! [`to_smsc`] writes a number back the way that SMSC wants it.
//!
//! Short codes (a service's few digits) and alphanumeric senders are not numbers in
//! a plan: they are kept as they come.

use thiserror::Error;

use crate::message::{Address, Message, MessageError};

/// The type of number a protocol gives with an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ton {
    /// No type given (CIMD2; SMPP TON 0): the digits say what they are.
    Unknown,
    /// SMPP TON 1: country code and number, no prefix.
    International,
    /// SMPP TON 2: a number of the SMSC's own country.
    National,
    /// SMPP TON 5: letters, not a number.
    Alphanumeric,
}

impl Ton {
    /// SMPP's type of number value.
    pub fn from_smpp(ton: u8) -> Ton {
        match ton {
            1 => Ton::International,
            2 => Ton::National,
            5 => Ton::Alphanumeric,
            _ => Ton::Unknown,
        }
    }
}

/// How an MT's international number goes to the SMSC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InternationalForm {
    /// `+46700000001`.
    #[default]
    Plus,
    /// `46700000001` (as many SMSCs want it, and Kannel sends it).
    Bare,
}

/// What becomes of an MO whose originator or destination has no normal form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Unattributable {
    /// Refused toward the SMSC with the protocol's error for that address.
    #[default]
    Refuse,
    /// Handed on with the address as it came (an empty one is refused all the same:
    /// nobody could ever answer it).
    PassOn,
}

/// One SMSC's way of writing numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NumberConfig {
    /// The country calling code of the SMSC's national numbers (`"46"`); without it a
    /// national number is kept as it came (it names someone, in that country).
    pub country_code: Option<String>,
    /// How a national number starts when dialled (trunk prefix).
    pub national_prefix: String,
    /// How an international number starts when dialled.
    pub international_prefix: String,
    /// Digit strings up to this long are short codes, kept as they are.
    pub short_code_max_digits: usize,
    pub mt_international: InternationalForm,
    pub unattributable_mo: Unattributable,
}

impl Default for NumberConfig {
    fn default() -> Self {
        NumberConfig {
            country_code: None,
            national_prefix: "0".into(),
            international_prefix: "00".into(),
            short_code_max_digits: 6,
            mt_international: InternationalForm::Plus,
            unattributable_mo: Unattributable::Refuse,
        }
    }
}

/// Why a number has no normal form.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NumberError {
    #[error("the address is empty")]
    Empty,
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error(transparent)]
    Address(#[from] MessageError),
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The normal form of an address an SMSC sent, given its type of number.
pub fn normalize(raw: &str, ton: Ton, config: &NumberConfig) -> Result<Address, NumberError> {
    // Spaces and dashes are only how a number was written down.
    let compact: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if compact.is_empty() {
        return Err(NumberError::Empty);
    }
    let has_letters = compact.bytes().any(|b| b.is_ascii_alphabetic());
    if ton == Ton::Alphanumeric || has_letters {
        return Ok(Address::new(raw.trim())?);
    }
    let international = |digits: &str| -> Result<Address, NumberError> {
        if !all_digits(digits) {
            return Err(NumberError::NotANumber(raw.to_owned()));
        }
        Ok(Address::new(&format!("+{digits}"))?)
    };
    let national = |rest: &str| match &config.country_code {
        Some(cc) => international(&format!("{cc}{rest}")),
        None => Ok(Address::new(&compact)?),
    };
    let intl_prefix = config.international_prefix.as_str();
    let nat_prefix = config.national_prefix.as_str();
    if let Some(digits) = compact.strip_prefix('+') {
        return international(digits);
    }
    if !all_digits(&compact) {
        return Err(NumberError::NotANumber(raw.to_owned()));
    }
    match ton {
        Ton::International => {
            international(strip_nonempty(&compact, intl_prefix).unwrap_or(&compact))
        }
        Ton::National => national(strip_nonempty(&compact, nat_prefix).unwrap_or(&compact)),
        Ton::Unknown | Ton::Alphanumeric => {
            if let Some(rest) = strip_nonempty(&compact, intl_prefix) {
                international(rest)
            } else if compact.len() <= config.short_code_max_digits {
                Ok(Address::new(&compact)?)
            } else if let Some(rest) = strip_nonempty(&compact, nat_prefix) {
                national(rest)
            } else {
                // Country code and number without `+`: how most SMSCs write them.
                international(&compact)
            }
        }
    }
}

/// `s` without `prefix`, when the prefix is set and `s` starts with it.
fn strip_nonempty<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (!prefix.is_empty())
        .then(|| s.strip_prefix(prefix))
        .flatten()
}

/// An address (in normal form) as this SMSC wants it in an MT.
pub fn to_smsc<'a>(address: &'a Address, config: &NumberConfig) -> &'a str {
    let s = address.as_str();
    match config.mt_international {
        InternationalForm::Plus => s,
        InternationalForm::Bare => match s.strip_prefix('+') {
            Some(digits) if all_digits(digits) => digits,
            _ => s,
        },
    }
}

/// Which address of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressSide {
    Originator,
    Destination,
}

/// Put an MO's originator and destination (as the SMSC wrote them, with their types
/// of number) in normal form, as `config` says. On `Err` the MO is to be refused
/// for that address (the message is then left as it was).
pub fn attribute_mo(
    message: &mut Message,
    from: (&str, Ton),
    to: (&str, Ton),
    config: &NumberConfig,
) -> Result<(), (AddressSide, NumberError)> {
    let one = |(raw, ton): (&str, Ton), side| match normalize(raw, ton, config) {
        Ok(a) => Ok(a),
        Err(NumberError::Empty) => Err((side, NumberError::Empty)),
        Err(e) if config.unattributable_mo == Unattributable::Refuse => Err((side, e)),
        Err(e) => Address::new(raw).map_err(|_| (side, e)),
    };
    let from = one(from, AddressSide::Originator)?;
    let to = one(to, AddressSide::Destination)?;
    message.from = from;
    message.to = to;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swedish() -> NumberConfig {
        NumberConfig {
            country_code: Some("46".into()),
            ..NumberConfig::default()
        }
    }

    fn norm(raw: &str, ton: Ton, config: &NumberConfig) -> Result<String, NumberError> {
        normalize(raw, ton, config).map(|a| a.as_str().to_owned())
    }

    #[test]
    fn with_and_without_plus_and_national_reach_the_same_number() {
        let c = swedish();
        for raw in ["46700000001", "+46700000001", "0700000001", "0046700000001"] {
            assert_eq!(
                norm(raw, Ton::Unknown, &c).unwrap(),
                "+46700000001",
                "{raw}"
            );
        }
        for raw in ["4670000001", "+4670000001", "070000001"] {
            assert_eq!(norm(raw, Ton::Unknown, &c).unwrap(), "+4670000001", "{raw}");
        }
        // SMPP's type of number decides where the digits alone cannot.
        assert_eq!(
            norm("46700000001", Ton::International, &c).unwrap(),
            "+46700000001"
        );
        assert_eq!(
            norm("700000001", Ton::National, &c).unwrap(),
            "+46700000001"
        );
        assert_eq!(
            norm("0700000001", Ton::National, &c).unwrap(),
            "+46700000001"
        );
        assert_eq!(
            norm("070 000-00 01", Ton::Unknown, &c).unwrap(),
            "+46700000001"
        );
    }

    #[test]
    fn short_codes_and_names_stay_as_they_are() {
        let c = swedish();
        assert_eq!(norm("12345", Ton::Unknown, &c).unwrap(), "12345");
        assert_eq!(norm("1000", Ton::Unknown, &c).unwrap(), "1000");
        assert_eq!(norm("Bank", Ton::Alphanumeric, &c).unwrap(), "Bank");
        assert_eq!(norm("Shop24", Ton::Unknown, &c).unwrap(), "Shop24");
    }

    #[test]
    fn what_has_no_normal_form() {
        let c = NumberConfig::default();
        assert_eq!(norm("", Ton::Unknown, &c), Err(NumberError::Empty));
        assert_eq!(norm(" - ", Ton::Unknown, &c), Err(NumberError::Empty));
        // Without a country code a national number stays as it came.
        assert_eq!(norm("0700000001", Ton::Unknown, &c).unwrap(), "0700000001");
        assert_eq!(norm("700000001", Ton::National, &c).unwrap(), "700000001");
        assert_eq!(
            norm("+46+7", Ton::Unknown, &c),
            Err(NumberError::NotANumber("+46+7".into()))
        );
        assert!(norm("+123456789012345678901", Ton::Unknown, &c).is_err());
    }

    #[test]
    fn an_mo_is_attributed_or_refused_for_the_address_at_fault() {
        let mut m = Message::text("x", "y", "hi").unwrap();
        let c = swedish();
        attribute_mo(
            &mut m,
            ("0700000001", Ton::Unknown),
            ("12345", Ton::Unknown),
            &c,
        )
        .unwrap();
        assert_eq!((m.from.as_str(), m.to.as_str()), ("+46700000001", "12345"));
        let err = attribute_mo(&mut m, ("", Ton::Unknown), ("12345", Ton::Unknown), &c);
        assert_eq!(err, Err((AddressSide::Originator, NumberError::Empty)));
        let mut plain = NumberConfig::default();
        let err = attribute_mo(
            &mut m,
            ("4670", Ton::Unknown),
            ("+46+7", Ton::Unknown),
            &plain,
        );
        assert!(matches!(
            err,
            Err((AddressSide::Destination, NumberError::NotANumber(_)))
        ));
        plain.unattributable_mo = Unattributable::PassOn;
        attribute_mo(
            &mut m,
            ("4670", Ton::Unknown),
            ("+46+7", Ton::Unknown),
            &plain,
        )
        .unwrap();
        assert_eq!(m.to.as_str(), "+46+7");
        let err = attribute_mo(&mut m, ("4670", Ton::Unknown), ("", Ton::Unknown), &plain);
        assert_eq!(err, Err((AddressSide::Destination, NumberError::Empty)));
    }

    #[test]
    fn mt_numbers_are_written_as_the_smsc_wants() {
        let a = Address::new("+46700000001").unwrap();
        let short = Address::new("12345").unwrap();
        let mut c = NumberConfig::default();
        assert_eq!(to_smsc(&a, &c), "+46700000001");
        c.mt_international = InternationalForm::Bare;
        assert_eq!(to_smsc(&a, &c), "46700000001");
        assert_eq!(to_smsc(&short, &c), "12345");
    }
}
