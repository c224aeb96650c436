//! `${...}` templates: parsed once at load time, rendered per task with the release's values.
//!
//! A rendered template always becomes exactly one string (one argv element); values are never
//! re-split or passed through a shell. `$${` writes a literal `${`.

use std::collections::BTreeMap;
use std::fmt;

/// A string with `${...}` references, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(VarRef),
}

/// What a `${...}` names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum VarRef {
    /// `${name}`: a pipeline variable.
    Var(String),
    /// `${env.NAME}`: an environment variable of the runner; a secret.
    Env(String),
    /// `${release.id}`
    ReleaseId,
    /// `${phase.name}`
    PhaseName,
    /// `${task.name}`
    TaskName,
}

/// A malformed `${...}`; `offset` is the byte offset in the template's source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

/// A value substitution failed at run time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    #[error("variable `{0}` has no value")]
    MissingVar(String),
}

/// Values available while rendering a task's templates.
pub struct RenderContext<'a> {
    pub variables: &'a BTreeMap<String, String>,
    pub release_id: &'a str,
    pub phase_name: &'a str,
    pub task_name: &'a str,
    /// Looks up `${env.NAME}`; `std::env::var` in production, a map in tests.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// A rendered value and the secret values that went into it (to be redacted wherever shown).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub value: String,
    pub secrets: Vec<String>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn parse_reference(inner: &str) -> Result<VarRef, String> {
    let valid_name = |s: &str| !s.is_empty() && s.chars().all(is_name_char);
    match inner.split_once('.') {
        None if valid_name(inner) => Ok(VarRef::Var(inner.to_string())),
        None => Err(format!("`${{{inner}}}` is not a valid variable name")),
        Some(("env", name)) if valid_name(name) => Ok(VarRef::Env(name.to_string())),
        Some(("release", "id")) => Ok(VarRef::ReleaseId),
        Some(("phase", "name")) => Ok(VarRef::PhaseName),
        Some(("task", "name")) => Ok(VarRef::TaskName),
        Some(_) => Err(format!(
            "unknown reference `${{{inner}}}`: expected ${{name}}, ${{env.NAME}}, ${{release.id}}, ${{phase.name}} or ${{task.name}}"
        )),
    }
}

impl Template {
    /// Parses `source`, reporting the first malformed reference.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(pos) = rest.find('$') {
            literal.push_str(&rest[..pos]);
            let after = &rest[pos..];
            if let Some(escaped) = after.strip_prefix("$${") {
                literal.push_str("${");
                rest = escaped;
                offset += pos + 3;
            } else if let Some(body) = after.strip_prefix("${") {
                let close = body.find('}').ok_or_else(|| TemplateError {
                    offset: offset + pos,
                    message: "`${` is not closed by `}`".to_string(),
                })?;
                let inner = body[..close].trim();
                let var = parse_reference(inner).map_err(|message| TemplateError {
                    offset: offset + pos,
                    message,
                })?;
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Var(var));
                rest = &body[close + 1..];
                offset += pos + 2 + close + 1;
            } else {
                literal.push('$');
                rest = &after[1..];
                offset += pos + 1;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// A template with no references (for values built in code).
    pub fn literal(value: &str) -> Template {
        let parts = if value.is_empty() {
            Vec::new()
        } else {
            vec![Part::Literal(value.to_string())]
        };
        Template {
            source: value.replace("${", "$${"),
            parts,
        }
    }

    /// The text as written in the pipeline.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every reference in this template, in order.
    pub fn references(&self) -> impl Iterator<Item = &VarRef> {
        self.parts.iter().filter_map(|part| match part {
            Part::Var(var) => Some(var),
            Part::Literal(_) => None,
        })
    }

    /// Substitutes values; secrets used are returned beside the value.
    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<Rendered, RenderError> {
        let mut out = Rendered::default();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.value.push_str(text),
                Part::Var(VarRef::Var(name)) => {
                    let value = ctx
                        .variables
                        .get(name)
                        .ok_or_else(|| RenderError::MissingVar(name.clone()))?;
                    out.value.push_str(value);
                }
                Part::Var(VarRef::Env(name)) => {
                    let value =
                        (ctx.env)(name).ok_or_else(|| RenderError::MissingEnv(name.clone()))?;
                    if !value.is_empty() {
                        out.secrets.push(value.clone());
                    }
                    out.value.push_str(&value);
                }
                Part::Var(VarRef::ReleaseId) => out.value.push_str(ctx.release_id),
                Part::Var(VarRef::PhaseName) => out.value.push_str(ctx.phase_name),
                Part::Var(VarRef::TaskName) => out.value.push_str(ctx.task_name),
            }
        }
        Ok(out)
    }
}

/// A piece of a template, in order: literal text, or one reference as a template of its own.
pub enum Piece<'a> {
    Text(&'a str),
    Reference(Template),
}

impl Template {
    /// The literal text and the references, in order: a shell command line quotes each
    /// reference itself instead of splicing its value into the text.
    pub fn pieces(&self) -> impl Iterator<Item = Piece<'_>> {
        self.parts.iter().map(|part| match part {
            Part::Literal(text) => Piece::Text(text),
            Part::Var(var) => Piece::Reference(Template {
                source: reference_source(var),
                parts: vec![Part::Var(var.clone())],
            }),
        })
    }
}

/// `${...}` as written for `var`.
fn reference_source(var: &VarRef) -> String {
    match var {
        VarRef::Var(name) => format!("${{{name}}}"),
        VarRef::Env(name) => format!("${{env.{name}}}"),
        VarRef::ReleaseId => "${release.id}".to_string(),
        VarRef::PhaseName => "${phase.name}".to_string(),
        VarRef::TaskName => "${task.name}".to_string(),
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, vars: &[(&str, &str)]) -> Rendered {
        let variables = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = |name: &str| (name == "TOKEN").then(|| "s3cret".to_string());
        let ctx = RenderContext {
            variables: &variables,
            release_id: "petportal-1",
            phase_name: "deploy",
            task_name: "smoke",
            env: &env,
        };
        Template::parse(source).unwrap().render(&ctx).unwrap()
    }

    #[test]
    fn substitutes_every_kind_of_reference() {
        let out = render(
            "${release.id}/${phase.name}/${task.name}:${version}",
            &[("version", "2.3")],
        );
        assert_eq!(out.value, "petportal-1/deploy/smoke:2.3");
        assert!(out.secrets.is_empty());
    }

    #[test]
    fn env_values_are_reported_as_secrets() {
        let out = render("Bearer ${env.TOKEN}", &[]);
        assert_eq!(out.value, "Bearer s3cret");
        assert_eq!(out.secrets, vec!["s3cret".to_string()]);
    }

    #[test]
    fn double_dollar_escapes_a_reference() {
        assert_eq!(render("cost $$${x} and $5", &[]).value, "cost $${x} and $5");
        assert_eq!(render("$${version}", &[]).value, "${version}");
    }

    #[test]
    fn values_are_not_re_split() {
        let out = render("${v}", &[("v", "a b; rm -rf /")]);
        assert_eq!(out.value, "a b; rm -rf /");
    }

    #[test]
    fn malformed_references_name_their_offset() {
        let err = Template::parse("abc ${version").unwrap_err();
        assert_eq!(err.offset, 4);
        let err = Template::parse("x ${foo.bar}").unwrap_err();
        assert_eq!(err.offset, 2);
        assert!(err.message.contains("unknown reference `${foo.bar}`"));
        assert!(Template::parse("${}").is_err());
    }

    #[test]
    fn literal_round_trips() {
        let t = Template::literal("a${b}");
        assert_eq!(t.source(), "a$${b}");
        assert_eq!(Template::parse(t.source()).unwrap(), t);
    }
}
