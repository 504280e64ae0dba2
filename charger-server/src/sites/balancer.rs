//! Runs the allocator for each site and tells the chargers: on every start, stop and
//! placement change (a poke), and on a tick (leases are refreshed, offline chargers'
//! leases run out, paused sessions take their turn).
//!
//! One instance at a time allocates a site (a lease on the site's row). What each running
//! session was last given lives in the database (`site_allocations`), so another instance
//! takes over where a stopped one left off. A change is written before it is sent and
//! counts at the higher of its old and new current until the charger acknowledges it.
//! Decreases are sent, and answered, before any increase.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;
use serde_json::json;

use super::allocator::{self, DeciAmps};
use crate::error::Result;
use crate::ids::DeviceId;
use crate::records::devices::Protocol;
use crate::records::sites::{AllocationRow, Failsafe, PlacedCharger, SiteLoad};
use crate::service::{Principal, Service};

/// Default time between runs with nothing happening, in ms.
pub const TICK_MS_DEFAULT: u64 = 5_000;
/// Default time an admitted session keeps its current before a paused one of its
/// priority may take its turn, in s.
pub const ROTATE_S_DEFAULT: u64 = 300;
/// How far above what a car draws its limit stays when it draws less than it was given
/// (dA): the rest goes to others until the car draws close to its limit again.
pub const RECLAIM_MARGIN_DA: DeciAmps = 30;
/// How long a run waits for a charger's answer before it goes on (the answer is still
/// taken when it comes, within [`ANSWER_WAIT`]).
const PHASE_WAIT: Duration = Duration::from_secs(2);
/// How long the balancer waits for a charger's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// The balancer's state in one instance: who it is, and what changed since its last run.
pub struct Runtime {
    /// This instance's name in `sites.allocator`.
    pub instance: String,
    poke: tokio::sync::Notify,
    /// Chargers whose sessions changed, and sites that changed, since the last run.
    dirty: std::sync::Mutex<Dirty>,
    /// Sites being run now.
    running: std::sync::Mutex<std::collections::HashSet<i64>>,
    /// Limits on their way to a charger (its connector; 0: its default), not answered yet.
    sending: std::sync::Mutex<std::collections::HashSet<(DeviceId, i64)>>,
}

#[derive(Default)]
struct Dirty {
    chargers: std::collections::HashSet<DeviceId>,
    sites: std::collections::BTreeSet<i64>,
}

impl Default for Runtime {
    fn default() -> Self {
        let mut bytes = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
        Self {
            instance: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            poke: tokio::sync::Notify::new(),
            dirty: std::sync::Mutex::new(Dirty::default()),
            running: std::sync::Mutex::new(std::collections::HashSet::new()),
            sending: std::sync::Mutex::new(std::collections::HashSet::new()),
        }
    }
}

impl Runtime {
    /// Marks a limit to `key` as on its way; false when one already is.
    fn start_sending(&self, key: &(DeviceId, i64)) -> bool {
        self.sending.lock().is_ok_and(|mut s| s.insert(key.clone()))
    }

    fn done_sending(&self, key: &(DeviceId, i64)) {
        if let Ok(mut s) = self.sending.lock() {
            s.remove(key);
        }
    }

    fn take(&self) -> Dirty {
        match self.dirty.lock() {
            Ok(mut d) => std::mem::take(&mut *d),
            Err(_) => Dirty::default(),
        }
    }
}

/// A site as the allocator sees it, with which load point (charger and connector) each
/// of the allocator's chargers is.
pub struct Plan {
    pub input: allocator::Site,
    pub points: Vec<(DeviceId, i64)>,
    /// Each point's failsafe current, in dA.
    pub failsafe: Vec<DeciAmps>,
    /// The default limit each charger is to hold with no session profile, in dA.
    pub defaults: Vec<(DeviceId, DeciAmps)>,
    /// What each charger may hold now with no session profile (its acknowledged default,
    /// or its rating), in dA.
    pub holds: Vec<(DeviceId, DeciAmps)>,
    /// The least each may hold now with no session profile (its new default may be in
    /// force already), in dA.
    pub lows: Vec<(DeviceId, DeciAmps)>,
}

impl Plan {
    /// The allocator's input for `load` now (rotation: admitted sessions keep their turn
    /// for `rotate_ms`).
    pub fn of(load: &SiteLoad) -> Plan {
        Self::at(load, Utc::now(), ROTATE_S_DEFAULT as i64 * 1000)
    }

    pub fn at(load: &SiteLoad, now: DateTime<Utc>, rotate_ms: i64) -> Plan {
        let index: std::collections::HashMap<i64, usize> = load
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id, i))
            .collect();
        let nodes = load
            .nodes
            .iter()
            .map(|n| allocator::Node {
                parent: n.parent.and_then(|p| index.get(&p).copied()),
                limit: n.limit_da,
                power_cap_w: n.power_cap_w,
            })
            .collect::<Vec<_>>();
        // Each connector is a load point on its charger's node, wired as the charger.
        let mut points = Vec::new();
        let mut chargers = Vec::new();
        for c in &load.chargers {
            let Some(&node) = index.get(&c.placement.node) else {
                continue;
            };
            for connector in 1..=c.connector_count.max(1) {
                points.push((c.placement.device.clone(), connector));
                chargers.push(allocator::Charger {
                    node,
                    rotation: c
                        .placement
                        .rotation
                        .iter()
                        .map(|p| usize::from(p.saturating_sub(1)))
                        .collect(),
                });
            }
        }
        let charger_of =
            |device: &DeviceId| load.chargers.iter().find(|c| &c.placement.device == device);
        let failsafe = failsafe_of_points(&nodes, &chargers, |i| {
            // A charger that has not taken its default may draw its rating.
            charger_of(&points[i].0)
                .filter(|c| c.placement.default_da.is_none())
                .map(|c| c.placement.max_current_da)
        });
        let default_of = |c: &PlacedCharger, fs: DeciAmps| match load.site.failsafe {
            Failsafe::Zero => 0,
            Failsafe::Reserve => fs.min(c.placement.max_current_da),
        };
        // What a charger holds with no session profile now: the default it acknowledged,
        // or its rating when it never acknowledged one (it charges unconstrained); while a
        // new default is on its way, the higher of the two.
        let hold_of = |c: &PlacedCharger, fs: DeciAmps| {
            c.placement
                .default_da
                .unwrap_or(c.placement.max_current_da)
                .max(default_of(c, fs))
        };
        let now_ms = now.timestamp_millis();
        let mut sessions = Vec::new();
        let mut fixed = Vec::new();
        let mut offline = Vec::new();
        for (i, (device, connector)) in points.iter().enumerate() {
            let Some(c) = charger_of(device) else {
                continue;
            };
            let hold = hold_of(c, failsafe[i]);
            let session = load
                .sessions
                .iter()
                .find(|s| &s.device == device && s.connector == *connector);
            let row = session.and_then(|s| load.allocations.iter().find(|a| a.session == s.id));
            match (c.online, session) {
                (true, Some(s)) => {
                    let held = row
                        .filter(|r| !r.acked)
                        .map(|r| r.current_da.max(r.previous_da));
                    let switched = row.map_or(now_ms, |r| r.served_at.timestamp_millis());
                    let last_served = match row {
                        // Admitted, within its turn: kept.
                        Some(r) if r.current_da > 0 && now_ms - switched < rotate_ms => i64::MIN,
                        // Admitted past its turn: the most recently served.
                        Some(r) if r.current_da > 0 => now_ms,
                        // Paused (or new): waiting since then.
                        _ => switched,
                    };
                    // A car that draws under what it was given (by more than 1 A) is held
                    // near what it draws (never raised by that); once it draws all it is
                    // given, the cap is lifted.
                    let max = match row.and_then(|r| r.drawn_da.map(|d| (r.current_da, d))) {
                        Some((given, drawn)) if given > 0 && drawn + 10 < given => (drawn
                            + RECLAIM_MARGIN_DA)
                            .min(given)
                            .clamp(allocator::MIN_CURRENT, c.placement.max_current_da),
                        _ => c.placement.max_current_da,
                    };
                    sessions.push(allocator::Session {
                        id: u64::try_from(s.id).unwrap_or(0),
                        charger: i,
                        min: allocator::MIN_CURRENT,
                        max,
                        step: 10,
                        priority: c.placement.priority,
                        last_served,
                        phases_used: None,
                        held,
                    });
                }
                (true, None) => fixed.push(allocator::Fixed {
                    charger: i,
                    current: hold,
                }),
                // Offline with a session: what it was last sent until that lease ends, then
                // what that limit holds after its lease (never more than before). Not
                // acknowledged: the previous limit may be the one it holds.
                (false, Some(_)) => offline.push(match row {
                    Some(r) => allocator::Offline {
                        charger: i,
                        reserved: if r.acked {
                            r.current_da
                        } else {
                            r.current_da.max(r.previous_da)
                        },
                        lease_until: r.lease_until.timestamp_millis(),
                        failsafe: if r.acked {
                            r.failsafe_da
                        } else {
                            r.failsafe_da.max(r.previous_da)
                        },
                    },
                    None => allocator::Offline {
                        charger: i,
                        reserved: hold,
                        lease_until: 0,
                        failsafe: hold,
                    },
                }),
                (false, None) => offline.push(allocator::Offline {
                    charger: i,
                    reserved: hold,
                    lease_until: 0,
                    failsafe: hold,
                }),
            }
        }
        let fs_of = |c: &PlacedCharger| {
            points
                .iter()
                .position(|(d, _)| *d == c.placement.device)
                .map_or(0, |i| failsafe[i])
        };
        let defaults = load
            .chargers
            .iter()
            .map(|c| (c.placement.device.clone(), default_of(c, fs_of(c))))
            .collect();
        let holds = load
            .chargers
            .iter()
            .map(|c| (c.placement.device.clone(), hold_of(c, fs_of(c))))
            .collect();
        // The least it may hold: the default it was sent may be in force already.
        let lows = load
            .chargers
            .iter()
            .map(|c| {
                let held = c.placement.default_da.unwrap_or(c.placement.max_current_da);
                (
                    c.placement.device.clone(),
                    held.min(default_of(c, fs_of(c))),
                )
            })
            .collect();
        Plan {
            input: allocator::Site {
                nodes,
                chargers,
                sessions,
                fixed,
                offline,
                base_load: Vec::new(),
                now: now_ms,
            },
            points,
            failsafe,
            defaults,
            holds,
            lows,
        }
    }

    /// The failsafe current of a charger's connector, in dA (0 when it is not placed).
    pub fn failsafe_of(&self, device: &DeviceId, connector: i64) -> DeciAmps {
        self.points
            .iter()
            .position(|(d, c)| d == device && *c == connector)
            .map_or(0, |i| self.failsafe[i])
    }
}

impl Service {
    /// A charger's sessions changed (a start, a stop, a boot): its site, if any, is run
    /// again soon.
    pub(crate) fn charger_changed(&self, device: &DeviceId) {
        if let Ok(mut d) = self.sites.dirty.lock() {
            d.chargers.insert(device.clone());
        }
        self.sites.poke.notify_one();
    }

    /// A site changed (its tree, its chargers): it is run again soon.
    pub(crate) fn site_changed(&self, site: i64) {
        if let Ok(mut d) = self.sites.dirty.lock() {
            d.sites.insert(site);
        }
        self.sites.poke.notify_one();
    }

    /// Runs the sites that changed since the last run.
    async fn balance_changed(&self) -> Result<()> {
        let dirty = self.sites.take();
        let mut sites = dirty.sites;
        if !dirty.chargers.is_empty() {
            // One query for every charger whose sessions changed since the last run (one
            // per charger was a query per session start and stop, sites or none).
            let chargers: Vec<DeviceId> = dirty.chargers.into_iter().collect();
            sites.extend(self.store.sites_of(&chargers).await?);
        }
        for site in sites {
            self.spawn_site(site);
        }
        self.lift_leaving().await
    }

    /// Runs every site this instance may allocate (each in a task of its own, so that a
    /// slow charger on one site delays no other), and lifts the limits of chargers that
    /// left their sites.
    pub async fn balance_sites(&self) -> Result<()> {
        for site in self.store.sites_with_chargers().await? {
            self.spawn_site(site);
        }
        self.lift_leaving().await
    }

    /// Runs `site` in a task of its own, unless a run of it is under way.
    fn spawn_site(&self, site: i64) {
        match self.sites.running.lock() {
            Ok(mut running) => {
                if !running.insert(site) {
                    return;
                }
            }
            Err(_) => return,
        }
        let service = self.clone();
        tokio::spawn(async move {
            if let Err(e) = service.balance_site(site).await {
                tracing::warn!(site, error = %e, "cannot balance a site");
            }
            if let Ok(mut running) = service.sites.running.lock() {
                running.remove(&site);
            }
        });
    }

    /// Lifts the limits of the chargers that left their sites and are connected; forgets
    /// them once done (a charger offline now is tried again on a later run).
    async fn lift_leaving(&self) -> Result<()> {
        for device in self.store.leaving_chargers().await? {
            if self.lift_limits(&device).await {
                self.store.forget_leaving(&device).await?;
            }
        }
        Ok(())
    }

    /// Allocates one site and tells its chargers, if no other instance holds it.
    pub async fn balance_site(&self, site: i64) -> Result<()> {
        let now = self.now();
        let tick = Duration::from_millis(self.limits.site_tick_ms.max(100));
        // Long enough for a run whose chargers answer slowly (decreases, then increases).
        let hold = chrono::Duration::from_std(tick * 3 + ANSWER_WAIT * 3)
            .unwrap_or(chrono::Duration::seconds(45));
        if !self
            .store
            .claim_site(site, &self.sites.instance, now + hold, now)
            .await?
        {
            return Ok(());
        }
        self.store.prune_allocations(site).await?;
        let Some(load) = self.store.site_load(site).await? else {
            return Ok(());
        };
        let rotate_ms =
            i64::try_from(self.limits.site_rotate_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let plan = Plan::at(&load, now, rotate_ms);
        let lease_s = load.site.lease_s;
        // Default limits first: what an idle connector (and a session the server has not
        // seen yet) holds.
        // Default limits (what an idle connector, and a session not seen yet, holds) go
        // with the sessions' limits: a lower one with the decreases, a higher one with the
        // increases. Until taken, a charger counts at the higher of its old and new default.
        let defaults: Vec<(&PlacedCharger, DeciAmps, bool)> = load
            .chargers
            .iter()
            .filter(|c| c.online)
            .filter_map(|c| {
                let want = plan
                    .defaults
                    .iter()
                    .find(|(d, _)| *d == c.placement.device)
                    .map_or(0, |(_, v)| *v);
                let holds = c.placement.default_da.unwrap_or(c.placement.max_current_da);
                (c.placement.default_da != Some(want)).then_some((c, want, want > holds))
            })
            .collect();
        let allocation = allocator::allocate(&plan.input);
        tracing::debug!(site, currents = ?allocation.currents, input = ?plan.input.sessions.iter().map(|s| (s.id, s.held)).collect::<Vec<_>>(), fixed = ?plan.input.fixed, offline = ?plan.input.offline, "site allocated");
        let old: Vec<(u64, DeciAmps)> = plan
            .input
            .sessions
            .iter()
            .map(|s| {
                let id = i64::try_from(s.id).unwrap_or(0);
                let was = load
                    .allocations
                    .iter()
                    .find(|a| a.session == id)
                    .map(|a| a.current_da);
                (s.id, was.unwrap_or_else(|| plan.holding(s.charger)))
            })
            .collect();
        let held: Vec<u64> = plan
            .input
            .sessions
            .iter()
            .filter(|s| s.held.is_some())
            .map(|s| s.id)
            .collect();
        let changes: Vec<(u64, DeciAmps)> = allocator::send_order(&old, &allocation.currents)
            .into_iter()
            .filter(|(id, _)| !held.contains(id))
            .collect();
        let lease = chrono::Duration::seconds(lease_s);
        let mut refresh: Vec<(u64, DeciAmps)> = Vec::new();
        // A session never given a limit gets one even when its default was already that
        // much: its own profile carries its lease and failsafe.
        for (id, current) in &allocation.currents {
            let sid = i64::try_from(*id).unwrap_or(0);
            let known = load.allocations.iter().any(|a| a.session == sid);
            if !known && !held.contains(id) && !changes.iter().any(|(c, _)| c == id) {
                refresh.push((*id, *current));
            }
        }
        for row in &load.allocations {
            let id = u64::try_from(row.session).unwrap_or(0);
            let Some(s) = plan.input.sessions.iter().find(|s| s.id == id) else {
                continue;
            };
            let changing = changes.iter().any(|(c, _)| *c == id);
            // An unacknowledged change is sent again; a lease past its half is renewed; a
            // failsafe that changed with the site is sent at once.
            let failsafe = row.current_da.min(plan.failsafe[s.charger]);
            let stale = row.failsafe_da != failsafe;
            if !changing && (!row.acked || stale || row.lease_until - now < lease / 2) {
                refresh.push((id, row.current_da));
            }
        }
        // Decreases (and renewals) first, all at once; increases only once every one of
        // them was acknowledged. A limit is a decrease only if it is no more than the least
        // the charger may hold now (an unacknowledged limit or default may or may not be in
        // force).
        let was_of = |id: u64| old.iter().find(|(o, _)| *o == id).map_or(0, |(_, c)| *c);
        let low_of = |id: u64| {
            let sid = i64::try_from(id).unwrap_or(0);
            match load.allocations.iter().find(|a| a.session == sid) {
                Some(r) if r.acked => r.current_da,
                Some(r) => r.current_da.min(r.previous_da),
                None => plan
                    .input
                    .sessions
                    .iter()
                    .find(|s| s.id == id)
                    .map_or(0, |s| plan.lowest(s.charger)),
            }
        };
        let (increases, decreases): (Vec<_>, Vec<_>) = changes
            .iter()
            .chain(refresh.iter())
            .partition(|(id, current)| *current > low_of(*id));
        // One batch: the sessions' limits and the defaults going the same way, each with
        // whether the increases rely on it. The allocation counted idle connectors at the
        // most they may hold and unchanged sessions as they were: only the sessions' own
        // decreases are relied on (a silent charger's default or renewal holds up nothing).
        let batch = |items: &[&(u64, DeciAmps)], up: bool| {
            let sessions = items.iter().map(|(id, current)| {
                let sent: BoxFuture<'_, Result<bool>> = self
                    .send_allocation(&load, &plan, *id, *current, was_of(*id), now)
                    .boxed();
                (sent, *current < was_of(*id))
            });
            let defaults = defaults
                .iter()
                .filter(move |(_, _, u)| *u == up)
                .map(|(c, want, _)| (self.tell_default(c, *want, lease_s), false));
            sessions.chain(defaults).collect::<Vec<_>>()
        };
        if self.send_batch(batch(&decreases, false)).await? {
            self.send_batch(batch(&increases, true)).await?;
        }
        self.check_one_schedule(&load).await?;
        Ok(())
    }

    /// Sends a batch of limits at once; whether every one the next batch relies on was
    /// acknowledged.
    async fn send_batch(&self, batch: Vec<(BoxFuture<'_, Result<bool>>, bool)>) -> Result<bool> {
        let (sent, relied): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let mut all_acked = true;
        for (done, relied) in futures_util::future::join_all(sent)
            .await
            .into_iter()
            .zip(relied)
        {
            all_acked &= done? || !relied;
        }
        Ok(all_acked)
    }

    /// Asks one OCPP charger of the site that holds an acknowledged session profile and
    /// was not checked since its boot or placement for its composite schedule: a first
    /// period above what its session was given means its profiles stack otherwise than
    /// the server's (another profile of a higher stack level, a TxDefault it kept): it is
    /// flagged `wrong` (logged, shown on the site). One charger a run.
    async fn check_one_schedule(&self, load: &SiteLoad) -> Result<()> {
        let candidate = load.sessions.iter().find_map(|s| {
            let c = load.chargers.iter().find(|c| {
                c.placement.device == s.device
                    && c.online
                    && c.protocol.is_ocpp()
                    && c.placement.schedule_check.is_none()
            })?;
            let row = load
                .allocations
                .iter()
                .find(|a| a.session == s.id && a.acked && a.current_da > 0)?;
            Some((c, s, row.current_da))
        });
        let Some((c, s, given)) = candidate else {
            return Ok(());
        };
        let data = match c.protocol {
            Protocol::Ocpp201 => json!({"evseId": s.connector, "duration": load.site.lease_s,
                                        "chargingRateUnit": "A"}),
            _ => json!({"connectorId": s.connector, "duration": load.site.lease_s,
                        "chargingRateUnit": "A"}),
        };
        let Ok(Some(d)) = self.store.get_device(&s.device).await else {
            return Ok(());
        };
        let timeout = u64::try_from(ANSWER_WAIT.as_millis()).ok();
        let answer = match self
            .command_to(
                &Principal::Admin,
                &d,
                "get-composite-schedule",
                &data,
                timeout,
            )
            .await
        {
            Ok(r) => r.answer,
            // Not answered: asked again on a later run.
            Err(_) => return Ok(()),
        };
        let check = schedule_check(&answer, given);
        if check == "wrong" {
            tracing::warn!(device = %s.device, given_da = given, "a charger's composite schedule allows more than it was given: check its charging profiles");
        }
        self.store.set_schedule_check(&s.device, check).await?;
        Ok(())
    }

    /// Gives a charger its default limit and notes it once taken; whether it took it.
    fn tell_default<'a>(
        &'a self,
        c: &'a PlacedCharger,
        want: DeciAmps,
        lease_s: i64,
    ) -> BoxFuture<'a, Result<bool>> {
        let data = default_limit(c.protocol, want, lease_s);
        let key = (c.placement.device.clone(), 0);
        async move {
            if !self.sites.start_sending(&key) {
                return Ok(false);
            }
            let device = key.0.clone();
            Ok(self
                .send_bounded(key, c.protocol, data, move |service| {
                    async move { service.store.set_default_limit(&device, Some(want)).await }
                        .boxed()
                })
                .await)
        }
        .boxed()
    }

    /// Writes a session's new current, tells its charger, and notes the answer; whether
    /// the charger acknowledged it.
    async fn send_allocation(
        &self,
        load: &SiteLoad,
        plan: &Plan,
        id: u64,
        current: DeciAmps,
        was: DeciAmps,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let sid = i64::try_from(id).unwrap_or(0);
        let Some(session) = load.sessions.iter().find(|s| s.id == sid) else {
            return Ok(false);
        };
        let Some(c) = load
            .chargers
            .iter()
            .find(|c| c.placement.device == session.device)
        else {
            return Ok(false);
        };
        let row = load.allocations.iter().find(|a| a.session == sid);
        let switched = match row {
            Some(r) if (r.current_da > 0) == (current > 0) => r.served_at,
            _ => now,
        };
        let previous = row.map_or(was, |r| {
            if r.acked {
                r.current_da
            } else {
                r.current_da.max(r.previous_da)
            }
        });
        // What it holds after the lease: its failsafe, but never more than it is given now,
        // so that no charger steps up while others are still above their failsafe.
        let failsafe = current.min(plan.failsafe_of(&session.device, session.connector));
        let new = AllocationRow {
            drawn_da: None,
            failsafe_da: failsafe,
            session: sid,
            current_da: current,
            previous_da: previous,
            acked: false,
            lease_until: now + chrono::Duration::seconds(load.site.lease_s),
            served_at: switched,
        };
        let key = (session.device.clone(), session.connector);
        tracing::debug!(session = sid, current, was, previous, "site limit");
        if !self.sites.start_sending(&key) {
            tracing::debug!(session = sid, "site limit still on its way: not sent");
            // Its last limit is still on its way: counted as it is, sent again next run.
            return Ok(false);
        }
        if let Err(e) = self.store.write_allocation(load.site.id, &new).await {
            self.sites.done_sending(&key);
            return Err(e.into());
        }
        let data = session_limit(
            c.protocol,
            session,
            current,
            failsafe,
            load.site.lease_s,
            now,
        );
        let (protocol, lease_until) = (c.protocol, new.lease_until);
        Ok(self
            .send_bounded(key, protocol, data, move |service| {
                async move {
                    // Only the limit sent is acknowledged (a newer one may have been written).
                    service
                        .store
                        .ack_allocation(sid, current, lease_until)
                        .await
                }
                .boxed()
            })
            .await)
    }

    /// Sends `data` to a charger in a task of its own and waits for its answer at most
    /// [`PHASE_WAIT`]: a charger that answers later (or never) holds up no run. `ack` runs
    /// when the charger accepts, whenever that is. Whether it accepted within the wait.
    async fn send_bounded(
        &self,
        key: (DeviceId, i64),
        protocol: Protocol,
        data: serde_json::Value,
        ack: impl FnOnce(Service) -> BoxFuture<'static, crate::store::StoreResult<()>> + Send + 'static,
    ) -> bool {
        let service = self.clone();
        let task = tokio::spawn(async move {
            let ok = service.tell(&key.0, protocol, data).await;
            if ok {
                if let Err(e) = ack(service.clone()).await {
                    tracing::warn!(device = %key.0, error = %e, "a site limit's acknowledgement was not written");
                }
            }
            service.sites.done_sending(&key);
            ok
        });
        matches!(tokio::time::timeout(PHASE_WAIT, task).await, Ok(Ok(true)))
    }

    /// Lifts the limits of a charger taken off its site: an OCPP charger's default and
    /// session profiles are cleared (by purpose), a MyBox charger is given its largest
    /// limit; whether the charger took it (it is tried again on a later run otherwise).
    pub(crate) async fn lift_limits(&self, device: &DeviceId) -> bool {
        let Ok(Some(d)) = self.store.get_device(device).await else {
            // Gone altogether: nothing to lift.
            return true;
        };
        let most = super::MAX_CHARGER_A;
        let calls = match d.protocol {
            Protocol::Mybox => vec![(
                "charging-limit",
                json!({"limits_a": [most, most, most], "lease_s": 86_400, "failsafe_a": most}),
            )],
            Protocol::Ocpp16 => ["TxDefaultProfile", "TxProfile"]
                .map(|p| {
                    (
                        "clear-charging-profile",
                        json!({"chargingProfilePurpose": p}),
                    )
                })
                .to_vec(),
            Protocol::Ocpp201 => ["TxDefaultProfile", "TxProfile"]
                .map(|p| {
                    (
                        "clear-charging-profile",
                        json!({"chargingProfileCriteria": {"chargingProfilePurpose": p}}),
                    )
                })
                .to_vec(),
        };
        let timeout = u64::try_from(ANSWER_WAIT.as_millis()).ok();
        for (command, data) in calls {
            match self
                .command_to(&Principal::Admin, &d, command, &data, timeout)
                .await
            {
                // Unknown: there was no such profile.
                Ok(r)
                    if matches!(
                        r.answer["status"].as_str(),
                        Some("accepted" | "Accepted" | "Unknown")
                    ) => {}
                Ok(_) => return false,
                Err(e) => {
                    tracing::debug!(device = %device, error = %e, "a charger off its site was not told yet");
                    return false;
                }
            }
        }
        true
    }

    /// Sends a limit to a charger; whether it accepted it.
    async fn tell(&self, device: &DeviceId, protocol: Protocol, data: serde_json::Value) -> bool {
        let command = match protocol {
            Protocol::Mybox => "charging-limit",
            Protocol::Ocpp16 | Protocol::Ocpp201 => "set-charging-profile",
        };
        let Ok(Some(d)) = self.store.get_device(device).await else {
            return false;
        };
        let timeout = u64::try_from(ANSWER_WAIT.as_millis()).ok();
        match self
            .command_to(&Principal::Admin, &d, command, &data, timeout)
            .await
        {
            Ok(r) => {
                let ok = r.answer["status"]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case("accepted"));
                crate::metrics::site_command(ok);
                ok
            }
            Err(e) => {
                tracing::debug!(device = %device, error = %e, "a site limit was not delivered");
                crate::metrics::site_command(false);
                false
            }
        }
    }
}

impl Plan {
    /// What a session's load point may hold before the server gave it anything: its
    /// charger's acknowledged default, or its rating.
    fn lowest(&self, point: usize) -> DeciAmps {
        let device = &self.points[point].0;
        self.lows
            .iter()
            .find(|(d, _)| d == device)
            .map_or(0, |(_, v)| *v)
    }

    fn holding(&self, point: usize) -> DeciAmps {
        let device = &self.points[point].0;
        self.holds
            .iter()
            .find(|(d, _)| d == device)
            .map_or(0, |(_, v)| *v)
    }
}

/// The failsafe current of each load point: each node shared among the points under it
/// ([`allocator::failsafe_currents`]), after taking out on every node above it the rating
/// of each point that may draw it (`rating_of` is Some: a charger that has not taken its
/// default). Those points keep the share they will have once they take it.
fn failsafe_of_points(
    nodes: &[allocator::Node],
    chargers: &[allocator::Charger],
    rating_of: impl Fn(usize) -> Option<DeciAmps>,
) -> Vec<DeciAmps> {
    let all = allocator::failsafe_currents(nodes, chargers);
    let ratings: Vec<Option<DeciAmps>> = (0..chargers.len()).map(&rating_of).collect();
    if ratings.iter().all(Option::is_none) {
        return all;
    }
    let mut left = nodes.to_vec();
    for (ch, rating) in chargers.iter().zip(&ratings) {
        let Some(rating) = rating else { continue };
        let phases = allocator::phases_of(ch, None);
        let loaded = phases.iter().filter(|p| **p).count();
        let watts = allocator::watts_of_deciamps(
            rating.saturating_mul(i64::try_from(loaded).unwrap_or(3)),
            allocator::PHASE_VOLTS,
        );
        let mut node = Some(ch.node);
        while let Some(k) = node {
            let Some(n) = left.get_mut(k) else { break };
            for (p, on) in phases.iter().enumerate() {
                if *on {
                    n.limit[p] = (n.limit[p] - rating).max(0);
                }
            }
            if let Some(cap) = n.power_cap_w.as_mut() {
                *cap = (*cap - watts).max(0);
            }
            node = n.parent;
        }
    }
    let taking: Vec<allocator::Charger> = chargers
        .iter()
        .zip(&ratings)
        .filter(|(_, r)| r.is_none())
        .map(|(c, _)| c.clone())
        .collect();
    let mut shares = allocator::failsafe_currents(&left, &taking).into_iter();
    ratings
        .iter()
        .zip(all)
        .map(|(r, share)| match r {
            Some(_) => share,
            None => shares.next().unwrap_or(0),
        })
        .collect()
}

/// What a GetCompositeSchedule answer shows against `given` (dA): `ok` when its first
/// period's limit (in A) is at most that, `wrong` when above, `unknown` when it has no
/// schedule in amperes (Rejected, or in W).
fn schedule_check(answer: &serde_json::Value, given: DeciAmps) -> &'static str {
    use std::str::FromStr as _;
    let schedule = if answer.get("schedule").is_some() {
        &answer["schedule"]
    } else {
        &answer["chargingSchedule"]
    };
    if !answer["status"]
        .as_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("accepted"))
        || schedule["chargingRateUnit"] != "A"
    {
        return "unknown";
    }
    let limit = schedule["chargingSchedulePeriod"][0]["limit"]
        .as_number()
        .and_then(|n| rust_decimal::Decimal::from_str(&n.to_string()).ok());
    match limit {
        Some(a) if a * rust_decimal::Decimal::TEN <= rust_decimal::Decimal::from(given) => "ok",
        Some(_) => "wrong",
        None => "unknown",
    }
}

/// Whole amperes of a current in dA (currents the balancer sends are whole amperes).
fn amps(da: DeciAmps) -> i64 {
    da.max(0) / 10
}

/// The default limit a charger holds with no session profile, as its protocol says it.
fn default_limit(protocol: Protocol, da: DeciAmps, lease_s: i64) -> serde_json::Value {
    let a = amps(da);
    match protocol {
        Protocol::Mybox => json!({
            "limits_a": [a, a, a], "lease_s": lease_s, "failsafe_a": a
        }),
        Protocol::Ocpp16 => json!({
            "connectorId": 0,
            "csChargingProfiles": {
                "chargingProfileId": 1, "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": a}]
                }
            }
        }),
        Protocol::Ocpp201 => json!({
            "evseId": 0,
            "chargingProfile": {
                "id": 1, "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": [{
                    "id": 1, "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": a}]
                }]
            }
        }),
    }
}

/// A running session's limit until the lease ends, then the failsafe, as its charger's
/// protocol says it.
fn session_limit(
    protocol: Protocol,
    session: &crate::records::sites::SiteSession,
    da: DeciAmps,
    failsafe: DeciAmps,
    lease_s: i64,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let (a, f) = (amps(da), amps(failsafe));
    // Profile 1 is the default; a session's is 2 and up.
    let profile = 2 + session.id.rem_euclid(2_000_000_000);
    let start = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let periods = json!([{"startPeriod": 0, "limit": a}, {"startPeriod": lease_s, "limit": f}]);
    match protocol {
        Protocol::Mybox => json!({
            "connector": session.connector,
            "limits_a": [a, a, a], "lease_s": lease_s, "failsafe_a": f
        }),
        Protocol::Ocpp16 => json!({
            "connectorId": session.connector,
            "csChargingProfiles": {
                "chargingProfileId": profile, "transactionId": session.id, "stackLevel": 0,
                "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": {
                    "startSchedule": start, "chargingRateUnit": "A",
                    "chargingSchedulePeriod": periods
                }
            }
        }),
        Protocol::Ocpp201 => json!({
            "evseId": session.connector,
            "chargingProfile": {
                "id": profile, "stackLevel": 0,
                "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Absolute",
                "transactionId": session
                    .local_id
                    .as_deref()
                    .and_then(crate::records::charging::station_transaction)
                    .unwrap_or_default(),
                "chargingSchedule": [{
                    "id": 1, "startSchedule": start, "chargingRateUnit": "A",
                    "chargingSchedulePeriod": periods
                }]
            }
        }),
    }
}

/// Runs the balancer: at every poke (after a short pause, so that a burst of starts is
/// one run) and every tick, until `stop` turns true.
pub async fn run(service: Service, mut stop: tokio::sync::watch::Receiver<bool>) {
    let tick = Duration::from_millis(service.limits.site_tick_ms.max(100));
    let runtime = Arc::clone(&service.sites);
    let mut next_tick = tokio::time::Instant::now() + tick;
    loop {
        let poked = tokio::select! {
            () = runtime.poke.notified() => {
                // A burst of starts is one run; what is committed by then is seen.
                tokio::time::sleep(Duration::from_millis(50)).await;
                true
            }
            () = tokio::time::sleep_until(next_tick) => false,
            _ = stop.changed() => return,
        };
        if *stop.borrow() {
            return;
        }
        let done = if poked {
            service.balance_changed().await
        } else {
            next_tick = tokio::time::Instant::now() + tick;
            service.balance_sites().await
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "cannot balance sites");
        }
    }
}
