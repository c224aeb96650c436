//! Statuses of releases, phase runs, task runs and attempts, as stored and shown.

use std::fmt;
use std::str::FromStr;

macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} `{other}`", stringify!($name))),
                }
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: String| rusqlite::types::FromSqlError::Other(e.into()))
            }
        }

        impl super::db::FromSql for $name {
            fn from_value(value: &super::db::Value) -> Result<Self, String> {
                <String as super::db::FromSql>::from_value(value)?.parse()
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

status_enum! {
    /// Where a release stands.
    ReleaseStatus {
        Planned => "planned",
        Running => "running",
        Failed => "failed",
        Paused => "paused",
        Completed => "completed",
        Aborted => "aborted",
        RolledBack => "rolled_back",
    }
}

status_enum! {
    /// Where a phase run stands.
    PhaseStatus {
        Planned => "planned",
        Running => "running",
        Completed => "completed",
        Failed => "failed",
        Paused => "paused",
        Aborted => "aborted",
        RolledBack => "rolled_back",
        Superseded => "superseded",
    }
}

status_enum! {
    /// Where a task run stands.
    TaskStatus {
        Planned => "planned",
        Running => "running",
        WaitingRetry => "waiting_retry",
        Completed => "completed",
        Failed => "failed",
        Skipped => "skipped",
        Ignored => "ignored",
        RolledBack => "rolled_back",
        Cancelled => "cancelled",
        Superseded => "superseded",
        WaitingApproval => "waiting_approval",
        WaitingLock => "waiting_lock",
    }
}

status_enum! {
    /// How one attempt of a task ended.
    AttemptStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Interrupted => "interrupted",
        Cancelled => "cancelled",
    }
}

status_enum! {
    /// Where a rollback job of a completed deployment stands.
    RollbackJobStatus {
        Queued => "queued",
        InProgress => "in_progress",
        Completed => "completed",
        Exception => "exception",
    }
}

impl ReleaseStatus {
    /// A release in this status will not run again by itself.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ReleaseStatus::Completed | ReleaseStatus::Aborted | ReleaseStatus::RolledBack
        )
    }
}

impl TaskStatus {
    /// The task needs no more work for its phase to go on.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed
                | TaskStatus::Skipped
                | TaskStatus::Ignored
                | TaskStatus::Superseded
                | TaskStatus::Cancelled
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_text() {
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), *s);
        }
        for s in ReleaseStatus::ALL {
            assert_eq!(s.as_str().parse::<ReleaseStatus>().unwrap(), *s);
        }
        assert!("done".parse::<TaskStatus>().is_err());
    }
}
