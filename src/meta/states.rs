//! The states a record can be in, as enums with their database spellings:
//! a job's or a task's [`Status`], a job's [`SchedulerState`], a stopped
//! task's [`TaskResult`], a stopped run's [`RunResult`], a webhook
//! delivery's [`DeliveryStatus`].
//!
//! The spellings are the stored values (and the SQL in this module's
//! siblings writes the same ones as literals): `as_str` writes them,
//! `parse` reads them, and a row with a spelling no variant has is
//! [`MetaError::Corrupt`] when read, never a panic.

use super::MetaError;
use super::sql::{opt_text, text};
use sqlx::any::AnyRow;

/// A state with a fixed set of stored spellings.
pub(super) trait Spelled: Sized + Copy + 'static {
    /// What the value is, for the error of an unknown spelling.
    const WHAT: &'static str;
    fn parse(s: &str) -> Option<Self>;
}

macro_rules! spelled {
    ($(#[$m:meta])* $name:ident, $what:literal {
        $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)?
    }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $v),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];

            /// The stored spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$v => $s),+
                }
            }

            /// The variant stored as `s`; `None` for any other text.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($s => Some($name::$v),)+
                    _ => None,
                }
            }
        }

        impl Spelled for $name {
            const WHAT: &'static str = $what;
            fn parse(s: &str) -> Option<$name> {
                $name::parse(s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spelled! {
    /// Where a job or a task is in its life (`jobs.status`, `tasks.status`).
    Status, "status" {
        Pending = "pending",
        Running = "running",
        Stopped = "stopped",
    }
}

spelled! {
    /// Whether a job is still being created, scheduled, or has ended and
    /// how (`jobs.scheduler_state`).
    SchedulerState, "scheduler state" {
        /// Its tasks are being created (not yet stopped by anyone else).
        Scheduling = "scheduling",
        Scheduled = "scheduled",
        Finished = "finished",
        Cancelled = "cancelled",
    }
}

spelled! {
    /// How a stopped task ended (`tasks.run_result`).
    TaskResult, "task result" {
        Success = "success",
        Failure = "failure",
        Cancelled = "cancelled",
    }
}

spelled! {
    /// How a stopped run ended (`runs.result_code`; the contract's spelling).
    RunResult, "run result" {
        Success = "Success",
        Failed = "Failed",
    }
}

spelled! {
    /// Where a webhook delivery is (`webhook_deliveries.status`).
    DeliveryStatus, "delivery status" {
        /// Queued, or waiting for a retry.
        Pending = "pending",
        Delivered = "delivered",
        /// Refused or out of attempts: not tried again.
        Failed = "failed",
    }
}

/// The state stored as `s` in column `col`.
///
/// # Errors
/// [`MetaError::Corrupt`] naming the column and the unknown spelling.
pub(super) fn decode<T: Spelled>(col: &str, s: &str) -> Result<T, MetaError> {
    T::parse(s).ok_or_else(|| MetaError::Corrupt(format!("{col}: unknown {} {s:?}", T::WHAT)))
}

/// The state in column `col` of `row`.
pub(super) fn state<T: Spelled>(row: &AnyRow, col: &str) -> Result<T, MetaError> {
    decode(col, &text(row, col)?)
}

/// The state in nullable column `col` of `row`.
pub(super) fn opt_state<T: Spelled>(row: &AnyRow, col: &str) -> Result<Option<T>, MetaError> {
    opt_text(row, col)?.map(|s| decode(col, &s)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: Spelled + PartialEq + std::fmt::Debug>(
        all: &[T],
        spell: fn(T) -> &'static str,
    ) {
        for &v in all {
            assert_eq!(decode::<T>("c", spell(v)).ok(), Some(v), "{v:?}");
        }
    }

    #[test]
    fn every_state_reads_back_its_spelling() {
        round_trips(Status::ALL, Status::as_str);
        round_trips(SchedulerState::ALL, SchedulerState::as_str);
        round_trips(TaskResult::ALL, TaskResult::as_str);
        round_trips(RunResult::ALL, RunResult::as_str);
        round_trips(DeliveryStatus::ALL, DeliveryStatus::as_str);
    }

    #[test]
    fn the_spellings_are_the_stored_ones() {
        fn spellings<T: Copy>(all: &[T], spell: fn(T) -> &'static str) -> Vec<&'static str> {
            all.iter().map(|&v| spell(v)).collect()
        }
        let cases: [(Vec<&str>, &[&str]); 5] = [
            (
                spellings(Status::ALL, Status::as_str),
                &["pending", "running", "stopped"],
            ),
            (
                spellings(SchedulerState::ALL, SchedulerState::as_str),
                &["scheduling", "scheduled", "finished", "cancelled"],
            ),
            (
                spellings(TaskResult::ALL, TaskResult::as_str),
                &["success", "failure", "cancelled"],
            ),
            (
                spellings(RunResult::ALL, RunResult::as_str),
                &["Success", "Failed"],
            ),
            (
                spellings(DeliveryStatus::ALL, DeliveryStatus::as_str),
                &["pending", "delivered", "failed"],
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        assert_eq!(Status::Stopped.to_string(), "stopped");
    }

    #[test]
    fn an_unknown_spelling_is_corrupt_not_a_panic() {
        let cases: &[(&str, Result<Status, ()>)] = &[
            ("pending", Ok(Status::Pending)),
            ("Pending", Err(())),
            ("", Err(())),
            ("stopped ", Err(())),
            ("done", Err(())),
        ];
        for (s, want) in cases {
            let got = decode::<Status>("tasks.status", s);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, *w),
                (Err(MetaError::Corrupt(m)), Err(())) => {
                    assert_eq!(m, format!("tasks.status: unknown status {s:?}"));
                }
                (g, w) => panic!("{s:?}: {g:?}, wanted {w:?}"),
            }
        }
        assert!(matches!(
            decode::<RunResult>("runs.result_code", "success"),
            Err(MetaError::Corrupt(_))
        ));
        assert!(matches!(
            decode::<TaskResult>("tasks.run_result", "Success"),
            Err(MetaError::Corrupt(_))
        ));
    }
}
