//! The records: what the store keeps and the domain works on (owners, chargers, tags,
//! tariffs and money, sessions, offers, audit entries), with no behaviour that needs the
//! service or the store. Both the store (below the domain) and the domain use them; the
//! domain modules re-export theirs, so `crate::devices::Device` and
//! `crate::records::devices::Device` are one type.

pub mod audit;
pub mod billing;
pub mod charging;
pub mod cost;
pub mod devices;
pub mod money;
pub mod owners;
pub mod sites;
pub mod tags;
