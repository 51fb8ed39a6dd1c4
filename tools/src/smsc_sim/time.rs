//! CIMD2 timestamps (`yymmddhhmmss`, UTC) without a calendar crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current UTC time as CIMD2 writes it: `yymmddhhmmss`.
pub fn cimd2_timestamp(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}",
        y.rem_euclid(100),
        m,
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's era-based method).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_dates() {
        assert_eq!(cimd2_timestamp(UNIX_EPOCH), "700101000000");
        // 2000-02-29 12:34:56 UTC = 951827696
        let t = UNIX_EPOCH + Duration::from_secs(951_827_696);
        assert_eq!(cimd2_timestamp(t), "000229123456");
        // 2026-11-30 23:59:59 UTC = 1796083199
        let t = UNIX_EPOCH + Duration::from_secs(1_796_083_199);
        assert_eq!(cimd2_timestamp(t), "261130235959");
    }
}
