//! Whether a fix-forward may restart the phase with the values its resolver printed. Pure,
//! like `decide`: the engine runs the resolver and then asks here.

use std::collections::BTreeMap;

/// What the release has tried so far, as fix-forward needs it.
#[derive(Debug, Clone, Default)]
pub struct FixForwardHistory {
    /// Restarts this task's fix-forward has already made.
    pub restarts: u32,
    /// Variables of every phase run that failed in this release (the failing one included).
    pub failed_runs: Vec<BTreeMap<String, String>>,
}

/// Parses `name=value` lines; other lines (the resolver's chatter) are ignored.
pub fn parse_resolved(lines: &[String]) -> BTreeMap<String, String> {
    lines
        .iter()
        .filter_map(|line| {
            let (name, value) = line.trim().split_once('=')?;
            let name = name.trim();
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            valid.then(|| (name.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// Splits resolved values into those of declared variables and the names of the others,
/// which a fix-forward ignores (a resolver may print more than relflow needs).
pub fn split_undeclared(
    mut values: BTreeMap<String, String>,
    declared: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let undeclared: Vec<String> = values
        .keys()
        .filter(|name| !declared.contains_key(*name))
        .cloned()
        .collect();
    values.retain(|name, _| declared.contains_key(name));
    (values, undeclared)
}

/// `Ok` when the phase may restart with `values`; `Err` says why not (then the fallback applies).
pub fn judge(
    values: &BTreeMap<String, String>,
    declared: &BTreeMap<String, String>,
    history: &FixForwardHistory,
    max: u32,
) -> Result<(), String> {
    if history.restarts >= max {
        return Err(format!("fix_forward.max ({max}) restart(s) already used"));
    }
    if values.is_empty() {
        return Err("the resolver printed no name=value line of a pipeline variable".to_string());
    }
    if let Some(name) = values.keys().find(|k| !declared.contains_key(*k)) {
        return Err(format!(
            "the resolver set `{name}`, which is not a variable of the pipeline"
        ));
    }
    for run in &history.failed_runs {
        if let Some((name, value)) = values.iter().find(|(k, v)| run.get(*k) == Some(*v)) {
            return Err(format!("{name}={value} already failed in this release"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_name_value_lines_among_chatter() {
        let lines = vec![
            "looking up the next patch...".to_string(),
            "version=2.3".to_string(),
            " x = 1 ".to_string(),
        ];
        assert_eq!(
            parse_resolved(&lines),
            map(&[("version", "2.3"), ("x", "1")])
        );
    }

    #[test]
    fn undeclared_names_are_set_aside() {
        let declared = map(&[("version", "1.0")]);
        let (values, ignored) =
            split_undeclared(map(&[("version", "2.3"), ("build", "77")]), &declared);
        assert_eq!(values, map(&[("version", "2.3")]));
        assert_eq!(ignored, ["build"]);
    }

    #[test]
    fn refuses_a_value_that_already_failed() {
        let declared = map(&[("version", "1.0")]);
        let history = FixForwardHistory {
            restarts: 0,
            failed_runs: vec![map(&[("version", "2.2")])],
        };
        assert_eq!(
            judge(&map(&[("version", "2.3")]), &declared, &history, 1),
            Ok(())
        );
        let err = judge(&map(&[("version", "2.2")]), &declared, &history, 1).unwrap_err();
        assert_eq!(err, "version=2.2 already failed in this release");
    }

    #[test]
    fn stops_after_max_restarts_and_refuses_undeclared_names() {
        let declared = map(&[("version", "1.0")]);
        let used = FixForwardHistory {
            restarts: 1,
            failed_runs: Vec::new(),
        };
        assert!(
            judge(&map(&[("version", "2.3")]), &declared, &used, 1)
                .unwrap_err()
                .contains("max (1)")
        );
        let fresh = FixForwardHistory::default();
        assert!(judge(&map(&[("colour", "red")]), &declared, &fresh, 1).is_err());
        assert!(judge(&BTreeMap::new(), &declared, &fresh, 1).is_err());
    }
}
