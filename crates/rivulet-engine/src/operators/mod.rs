//! Stateless operators.

pub mod filter;
pub mod project;

pub use filter::Filter;
pub use project::Project;
