//! Deploy backends for relflow behind one `Backend` trait. Knows nothing of pipelines.

pub mod backend;
pub mod error_class;
pub mod exec;
pub mod failpoint;
pub mod interrupt;
pub mod local;
pub mod process;
pub mod xldeploy;

pub use backend::{
    AnyBackend, Backend, BackendError, ComponentChange, ComponentReverted, CurrentVersion,
    DeliveredComponent, DeployOutcome, DeployRequest, ExecHandle, Handle, LocalHandle, LogSink,
    RevertAction, RevertOutcome, RollbackReport, UndeployRequest, XlDeployHandle,
};
pub use error_class::ErrorClass;
pub use exec::{Docker, ExecBackend};
pub use interrupt::{Interrupt, StopCause};
pub use local::{FreeSpaceProbe, LocalBackend};
pub use xldeploy::{HttpRetry, XlDeployBackend, XlDeployConfig};
