//! RFC 3339 timestamps with microseconds (`2026-12-03T05:46:29.141150Z`), the `ts` of every
//! exported line: what `humantime::format_rfc3339_micros` writes, without `fmt` and its
//! intermediate `String` (a few hundred instructions per exchange).
use std::time::{SystemTime, UNIX_EPOCH};

/// First second humantime refuses to format (year 10000).
const YEAR_10000: u64 = 253_402_300_800;

/// `humantime::format_rfc3339_micros(t).to_string()`.
#[must_use]
pub fn rfc3339_micros(t: SystemTime) -> String {
    let Some(d) = t.duration_since(UNIX_EPOCH).ok().filter(|d| d.as_secs() < YEAR_10000) else {
        // Out of the civil range: humantime decides (as it did before this module).
        return humantime::format_rfc3339_micros(t).to_string();
    };
    let secs = d.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let sod = secs % 86_400;
    let mut buf = *b"0000-00-00T00:00:00.000000Z";
    put(&mut buf[0..4], year);
    put(&mut buf[5..7], month);
    put(&mut buf[8..10], day);
    put(&mut buf[11..13], sod / 3600);
    put(&mut buf[14..16], sod / 60 % 60);
    put(&mut buf[17..19], sod % 60);
    put(&mut buf[20..26], u64::from(d.subsec_micros()));
    buf.iter().map(|&b| char::from(b)).collect()
}

/// Zero-padded decimal filling `out`.
fn put(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`, for
/// days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn humantime(t: SystemTime) -> String {
        humantime::format_rfc3339_micros(t).to_string()
    }

    #[test]
    fn same_text_as_humantime() {
        // Every day from 1970 to 2200 (leap years, century rules) at a few times of day, then a
        // spread of instants up to the last second humantime formats.
        let mut seen = 0;
        for day in 0..84_000u64 {
            for (sod, ns) in [(0, 0), (86_399, 999_999_999), (45_296, 141_150_321)] {
                let t = UNIX_EPOCH + Duration::new(day * 86_400 + sod, ns);
                assert_eq!(rfc3339_micros(t), humantime(t));
                seen += 1;
            }
        }
        let mut s: u64 = 1;
        for _ in 0..100_000 {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let t = UNIX_EPOCH + Duration::new(s % YEAR_10000, (s >> 33) as u32 % 1_000_000_000);
            assert_eq!(rfc3339_micros(t), humantime(t));
        }
        let last = UNIX_EPOCH + Duration::new(YEAR_10000 - 1, 999_999_999);
        assert_eq!(rfc3339_micros(last), "9999-12-31T23:59:59.999999Z");
        assert!(seen > 0);
    }
}
