//! Site load management: many chargers on one connection, never over any fuse.
//!
//! [`allocator`] is the pure function at its heart (property-tested in
//! `allocator_props.rs`); `docs/load-management.md` has the model and its invariants.

pub mod allocator;

#[cfg(test)]
mod allocator_props;
