//! The allocator's invariants (issue 24), each a property over random sites: trees of
//! fuses with power caps, three- and single-phase chargers in any rotation, sessions of
//! every priority, step and phase count, held commands, fixed loads, offline chargers.

use proptest::prelude::*;

use super::allocator::*;

fn site_strategy() -> impl Strategy<Value = Site> {
    let nodes = (1usize..6).prop_flat_map(|n| {
        proptest::collection::vec(
            (
                0usize..8,
                [0i64..=1000, 0i64..=1000, 0i64..=1000],
                proptest::option::weighted(0.3, 0i64..=70_000),
            ),
            n,
        )
        .prop_map(|raw| {
            raw.into_iter()
                .enumerate()
                .map(|(i, (parent, limit, power_cap_w))| Node {
                    parent: (i > 0).then(|| parent % i),
                    limit,
                    power_cap_w,
                })
                .collect::<Vec<_>>()
        })
    });
    nodes.prop_flat_map(|nodes| {
        let n = nodes.len();
        let chargers = proptest::collection::vec(
            (
                0..n,
                prop_oneof![
                    Just(vec![0usize, 1, 2]),
                    Just(vec![1usize, 2, 0]),
                    Just(vec![2usize, 0, 1]),
                    (0usize..3).prop_map(|p| vec![p]),
                ],
            )
                .prop_map(|(node, rotation)| Charger { node, rotation }),
            1..8,
        );
        (Just(nodes), chargers).prop_flat_map(|(nodes, chargers)| {
            let c = chargers.len();
            let sessions = proptest::collection::vec(
                (
                    0..c,
                    (6i64..=10).prop_map(|a| a * 10),
                    0i64..=260,
                    prop_oneof![Just(1i64), Just(5), Just(10)],
                    0i32..3,
                    0i64..100,
                    proptest::option::of(1usize..=3),
                    proptest::option::weighted(0.15, 0i64..=320),
                ),
                0..12,
            )
            .prop_map(|raw| {
                raw.into_iter()
                    .enumerate()
                    .map(
                        |(i, (charger, min, extra, step, priority, last, phases, held))| Session {
                            id: i as u64,
                            charger,
                            min,
                            max: min + extra,
                            step,
                            priority,
                            last_served: last,
                            phases_used: phases,
                            held,
                        },
                    )
                    .collect::<Vec<_>>()
            });
            let fixed = proptest::collection::vec(
                (0..c, 0i64..=100).prop_map(|(charger, current)| Fixed { charger, current }),
                0..3,
            );
            let offline = proptest::collection::vec(
                (0..c, 0i64..=160, 0i64..=100, 0i64..=60).prop_map(
                    |(charger, reserved, lease_until, failsafe)| Offline {
                        charger,
                        reserved,
                        lease_until,
                        failsafe,
                    },
                ),
                0..3,
            );
            let n = nodes.len();
            let base =
                proptest::collection::vec((0..n, [0i64..=200, 0i64..=200, 0i64..=200]), 0..2);
            (
                Just(nodes),
                Just(chargers),
                sessions,
                fixed,
                offline,
                base,
                0i64..=100,
            )
                .prop_map(
                    |(nodes, chargers, sessions, fixed, offline, base_load, now)| Site {
                        nodes,
                        chargers,
                        sessions,
                        fixed,
                        offline,
                        base_load,
                        now,
                    },
                )
        })
    })
}

/// The ancestors of a node, itself first.
fn up(site: &Site, node: usize) -> Vec<usize> {
    let mut out = vec![node];
    let mut at = node;
    while let Some(p) = site.nodes[at].parent {
        out.push(p);
        at = p;
    }
    out
}

/// Per node and phase: what cannot change (base, fixed, offline, held sessions), and
/// that plus the allocated sessions; computed here, independently of the allocator.
fn loads(site: &Site, a: &Allocation) -> (Vec<[i64; 3]>, Vec<[i64; 3]>) {
    let mut fixed = vec![[0i64; 3]; site.nodes.len()];
    let put = |loads: &mut Vec<[i64; 3]>, node: usize, phases: [bool; 3], i: i64| {
        for n in up(site, node) {
            for p in 0..3 {
                if phases[p] {
                    loads[n][p] += i;
                }
            }
        }
    };
    for (node, load) in &site.base_load {
        for p in 0..3 {
            let mut ph = [false; 3];
            ph[p] = true;
            put(&mut fixed, *node, ph, load[p]);
        }
    }
    for f in &site.fixed {
        let c = &site.chargers[f.charger];
        put(&mut fixed, c.node, phases_of(c, None), f.current);
    }
    for o in &site.offline {
        let c = &site.chargers[o.charger];
        let holds = if site.now < o.lease_until {
            o.reserved.max(o.failsafe)
        } else {
            o.failsafe
        };
        put(&mut fixed, c.node, phases_of(c, None), holds);
    }
    for s in &site.sessions {
        if let Some(h) = s.held {
            let c = &site.chargers[s.charger];
            put(&mut fixed, c.node, phases_of(c, s.phases_used), h);
        }
    }
    let mut total = fixed.clone();
    for (s, (_, i)) in site.sessions.iter().zip(&a.currents) {
        if s.held.is_none() {
            let c = &site.chargers[s.charger];
            put(&mut total, c.node, phases_of(c, s.phases_used), *i);
        }
    }
    (fixed, total)
}

/// Whether `extra` more on a session's phases fits every node above it, given `total`.
fn fits(site: &Site, total: &[[i64; 3]], s: &Session, extra: i64) -> bool {
    let c = &site.chargers[s.charger];
    let phases = phases_of(c, s.phases_used);
    up(site, c.node).iter().all(|&n| {
        let node = &site.nodes[n];
        let per_phase = (0..3).all(|p| !phases[p] || total[n][p] + extra <= node.limit[p]);
        let count = phases.iter().filter(|on| **on).count() as i64;
        let power = node.power_cap_w.is_none_or(|cap| {
            total[n].iter().sum::<i64>() + extra * count <= deciamps_of_watts(cap, PHASE_VOLTS)
        });
        per_phase && power
    })
}

fn without(total: &[[i64; 3]], site: &Site, s: &Session, current: i64) -> Vec<[i64; 3]> {
    let mut t = total.to_vec();
    let c = &site.chargers[s.charger];
    let phases = phases_of(c, s.phases_used);
    for n in up(site, c.node) {
        for p in 0..3 {
            if phases[p] {
                t[n][p] -= current;
            }
        }
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// 1. No fuse is exceeded on any node and phase, nor any power cap, counting held
    /// commands at their higher value, offline chargers' reservations and fixed loads
    /// (what the allocator adds never goes over; what was over already gets nothing more).
    #[test]
    fn p01_no_fuse_is_ever_exceeded(site in site_strategy()) {
        let a = allocate(&site);
        let (fixed, total) = loads(&site, &a);
        for (n, node) in site.nodes.iter().enumerate() {
            for p in 0..3 {
                prop_assert!(total[n][p] <= node.limit[p].max(fixed[n][p]),
                    "node {n} phase {p}: {} > {}", total[n][p], node.limit[p]);
            }
            if let Some(cap) = node.power_cap_w {
                let allowed = deciamps_of_watts(cap, PHASE_VOLTS).max(fixed[n].iter().sum());
                prop_assert!(total[n].iter().sum::<i64>() <= allowed, "node {n} power");
            }
        }
    }

    /// 2. Every session is at 0 A or between its minimum and its maximum, on its steps.
    #[test]
    fn p02_every_session_is_paused_or_within_its_bounds(site in site_strategy()) {
        let a = allocate(&site);
        for (s, (id, i)) in site.sessions.iter().zip(&a.currents) {
            prop_assert_eq!(s.id, *id);
            match s.held {
                Some(h) => prop_assert_eq!(*i, h),
                None => prop_assert!(*i == 0
                    || (*i >= s.min && *i <= s.max && (*i - s.min) % s.step == 0),
                    "session {} at {} (min {}, max {}, step {})", s.id, i, s.min, s.max, s.step),
            }
        }
    }

    /// 3. Maximal: no paused session could be admitted, and no admitted one raised by one
    /// step, without breaking (1).
    #[test]
    fn p03_the_allocation_is_maximal(site in site_strategy()) {
        let a = allocate(&site);
        let (_, total) = loads(&site, &a);
        for (s, (_, i)) in site.sessions.iter().zip(&a.currents) {
            if s.held.is_some() {
                continue;
            }
            if *i == 0 {
                prop_assert!(usable_max(s) < s.min || !fits(&site, &total, s, s.min),
                    "paused session {} would fit", s.id);
            } else {
                prop_assert!(*i + s.step > s.max || !fits(&site, &total, s, s.step),
                    "session {} could be raised", s.id);
            }
        }
    }

    /// 4. Fair: equal-priority sessions with the same bottlenecks (the same charger, phases,
    /// minimum and step), neither at its maximum, differ by at most one step.
    #[test]
    fn p04_equal_sessions_differ_by_one_step_at_most(site in site_strategy()) {
        let a = allocate(&site);
        let live: Vec<(&Session, i64)> = site.sessions.iter().zip(&a.currents)
            .filter(|(s, (_, i))| s.held.is_none() && *i > 0 && *i + s.step <= s.max)
            .map(|(s, (_, i))| (s, *i))
            .collect();
        for (x, i) in &live {
            for (y, j) in &live {
                if x.charger == y.charger && x.priority == y.priority && x.step == y.step
                    && x.min == y.min && x.phases_used == y.phases_used {
                    prop_assert!((i - j).abs() <= x.step, "{} at {i}, {} at {j}", x.id, y.id);
                }
            }
        }
    }

    /// 5. Priority: a lower-priority session never runs while a higher-priority one that
    /// would fit in its place is paused.
    #[test]
    fn p05_priority_is_respected(site in site_strategy()) {
        let a = allocate(&site);
        let (_, total) = loads(&site, &a);
        for (h, (_, hi)) in site.sessions.iter().zip(&a.currents) {
            if h.held.is_some() || *hi > 0 || usable_max(h) < h.min {
                continue;
            }
            for (l, (_, li)) in site.sessions.iter().zip(&a.currents) {
                if l.held.is_none() && *li > 0 && l.priority < h.priority {
                    let freed = without(&total, &site, l, *li);
                    prop_assert!(!fits(&site, &freed, h, h.min),
                        "paused {} (priority {}) would fit in the place of {} (priority {})",
                        h.id, h.priority, l.id, l.priority);
                }
            }
        }
    }

    /// 6. After a stop, the freed capacity is handed out at the next run (one tick): the
    /// new allocation is maximal again, and nobody paused before is left paused if it fits.
    #[test]
    fn p06_a_stop_frees_capacity_within_one_tick(site in site_strategy(), pick in 0usize..12) {
        prop_assume!(!site.sessions.is_empty());
        let mut after = site.clone();
        after.sessions.remove(pick % site.sessions.len());
        let a = allocate(&after);
        let (_, total) = loads(&after, &a);
        for (s, (_, i)) in after.sessions.iter().zip(&a.currents) {
            if s.held.is_none() {
                let room = if *i == 0 { s.min } else { s.step };
                let capped = if *i == 0 { usable_max(s) < s.min } else { *i + s.step > s.max };
                prop_assert!(capped || !fits(&after, &total, s, room));
            }
        }
    }

    /// 7. An offline charger keeps its reservation until its lease ends, then its failsafe:
    /// the allocation is the one with that load fixed.
    #[test]
    fn p07_offline_reservations_hold_until_the_lease(site in site_strategy()) {
        let mut fixed = site.clone();
        fixed.offline.clear();
        for o in &site.offline {
            let holds = if site.now < o.lease_until { o.reserved.max(o.failsafe) } else { o.failsafe };
            fixed.fixed.push(Fixed { charger: o.charger, current: holds });
        }
        prop_assert_eq!(allocate(&site), allocate(&fixed));
    }

    /// 8. The failsafe currents alone fit every fuse and power cap with every charger
    /// offline; each is 0 or at least 6 A, in whole amperes.
    #[test]
    fn p08_failsafe_limits_alone_fit_every_fuse(site in site_strategy()) {
        let failsafe = failsafe_currents(&site.nodes, &site.chargers);
        let mut load = vec![[0i64; 3]; site.nodes.len()];
        for (c, f) in site.chargers.iter().zip(&failsafe) {
            prop_assert!(*f == 0 || (*f >= MIN_CURRENT && f % 10 == 0));
            let phases = phases_of(c, None);
            for n in up(&site, c.node) {
                for p in 0..3 {
                    if phases[p] {
                        load[n][p] += f;
                    }
                }
            }
        }
        for (node, on_node) in site.nodes.iter().zip(&load) {
            for (l, limit) in on_node.iter().zip(node.limit) {
                prop_assert!(*l <= limit);
            }
            if let Some(cap) = node.power_cap_w {
                prop_assert!(on_node.iter().sum::<i64>() <= deciamps_of_watts(cap, PHASE_VOLTS));
            }
        }
    }

    /// 9. A single-phase session loads only its phase (the one its charger's first phase is
    /// wired to); an unknown count loads all of the charger's phases.
    #[test]
    fn p09_phases_are_loaded_as_wired(
        rotation in prop_oneof![
            Just(vec![0usize, 1, 2]), Just(vec![1usize, 2, 0]), Just(vec![2usize, 0, 1]),
            (0usize..3).prop_map(|p| vec![p]),
        ],
        used in proptest::option::of(1usize..=3),
    ) {
        let c = Charger { node: 0, rotation: rotation.clone() };
        let loaded = phases_of(&c, used);
        let n = used.unwrap_or(rotation.len()).min(rotation.len());
        prop_assert_eq!(loaded.iter().filter(|on| **on).count(), n);
        for p in rotation.iter().take(n) {
            prop_assert!(loaded[*p]);
        }
        // And the allocator loads only those: a one-phase fuse elsewhere is untouched.
        let mut limit = [0i64; 3];
        for (p, on) in loaded.iter().enumerate() {
            if *on { limit[p] = 160; }
        }
        let site = Site {
            nodes: vec![Node { parent: None, limit, power_cap_w: None }],
            chargers: vec![c],
            sessions: vec![Session { id: 1, charger: 0, min: 60, max: 160, step: 10,
                priority: 0, last_served: 0, phases_used: used, held: None }],
            ..Site::default()
        };
        prop_assert_eq!(allocate(&site).currents, vec![(1, 160)]);
    }

    /// 10. Conversions between A and W never round up.
    #[test]
    fn p10_conversions_never_round_up(watts in 0i64..10_000_000, deciamps in 0i64..100_000,
                                      volts in 1i64..1000) {
        let a = deciamps_of_watts(watts, volts);
        prop_assert!(i128::from(a) * i128::from(volts) <= i128::from(watts) * 10);
        prop_assert!(watts_of_deciamps(a, volts) <= watts);
        let w = watts_of_deciamps(deciamps, volts);
        prop_assert!(i128::from(w) * 10 <= i128::from(deciamps) * i128::from(volts));
        prop_assert!(deciamps_of_watts(w, volts) <= deciamps);
    }
}

#[test]
fn decreases_are_sent_before_increases() {
    let old = [(1, 160), (2, 60), (3, 100)];
    let new = [(1, 100), (2, 120), (3, 100), (4, 60)];
    assert_eq!(send_order(&old, &new), vec![(1, 100), (2, 120), (4, 60)]);
}

#[test]
fn five_chargers_on_a_32_a_circuit_share_it() {
    let site = Site {
        nodes: vec![Node {
            parent: None,
            limit: [320; 3],
            power_cap_w: None,
        }],
        chargers: (0..5)
            .map(|_| Charger {
                node: 0,
                rotation: vec![0, 1, 2],
            })
            .collect(),
        sessions: (0..5)
            .map(|i| Session {
                id: i,
                charger: i as usize,
                min: 60,
                max: 160,
                step: 10,
                priority: 0,
                last_served: 0,
                phases_used: None,
                held: None,
            })
            .collect(),
        ..Site::default()
    };
    let a = allocate(&site);
    // 32 A among five: 6.4 A each, in whole amperes: 7, 7, 6, 6, 6 (two get the spare).
    let mut currents: Vec<i64> = a.currents.iter().map(|(_, c)| *c).collect();
    currents.sort_unstable();
    assert_eq!(currents, vec![60, 60, 60, 70, 70]);
    assert!(currents.iter().sum::<i64>() <= 320);
}
