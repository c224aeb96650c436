//! Who ordered an action and why. Every command a person runs takes `--actor` (default: the
//! OS user) and `--comment`; both are stored with the decision the action made and shown by
//! `status`, its JSON and the events file.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Person {
    /// `actor` as given (`--actor`, `RELFLOW_ACTOR`), else the OS user; a blank comment is none.
    pub fn new(actor: Option<&str>, comment: Option<&str>) -> Person {
        let actor = actor
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .unwrap_or_else(os_user);
        let comment = comment
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        Person { actor, comment }
    }

    /// The OS user with no comment.
    pub fn from_os() -> Person {
        Person::new(None, None)
    }

    /// `ann` or `ann: "the fix is in"` for lines a person reads.
    pub fn describe(&self) -> String {
        match &self.comment {
            Some(comment) => format!("{}: \"{comment}\"", self.actor),
            None => self.actor.clone(),
        }
    }
}

/// The user this process runs as: `$USER`, `$LOGNAME`, the password database, else `uid N`
/// (a CI container often sets none of the variables).
pub fn os_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var)
            && !name.trim().is_empty()
        {
            return name;
        }
    }
    // SAFETY: getuid cannot fail; getpwuid_r writes only into the buffers we pass.
    let uid = unsafe { libc::getuid() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc == 0 && !found.is_null() && !entry.pw_name.is_null() {
        // SAFETY: pw_name points into `buf`, NUL-terminated by getpwuid_r.
        let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
        if let Ok(name) = name.to_str()
            && !name.is_empty()
        {
            return name.to_string();
        }
    }
    format!("uid {uid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_actor_and_comment_are_kept_and_blank_ones_fall_back() {
        let p = Person::new(Some(" ann "), Some("  "));
        assert_eq!(p.actor, "ann");
        assert_eq!(p.comment, None);
        assert!(!Person::new(Some(""), None).actor.is_empty());
        assert_eq!(
            Person::new(Some("bo"), Some("db fixed")).describe(),
            "bo: \"db fixed\""
        );
    }

    #[test]
    fn the_os_user_is_never_empty() {
        assert!(!os_user().is_empty());
    }
}
