//! Sites for load management: the tree of fuses, where chargers hang, and what each
//! running session was last given (see `docs/load-management.md`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::devices::Protocol;
use crate::ids::{DeviceId, OwnerId};

/// What a charger holds when the server is gone and it has no session profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failsafe {
    /// 0 A: an idle connector starts nothing without the server.
    Zero,
    /// Its failsafe current, reserved for every idle connector while the server runs.
    Reserve,
}

impl Failsafe {
    pub fn as_str(self) -> &'static str {
        match self {
            Failsafe::Zero => "zero",
            Failsafe::Reserve => "reserve",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "zero" => Some(Failsafe::Zero),
            "reserve" => Some(Failsafe::Reserve),
            _ => None,
        }
    }
}

/// A site: one owner's connection to the grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    pub id: i64,
    pub owner: OwnerId,
    pub name: String,
    pub failsafe: Failsafe,
    /// How long a charger holds its allocation without hearing from the server, in s.
    pub lease_s: i64,
    pub created_at: DateTime<Utc>,
}

/// A node of a site's tree: its connection (no parent), a board, a circuit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteNode {
    pub id: i64,
    pub site: i64,
    pub parent: Option<i64>,
    pub name: String,
    /// The limit of each site phase (L1, L2, L3), in tenths of an ampere, derated.
    pub limit_da: [i64; 3],
    /// A power cap over the three phases, in W.
    pub power_cap_w: Option<i64>,
}

/// Where a charger hangs on a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub device: DeviceId,
    pub node: i64,
    /// The site phase (1 to 3) each of the charger's own phases is wired to, in its order;
    /// one for a single-phase charger. Shown as `["L1", "L2", "L3"]`.
    #[serde(serialize_with = "phase_names")]
    pub rotation: Vec<u8>,
    /// The most a connector's session may be given, in dA.
    pub max_current_da: i64,
    /// Its sessions' priority: higher first.
    pub priority: i32,
    /// The default limit it was last given since its boot, in dA.
    #[serde(skip)]
    pub default_da: Option<i64>,
    /// What its composite schedule showed (OCPP): `ok`, `wrong` (it would draw more than
    /// it was given: its profiles stack otherwise than the server's), `unknown`; None: not
    /// checked since its boot or placement.
    #[serde(skip)]
    pub schedule_check: Option<String>,
}

/// A placed charger as the allocator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedCharger {
    pub placement: Placement,
    pub protocol: Protocol,
    pub online: bool,
    pub connector_count: i64,
}

/// A session running on one of a site's chargers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSession {
    pub id: i64,
    pub device: DeviceId,
    pub connector: i64,
    /// The charger's own name of it (an OCPP 2.0.1 transaction id).
    pub local_id: Option<String>,
}

/// What a running session was last given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllocationRow {
    pub session: i64,
    pub current_da: i64,
    pub previous_da: i64,
    /// The charger acknowledged `current_da`.
    pub acked: bool,
    pub lease_until: DateTime<Utc>,
    /// When it last went from paused to given current, or back.
    pub served_at: DateTime<Utc>,
    /// The most current per phase the car last drew, in dA (None: not told).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drawn_da: Option<i64>,
    /// What the limit sent holds once its lease ends, in dA (at most `current_da`).
    pub failsafe_da: i64,
}

/// Everything the allocator reads of one site.
#[derive(Debug, Clone)]
pub struct SiteLoad {
    pub site: Site,
    /// Parents before children.
    pub nodes: Vec<SiteNode>,
    pub chargers: Vec<PlacedCharger>,
    pub sessions: Vec<SiteSession>,
    pub allocations: Vec<AllocationRow>,
}

/// Rotation text as stored: the site phases as digits (`"231"`).
pub fn rotation_text(rotation: &[u8]) -> String {
    rotation.iter().map(|p| char::from(b'0' + p)).collect()
}

/// A stored rotation, or None when it is not 1 to 3 distinct site phases.
pub fn parse_rotation(text: &str) -> Option<Vec<u8>> {
    let phases: Vec<u8> = text
        .bytes()
        .map(|b| b.wrapping_sub(b'0'))
        .collect::<Vec<_>>();
    let valid = !phases.is_empty()
        && phases.len() <= 3
        && phases.iter().all(|p| (1..=3).contains(p))
        && (0..phases.len()).all(|i| !phases[..i].contains(&phases[i]));
    valid.then_some(phases)
}

fn phase_names<S: serde::Serializer>(rotation: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(rotation.iter().map(|p| format!("L{p}")))
}
