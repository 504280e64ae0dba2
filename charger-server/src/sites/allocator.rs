//! The allocator: a pure function from a site (its tree of fuses, its chargers, their
//! sessions, what the server cannot change) to a current per session.
//!
//! Currents are integer tenths of an ampere (`dA`), per phase; a session draws its current
//! on each site phase it loads. The steps, in order:
//! 1. What cannot change is counted first on every node above it: the base load, idle
//!    connectors' default limit, offline chargers' reservations (until their lease ends,
//!    then their failsafe), and sessions whose last command is not acknowledged (held at
//!    the higher of the old and the new current).
//! 2. Admission: by priority (highest first), then least recently served, each session
//!    gets its minimum if it fits under every node above it on every phase it loads (and
//!    every power cap); one that does not fit is paused (0).
//! 3. Progressive filling, priority tier by tier: the admitted session with the lowest
//!    current goes up one step if that still fits and stays under its maximum, otherwise
//!    it is done; until every session is done (max-min fair per phase).
//!
//! Nothing is rounded up: a maximum is rounded down to the session's steps, and power caps
//! are turned into current rounding down ([`deciamps_of_watts`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Tenths of an ampere.
pub type DeciAmps = i64;

/// The phase voltage the site's power caps are converted with, in V.
pub const PHASE_VOLTS: i64 = 230;

/// The minimum current of a session (IEC 61851), in dA.
pub const MIN_CURRENT: DeciAmps = 60;

/// A node of the site's tree: the site's connection, a board, a circuit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its parent (an index into the nodes, always a lower one); None for the root.
    pub parent: Option<usize>,
    /// The current limit of each site phase (L1, L2, L3), in dA (already derated).
    pub limit: [DeciAmps; 3],
    /// A power cap over all three phases, in W.
    pub power_cap_w: Option<i64>,
}

/// A charger: where it hangs, and onto which site phases its own phases are wired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charger {
    /// The node it is on (its circuit).
    pub node: usize,
    /// Its phases, in its own order: `rotation[i]` is the site phase (0, 1, 2) its phase
    /// *i* is wired to; a single-phase charger has one.
    pub rotation: Vec<usize>,
}

/// A session to allocate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: u64,
    pub charger: usize,
    /// Its minimum (6 A, or more), in dA.
    pub min: DeciAmps,
    /// Its maximum (the connector's, the cable's, the car's), in dA.
    pub max: DeciAmps,
    /// What the charger honours: its current is the minimum plus whole steps, in dA.
    pub step: DeciAmps,
    /// Higher first.
    pub priority: i32,
    /// When it was last given current (an ordering key: lower is longer ago).
    pub last_served: i64,
    /// How many of the charger's phases the car uses (1 to 3); None: unknown, all of the
    /// charger's.
    pub phases_used: Option<usize>,
    /// Its last command is not acknowledged: it keeps this current this time (the higher
    /// of its old and new one) and is not changed.
    pub held: Option<DeciAmps>,
}

/// A load the allocator cannot change, on a charger's phases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixed {
    pub charger: usize,
    /// On each of the charger's phases, in dA.
    pub current: DeciAmps,
}

/// An offline charger: what it holds until its lease ends, then its failsafe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offline {
    pub charger: usize,
    pub reserved: DeciAmps,
    pub lease_until: i64,
    pub failsafe: DeciAmps,
}

/// Everything the allocator looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Site {
    pub nodes: Vec<Node>,
    pub chargers: Vec<Charger>,
    pub sessions: Vec<Session>,
    /// Idle connectors' default limit, and any other load that cannot change.
    pub fixed: Vec<Fixed>,
    pub offline: Vec<Offline>,
    /// A load on a node that is no charger's (a building, a heat pump), per site phase.
    pub base_load: Vec<(usize, [DeciAmps; 3])>,
    /// Now, in the same unit as the leases.
    pub now: i64,
}

/// The current of each session (0: paused), in the order of [`Site::sessions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub currents: Vec<(u64, DeciAmps)>,
}

/// Whole dA within a power cap, rounding down: never more power than the cap.
pub fn deciamps_of_watts(watts: i64, volts: i64) -> DeciAmps {
    if volts <= 0 || watts <= 0 {
        return 0;
    }
    (i128::from(watts) * 10 / i128::from(volts))
        .try_into()
        .unwrap_or(DeciAmps::MAX)
}

/// The power of a current at a voltage, rounding down: never more than is drawn.
pub fn watts_of_deciamps(current: DeciAmps, volts: i64) -> i64 {
    if current <= 0 || volts <= 0 {
        return 0;
    }
    (i128::from(current) * i128::from(volts) / 10)
        .try_into()
        .unwrap_or(i64::MAX)
}

/// The site phases a session loads: the first `phases_used` of its charger's (all of
/// them when unknown).
pub fn phases_of(charger: &Charger, phases_used: Option<usize>) -> [bool; 3] {
    let n = phases_used
        .unwrap_or(charger.rotation.len())
        .clamp(1, charger.rotation.len().max(1));
    let mut loaded = [false; 3];
    for &p in charger.rotation.iter().take(n) {
        if let Some(slot) = loaded.get_mut(p) {
            *slot = true;
        }
    }
    loaded
}

/// The nodes from a charger's up to the root.
fn path(nodes: &[Node], node: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = Some(node);
    while let Some(n) = at {
        if n >= nodes.len() || out.len() > nodes.len() {
            break;
        }
        out.push(n);
        at = nodes[n].parent.filter(|&p| p < n);
    }
    out
}

/// What each node carries, per phase, while allocating.
struct Loads {
    phase: Vec<[DeciAmps; 3]>,
}

impl Loads {
    fn add(&mut self, path: &[usize], phases: [bool; 3], current: DeciAmps) {
        for &n in path {
            for (p, on) in phases.iter().enumerate() {
                if *on {
                    self.phase[n][p] = self.phase[n][p].saturating_add(current);
                }
            }
        }
    }

    /// Whether `extra` more on these phases fits every node of the path.
    fn fits(&self, nodes: &[Node], path: &[usize], phases: [bool; 3], extra: DeciAmps) -> bool {
        path.iter().all(|&n| {
            let node = &nodes[n];
            let per_phase = phases
                .iter()
                .enumerate()
                .all(|(p, on)| !*on || self.phase[n][p].saturating_add(extra) <= node.limit[p]);
            let power = node.power_cap_w.is_none_or(|cap| {
                let added = extra.saturating_mul(phases.iter().filter(|on| **on).count() as i64);
                let total: DeciAmps = self.phase[n].iter().sum::<DeciAmps>().saturating_add(added);
                total <= deciamps_of_watts(cap, PHASE_VOLTS)
            });
            per_phase && power
        })
    }
}

/// A session's maximum, rounded down to its steps (never below its minimum's step).
pub fn usable_max(s: &Session) -> DeciAmps {
    if s.max < s.min {
        return 0;
    }
    let step = s.step.max(1);
    s.min + (s.max - s.min) / step * step
}

/// Allocates a site: see the module's documentation.
pub fn allocate(site: &Site) -> Allocation {
    let nodes = &site.nodes;
    let mut loads = Loads {
        phase: vec![[0; 3]; nodes.len()],
    };
    let charger_path = |c: usize| -> Option<(Vec<usize>, &Charger)> {
        let charger = site.chargers.get(c)?;
        Some((path(nodes, charger.node), charger))
    };
    // 1. What cannot change.
    for &(node, load) in &site.base_load {
        for (p, current) in load.iter().enumerate() {
            let mut phases = [false; 3];
            phases[p] = true;
            loads.add(&path(nodes, node), phases, *current);
        }
    }
    for f in &site.fixed {
        if let Some((path, charger)) = charger_path(f.charger) {
            loads.add(&path, phases_of(charger, None), f.current);
        }
    }
    for o in &site.offline {
        if let Some((path, charger)) = charger_path(o.charger) {
            let holds = if site.now < o.lease_until {
                o.reserved.max(o.failsafe)
            } else {
                o.failsafe
            };
            loads.add(&path, phases_of(charger, None), holds);
        }
    }
    let mut current: Vec<DeciAmps> = vec![0; site.sessions.len()];
    let mut done = vec![true; site.sessions.len()];
    let mut geometry = Vec::with_capacity(site.sessions.len());
    for (i, s) in site.sessions.iter().enumerate() {
        let g = charger_path(s.charger).map(|(path, c)| (path, phases_of(c, s.phases_used)));
        if let (Some((path, phases)), Some(held)) = (&g, s.held) {
            loads.add(path, *phases, held);
            current[i] = held;
        }
        geometry.push(g);
    }
    // 2. Admission, by priority, then least recently served.
    let mut order: Vec<usize> = (0..site.sessions.len())
        .filter(|&i| site.sessions[i].held.is_none() && geometry[i].is_some())
        .collect();
    order.sort_by_key(|&i| {
        let s = &site.sessions[i];
        (Reverse(s.priority), s.last_served, s.id)
    });
    for &i in &order {
        let s = &site.sessions[i];
        let Some((path, phases)) = &geometry[i] else {
            continue;
        };
        if s.min <= 0 || usable_max(s) < s.min {
            continue;
        }
        if loads.fits(nodes, path, *phases, s.min) {
            loads.add(path, *phases, s.min);
            current[i] = s.min;
            done[i] = false;
        }
    }
    // 3. Progressive filling, tier by tier.
    let mut tiers: Vec<i32> = order
        .iter()
        .filter(|&&i| !done[i])
        .map(|&i| site.sessions[i].priority)
        .collect();
    tiers.sort_unstable_by_key(|p| Reverse(*p));
    tiers.dedup();
    for tier in tiers {
        let mut heap: BinaryHeap<Reverse<(DeciAmps, i64, u64, usize)>> = order
            .iter()
            .filter(|&&i| !done[i] && site.sessions[i].priority == tier)
            .map(|&i| {
                let s = &site.sessions[i];
                Reverse((current[i], s.last_served, s.id, i))
            })
            .collect();
        while let Some(Reverse((_, last, id, i))) = heap.pop() {
            let s = &site.sessions[i];
            let step = s.step.max(1);
            let Some((path, phases)) = &geometry[i] else {
                continue;
            };
            if current[i] + step <= usable_max(s) && loads.fits(nodes, path, *phases, step) {
                loads.add(path, *phases, step);
                current[i] += step;
                heap.push(Reverse((current[i], last, id, i)));
            } else {
                done[i] = true;
            }
        }
    }
    Allocation {
        currents: site
            .sessions
            .iter()
            .zip(current)
            .map(|(s, c)| (s.id, c))
            .collect(),
    }
}

/// The order to send new currents in: every decrease before any increase (so that the
/// sum never passes a fuse while chargers take their commands one by one).
pub fn send_order(old: &[(u64, DeciAmps)], new: &[(u64, DeciAmps)]) -> Vec<(u64, DeciAmps)> {
    let before = |id: u64| old.iter().find(|(o, _)| *o == id).map_or(0, |(_, c)| *c);
    let mut changes: Vec<(u64, DeciAmps)> = new
        .iter()
        .filter(|(id, c)| before(*id) != *c)
        .copied()
        .collect();
    changes.sort_by_key(|(id, c)| (*c > before(*id), *id));
    changes
}

/// The failsafe current of each charger (in dA, per phase) such that all of them at once,
/// every charger offline, fit every node: each node's limit shared equally among the
/// chargers under it, the smallest share on the way up, rounded down to whole amperes;
/// below the minimum a charger gets 0 (it cannot charge slower than that).
pub fn failsafe_currents(nodes: &[Node], chargers: &[Charger]) -> Vec<DeciAmps> {
    let mut under = vec![[0i64; 3]; nodes.len()];
    for c in chargers {
        for n in path(nodes, c.node) {
            for (p, on) in phases_of(c, None).iter().enumerate() {
                if *on {
                    under[n][p] += 1;
                }
            }
        }
    }
    let under = &under;
    chargers
        .iter()
        .map(|c| {
            let phases = phases_of(c, None);
            let share = path(nodes, c.node)
                .iter()
                .flat_map(|&n| {
                    let node = &nodes[n];
                    let per_phase = (0..3)
                        .filter(|&p| phases[p])
                        .map(move |p| node.limit[p].max(0) / under[n][p].max(1));
                    let power = node.power_cap_w.map(|cap| {
                        let all: i64 = under[n].iter().sum();
                        deciamps_of_watts(cap, PHASE_VOLTS) / all.max(1)
                    });
                    per_phase.chain(power)
                })
                .min()
                .unwrap_or(0);
            let whole = share / 10 * 10;
            if whole < MIN_CURRENT {
                0
            } else {
                whole
            }
        })
        .collect()
}

/// A site for benchmarks (`cargo bench -p charger-server --bench allocator`, and the perf
/// benchmark's row): a connection, 10 boards, circuits of 10 chargers of 32 A (three-phase
/// in the three rotations, one in five single-phase), a session on every charger
/// (priorities 0 to 2, steps of 1 A and 0.1 A).
pub fn bench_site(chargers: usize) -> Site {
    let mut nodes = vec![Node {
        parent: None,
        limit: [4_000; 3],
        power_cap_w: Some(2_500_000),
    }];
    for _ in 0..10 {
        nodes.push(Node {
            parent: Some(0),
            limit: [1_000; 3],
            power_cap_w: None,
        });
    }
    for c in 0..chargers.div_ceil(10) {
        nodes.push(Node {
            parent: Some(1 + c % 10),
            limit: [320; 3],
            power_cap_w: None,
        });
    }
    let rotations = [vec![0, 1, 2], vec![1, 2, 0], vec![2, 0, 1]];
    let chargers_v: Vec<Charger> = (0..chargers)
        .map(|i| Charger {
            node: 11 + i / 10,
            rotation: if i % 5 == 4 {
                vec![i % 3]
            } else {
                rotations[i % 3].clone()
            },
        })
        .collect();
    let sessions = (0..chargers)
        .map(|i| Session {
            id: i as u64,
            charger: i,
            min: 60,
            max: 320,
            step: if i % 2 == 0 { 10 } else { 1 },
            priority: (i % 3) as i32,
            last_served: (i * 7 % 100) as i64,
            phases_used: None,
            held: None,
        })
        .collect();
    Site {
        nodes,
        chargers: chargers_v,
        sessions,
        ..Site::default()
    }
}
