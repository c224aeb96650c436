//! Loading a pipeline file: read (bounded), decode, parse YAML into raw types, validate.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{DuplicateKeyPolicy, Error as YamlError, MessageFormatter, Spanned};

use super::diagnostic::Diagnostic;
use super::model::Pipeline;
use super::raw::RawPipeline;
use super::validate::validate;

/// The largest pipeline file relflow reads: 4 MiB.
pub const MAX_PIPELINE_BYTES: usize = 4 * 1024 * 1024;

/// Alias expansion is bounded far below serde-saphyr's defaults: a pipeline is small, and a
/// billion-laughs file must fail fast.
const MAX_REPLAYED_ALIAS_EVENTS: usize = 100_000;

/// A pipeline file could not be loaded: every problem found, in file order.
#[derive(Debug, thiserror::Error)]
pub struct LoadError {
    file: PathBuf,
    /// The file's text, when it could be read as text (to show the lines).
    source_text: Option<String>,
    /// The text of other files a diagnostic points into (policy scripts).
    other_sources: Vec<(PathBuf, String)>,
    diagnostics: Vec<Diagnostic>,
}

impl LoadError {
    fn new(file: &Path, source_text: Option<&str>, diagnostics: Vec<Diagnostic>) -> LoadError {
        let mut other_sources: Vec<(PathBuf, String)> = Vec::new();
        for diag in diagnostics.iter().filter(|d| d.file != file && d.line > 0) {
            if other_sources.iter().all(|(f, _)| *f != diag.file)
                && let Ok(text) = std::fs::read_to_string(&diag.file)
            {
                other_sources.push((diag.file.clone(), text));
            }
        }
        LoadError {
            file: file.to_path_buf(),
            source_text: source_text.map(str::to_string),
            other_sources,
            diagnostics,
        }
    }

    fn whole_file(file: &Path, message: impl Into<String>) -> LoadError {
        LoadError::new(file, None, vec![Diagnostic::whole_file(file, message)])
    }

    /// Every problem, sorted by position.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Every problem as it may be shown: the pipeline's literal secrets masked, texts bounded.
    pub fn shown_diagnostics(&self) -> Vec<Diagnostic> {
        self.diagnostics
            .iter()
            .map(|diag| diag.shown(self.source_of(diag)))
            .collect()
    }

    /// The text of the file `diag` points into, when it could be read.
    fn source_of(&self, diag: &Diagnostic) -> Option<&str> {
        if diag.file == self.file {
            return self.source_text.as_deref();
        }
        self.other_sources
            .iter()
            .find(|(file, _)| *file == diag.file)
            .map(|(_, text)| text.as_str())
    }
}

/// Every diagnostic rendered, a blank line between them, then one summary line:
/// `error: could not load FILE: N error(s)`. In colour when stderr is a terminal (where a
/// load error is printed) and `NO_COLOR` is not set.
impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let color = super::diagnostic::stderr_has_color();
        for diag in &self.diagnostics {
            writeln!(f, "{}", diag.render_with(self.source_of(diag), color))?;
        }
        let count = self.diagnostics.len();
        let noun = if count == 1 { "error" } else { "errors" };
        writeln!(
            f,
            "error: could not load {}: {count} {noun}",
            self.file.display()
        )
    }
}

/// Reads, parses and validates the pipeline file at `path`.
pub fn load_file(path: &Path) -> Result<Pipeline, LoadError> {
    let file = open_regular_file(path)
        .map_err(|reason| LoadError::whole_file(path, format!("cannot read the file: {reason}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_PIPELINE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| read_error(path, &err))?;
    if bytes.len() > MAX_PIPELINE_BYTES {
        let size = std::fs::metadata(path).map(|m| m.len()).ok();
        return Err(too_large(path, size));
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => load(path, text, true),
        Err(err) => Err(not_utf8(path, &bytes, err.valid_up_to())),
    }
}

/// Parses and validates `source` as the pipeline file `path` (used in messages and to
/// resolve relative paths). The files it names are not checked: this is how a stored
/// pipeline is loaded again, and a script removed since must not make a release unreadable.
pub fn load_str(path: &Path, source: &str) -> Result<Pipeline, LoadError> {
    load(path, source, false)
}

/// Parses and validates; `check_files`: also check the scripts and programs it names.
fn load(path: &Path, source: &str, check_files: bool) -> Result<Pipeline, LoadError> {
    if source.len() > MAX_PIPELINE_BYTES {
        return Err(too_large(path, u64::try_from(source.len()).ok()));
    }
    if is_blank(source) {
        return Err(LoadError::whole_file(
            path,
            "the file is empty: expected a mapping with `name` and `phases`",
        ));
    }
    let yaml_error =
        |err: YamlError| LoadError::new(path, Some(source), vec![yaml_diagnostic(path, &err)]);
    // The typed pass below stops at the first value of the wrong shape, often before an
    // alias is expanded; walking every node first makes the alias budget apply to the
    // whole file, whatever its shape. Without `*` there is no alias to expand.
    if source.contains('*') {
        serde_saphyr::from_str_with_options::<IgnoredAny>(source, yaml_options())
            .map_err(yaml_error)?;
    }
    let raw: Spanned<RawPipeline> =
        serde_saphyr::from_str_with_options(source, yaml_options()).map_err(yaml_error)?;
    validate(raw, path, source, &base_dir(path), check_files)
        .map_err(|diags| LoadError::new(path, Some(source), diags))
}

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    // YAML 1.2 booleans only: a task named `y` or `on` stays a string.
    options.strict_booleans = true;
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_ALIAS_EVENTS;
    options
}

/// Only whitespace and comments.
fn is_blank(source: &str) -> bool {
    source
        .trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#'))
}

/// The absolute folder of `path`.
fn base_dir(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    parent.canonicalize().unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|cwd| cwd.join(parent))
            .unwrap_or_else(|_| parent.to_path_buf())
    })
}

fn read_error(path: &Path, err: &std::io::Error) -> LoadError {
    LoadError::whole_file(path, format!("cannot read the file: {}", io_reason(err)))
}

fn io_reason(err: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::NotFound => "no such file".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::IsADirectory => "it is a directory".to_string(),
        _ => err.to_string(),
    }
}

/// Opens `path` for reading when it is a regular file. Anything else — a FIFO, a device, a
/// folder — is refused at once with the reason: it is opened without blocking (a FIFO with no
/// writer would hang `open` and `read`) and checked with fstat before a byte is read.
pub fn open_regular_file(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io_reason(&e))?;
    let kind = file.metadata().map_err(|e| io_reason(&e))?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    Err(format!(
        "it is {}, not a regular file",
        crate::store::describe_kind(kind)
    ))
}

fn too_large(path: &Path, size: Option<u64>) -> LoadError {
    let limit = MAX_PIPELINE_BYTES;
    let message = match size {
        Some(size) => format!(
            "the file is too large: {size} bytes, and the limit for a pipeline is {limit} bytes \
             (4 MiB)"
        ),
        None => format!(
            "the file is too large: more than the limit of {limit} bytes (4 MiB) for a pipeline"
        ),
    };
    LoadError::whole_file(path, message)
}

fn not_utf8(path: &Path, bytes: &[u8], valid_up_to: usize) -> LoadError {
    let valid = bytes.get(..valid_up_to).unwrap_or_default();
    // The prefix is valid UTF-8 by definition of `valid_up_to`.
    let prefix = std::str::from_utf8(valid).unwrap_or_default();
    let line = prefix.matches('\n').count() + 1;
    let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let byte = bytes.get(valid_up_to).copied().unwrap_or(0);
    let diag = Diagnostic::at(
        path,
        line,
        column,
        format!("the file is not UTF-8 text: invalid byte 0x{byte:02x}"),
    );
    LoadError::new(path, None, vec![diag])
}

/// serde-saphyr's error as our diagnostic: its location, and a short message of ours.
fn yaml_diagnostic(path: &Path, err: &YamlError) -> Diagnostic {
    let (line, column) = err
        .location()
        .map(|loc| {
            (
                usize::try_from(loc.line()).unwrap_or(0),
                usize::try_from(loc.column()).unwrap_or(0),
            )
        })
        .unwrap_or((0, 0));
    let err = innermost(err);
    Diagnostic::at(path, line, column, yaml_message(err)).with_help(yaml_help(err))
}

/// The nearest known key to an unknown one (`tsks` → `tasks`).
fn yaml_help(err: &YamlError) -> Option<String> {
    match err {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => super::validate::did_you_mean(field, expected.iter().copied()),
        _ => None,
    }
}

fn innermost(mut err: &YamlError) -> &YamlError {
    loop {
        match err {
            YamlError::WithSnippet { error, .. } | YamlError::AliasError { error, .. } => {
                err = error;
            }
            _ => return err,
        }
    }
}

fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn yaml_message(err: &YamlError) -> String {
    match err {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => format!(
            "unknown field `{field}`, expected one of {}",
            backticked(expected)
        ),
        YamlError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => format!("expected {expected}, found {unexpected}"),
        YamlError::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => format!("invalid value {unexpected}: expected {expected}"),
        YamlError::SerdeMissingField { field, .. } => format!("missing field `{field}`"),
        YamlError::DuplicateMappingKey { key: Some(key), .. } => {
            format!("duplicate key `{key}`: each key may appear once in a mapping")
        }
        YamlError::DuplicateMappingKey { key: None, .. } => {
            "duplicate key: each key may appear once in a mapping".to_string()
        }
        YamlError::Unexpected { expected, .. } => match *expected {
            "sequence start" => "expected a list".to_string(),
            "mapping start" => "expected a mapping".to_string(),
            "string scalar" => "expected a string".to_string(),
            other => format!("expected {other}"),
        },
        YamlError::NullIntoString { .. } => {
            "a value is required here (write \"\" for an empty string)".to_string()
        }
        YamlError::InvalidScalar { ty, .. } => match *ty {
            "bool" | "boolean" => "expected `true` or `false`".to_string(),
            ty if ty.starts_with('i') || ty.starts_with('u') => {
                "expected a whole number".to_string()
            }
            ty => format!("invalid value: expected {ty}"),
        },
        YamlError::Budget { breach, .. } => budget_message(breach),
        YamlError::AliasReplayLimitExceeded { .. }
        | YamlError::AliasExpansionLimitExceeded { .. }
        | YamlError::AliasReplayStackDepthExceeded { .. } => {
            "aliases expand to too much data: refusing the file (an alias bomb?)".to_string()
        }
        YamlError::MultipleDocuments { .. } => {
            "the file holds more than one YAML document (`---`): a pipeline is one document"
                .to_string()
        }
        YamlError::Eof { .. } => "unexpected end of file".to_string(),
        other => tidy(&serde_saphyr::UserMessageFormatter.format_message(other)),
    }
}

fn budget_message(breach: &BudgetBreach) -> String {
    match breach {
        BudgetBreach::Aliases { .. }
        | BudgetBreach::AliasAnchorRatio { .. }
        | BudgetBreach::RecordedAnchorEvents { .. }
        | BudgetBreach::RecordedAnchorBytes { .. } => {
            "aliases expand to too much data: refusing the file (an alias bomb?)".to_string()
        }
        BudgetBreach::Depth { .. } => "the file is nested too deeply".to_string(),
        _ => "the file is too large or too complex to load".to_string(),
    }
}

/// A library message made to read like ours: lowercase start, no trailing period, no
/// advice about library options.
fn tidy(message: &str) -> String {
    let cleaned = tidy_text(message);
    if cleaned.starts_with("while parsing a block") {
        format!("{cleaned} (check the indentation)")
    } else {
        cleaned
    }
}

fn tidy_text(message: &str) -> String {
    let message = message.split("; use ").next().unwrap_or(message);
    let message = message.split(", set ").next().unwrap_or(message);
    let message = message.trim().trim_end_matches('.');
    let mut chars = message.chars();
    let Some(first) = chars.next() else {
        return "invalid YAML".to_string();
    };
    let cleaned: String = first.to_lowercase().chain(chars).collect();
    cleaned.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(source: &str) -> Vec<String> {
        match load_str(Path::new("p.yaml"), source) {
            Ok(_) => Vec::new(),
            Err(err) => err
                .diagnostics()
                .iter()
                .map(|d| match &d.help {
                    Some(help) => format!("{}:{}: {} (help: {help})", d.line, d.column, d.title()),
                    None => format!("{}:{}: {}", d.line, d.column, d.title()),
                })
                .collect(),
        }
    }

    const HELLO: &str = "name: hello\nvariables: { version: 2.10 }\nphases:\n  - name: build\n    tasks:\n      - name: echo\n        command: { run: [echo, \"${version}\", 5] }\n";

    #[test]
    fn load_accepts_a_small_pipeline_and_keeps_scalar_text() {
        let pipeline = load_str(Path::new("dir/p.yaml"), HELLO).unwrap();
        assert_eq!(pipeline.name, "hello");
        assert_eq!(pipeline.variables["version"], "2.10");
        assert_eq!(pipeline.file, Path::new("dir/p.yaml"));
        assert!(pipeline.base_dir.is_absolute());
        assert_eq!(pipeline.retry_budget, 20);
    }

    #[test]
    fn load_collects_every_validation_error_in_order() {
        let source = "name: Bad!\nphases:\n  - name: a\n    tasks:\n      - name: x\n        wait: 10\n      - name: x\n        wait: 1s\n";
        let errs = errors(source);
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(errs[0].starts_with("1:7: name: `Bad!`"), "{errs:#?}");
        assert!(
            errs[1].contains("`10` has no unit: write `10s`"),
            "{errs:#?}"
        );
        assert!(errs[2].contains("task name `x` is already used by phases[0].tasks[0]"));
    }

    #[test]
    fn load_points_at_the_unknown_variable_and_suggests() {
        let source = "name: p\nvariables: { version: '1' }\nphases:\n  - name: a\n    tasks:\n      - name: x\n        command: { run: [echo, \"v=${versoin}\"] }\n";
        let errs = errors(source);
        assert_eq!(
            errs,
            vec!["7:35: unknown variable `${versoin}` (help: did you mean `version`?)".to_string()]
        );
    }

    #[test]
    fn load_refuses_blank_and_oversized_sources() {
        assert!(errors("")[0].contains("the file is empty"));
        assert!(errors("  \n# only a comment\n")[0].contains("the file is empty"));
        let big = "#".repeat(MAX_PIPELINE_BYTES + 1);
        assert!(errors(&big)[0].contains("too large"));
    }

    #[test]
    fn load_refuses_duplicate_keys() {
        let errs = errors("name: a\nname: b\nphases: []\n");
        assert_eq!(
            errs,
            vec!["2:1: duplicate key `name`: each key may appear once in a mapping".to_string()]
        );
    }

    #[test]
    fn load_reports_the_first_bad_utf8_byte() {
        let err = not_utf8(Path::new("p.yaml"), b"name: a\nx: \xff", 11);
        let diag = &err.diagnostics()[0];
        assert_eq!((diag.line, diag.column), (2, 4));
    }

    #[test]
    fn load_never_panics_on_odd_input() {
        for source in [
            "- a\n",
            "[",
            "name: [",
            "phases: {a: 1}\n",
            "a: *x\n",
            "---\n---\n",
            "\u{feff}",
            "name: p\nphases:\n- tasks:\n  - parallel: {tasks: [{parallel: {}}]}\n",
        ] {
            let _ = load_str(Path::new("p.yaml"), source);
        }
    }
}
