//! Asking the state (contract §9): the identity view, the findings list and request-time
//! decisions, for the `/v1` API and `nhi-drift inspect`.
//!
//! - [`identity`]: the identity view (inventory plus open findings) and its table form.
//! - [`findings`]: the findings an instance lists — open state findings and, bounded,
//!   the latest window and resolved alerts — with filters and cursor paging.
//! - [`decide`]: a would-be tool call decided by the window rules' own SQL over a one-row
//!   activity table, plus the open state findings that concern it.
//! - [`answer`]: the questions the pipeline task answers, and what it keeps to answer.
//! - [`inspect`]: `nhi-drift inspect`, from a running service or a replay of files.
//! - [`placement`]: which instance answers for an identity (its partition).

pub mod answer;
pub mod decide;
pub mod findings;
pub mod identity;
pub mod inspect;
pub mod placement;
