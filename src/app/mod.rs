//! Use cases over the ports in [`ports`]: prune one repository ([`prune`]), remove a deleted
//! branch's cache tag ([`branch_cleanup`]), sweep the repositories in scope ([`sweep`]), report what a sweep would save
//! ([`report`]). They
//! sequence reads, decisions (in [`crate::core`]) and deletions; they never name AWS or GitHub.
//! What they did is in [`outcome`], which the [`audit`] trail records.

pub mod audit;
pub mod branch_cleanup;
pub mod budget;
pub mod deadline;
pub mod outcome;
pub mod ports;
pub mod prune;
pub mod reads;
pub mod report;
pub mod retry;
pub mod sweep;
