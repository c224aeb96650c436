//! Durations as written in pipeline files: `500ms`, `10s`, `5m`, `1h30m`, `2d`.
//!
//! A duration is one or more `<whole number><unit>` parts with units in decreasing order
//! (`d`, `h`, `m`, `s`, `ms`), each unit at most once. A bare number is refused: `10` could mean
//! seconds or minutes, and guessing wrong is worse than asking for the unit.

use std::time::Duration;

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

fn unit_millis(unit: &str) -> Option<(usize, u64)> {
    UNITS
        .iter()
        .enumerate()
        .find(|(_, (name, _))| *name == unit)
        .map(|(rank, (_, millis))| (rank, *millis))
}

fn not_a_duration(text: &str) -> String {
    format!("`{text}` is not a duration: write e.g. `500ms`, `10s`, `5m`, `1h30m` or `2d`")
}

/// Parses a duration such as `1h30m`; the error is a message ready for a diagnostic.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("a duration cannot be empty: write e.g. `10s`".to_string());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` has no unit: write `{text}s`"));
    }
    let mut total: u64 = 0;
    let mut last_rank: Option<usize> = None;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, after) = rest.split_at(digits);
        let letters = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = after.split_at(letters);
        if number.is_empty() || unit.is_empty() {
            return Err(not_a_duration(text));
        }
        let Some((rank, millis)) = unit_millis(unit) else {
            return Err(format!(
                "`{text}` has an unknown unit `{unit}`: use ms, s, m, h or d"
            ));
        };
        if last_rank.is_some_and(|last| rank <= last) {
            return Err(format!(
                "`{text}`: write units from largest to smallest, each once (e.g. `1h30m`)"
            ));
        }
        last_rank = Some(rank);
        let value: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        total = value
            .checked_mul(millis)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| format!("`{text}` is too large"))?;
        rest = tail;
    }
    Ok(Duration::from_millis(total))
}

/// Writes a duration in the shortest form `parse_duration` reads back (whole milliseconds).
pub fn format_duration(duration: Duration) -> String {
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return "0s".to_string();
    }
    let mut parts = String::new();
    let mut rest = millis;
    for (name, size) in UNITS {
        let count = rest / size;
        if count > 0 {
            parts.push_str(&format!("{count}{name}"));
            rest %= size;
        }
    }
    let only_millis = format!("{millis}ms");
    if only_millis.len() < parts.len() {
        only_millis
    } else {
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn duration_parses_every_unit_and_combinations() {
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("10s"), Ok(ms(10_000)));
        assert_eq!(parse_duration("5m"), Ok(ms(300_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("1h30m"), Ok(ms(5_400_000)));
        assert_eq!(parse_duration("2d"), Ok(ms(172_800_000)));
        assert_eq!(parse_duration("0s"), Ok(ms(0)));
        assert_eq!(parse_duration("1m30s250ms"), Ok(ms(90_250)));
    }

    #[test]
    fn duration_refuses_a_bare_number_naming_the_fix() {
        assert_eq!(
            parse_duration("10"),
            Err("`10` has no unit: write `10s`".to_string())
        );
    }

    #[test]
    fn duration_refuses_malformed_text() {
        for bad in [
            "", "s", "1.5s", "10 s", "-1s", "1x", "1s1h", "1m1m", "1h 2m", "1hh",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(
            parse_duration("1x")
                .unwrap_err()
                .contains("unknown unit `x`")
        );
        assert!(
            parse_duration("99999999999999999999d")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_duration("999999999999999d")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn duration_formats_in_shortest_form_and_round_trips() {
        assert_eq!(format_duration(ms(0)), "0s");
        assert_eq!(format_duration(ms(500)), "500ms");
        assert_eq!(format_duration(ms(90_000)), "1m30s");
        assert_eq!(format_duration(ms(1_500)), "1500ms");
        assert_eq!(format_duration(ms(5_400_000)), "1h30m");
        assert_eq!(format_duration(ms(172_800_000)), "2d");
        for text in [
            "500ms", "10s", "5m", "1h", "1h30m", "2d", "1d2h3m4s", "1500ms",
        ] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(parsed)), Ok(parsed));
        }
    }
}
