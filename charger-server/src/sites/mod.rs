//! Site load management: many chargers on one connection, never over any fuse.
//!
//! [`allocator`] is the pure function at its heart (property-tested in
//! `allocator_props.rs`); [`balancer`] runs it for each site and tells the chargers;
//! this module manages sites over the service (owner-scoped like everything else).
//! `docs/load-management.md` has the model, the failsafe and the invariants.

pub mod allocator;
pub mod balancer;

#[cfg(test)]
mod allocator_props;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{DeviceId, OwnerId};
pub use crate::records::sites::{AllocationRow, Failsafe, Placement, Site, SiteNode};
use crate::service::{Principal, Service};

/// The largest current limit a node may have per phase, in A.
pub const MAX_LIMIT_A: u32 = 6300;
/// Default lease: how long a charger holds its allocation without the server, in s.
pub const LEASE_S_DEFAULT: i64 = 300;
/// Shortest and longest lease, in s.
pub const LEASE_S_RANGE: std::ops::RangeInclusive<i64> = 10..=3600;
/// The largest current a charger's connector may be given, in A.
pub const MAX_CHARGER_A: u32 = 500;

/// A node's limits as the caller gives them: whole amperes per site phase, an optional
/// power cap, and how much of them may be used (a derating, in percent, rounding down).
#[derive(Debug)]
pub struct NodeLimits {
    pub limits_a: [u32; 3],
    pub power_cap_w: Option<i64>,
    pub derating_percent: Option<u32>,
}

impl NodeLimits {
    /// The limits in dA, derated, rounding down.
    fn deciamps(&self) -> Result<([i64; 3], Option<i64>)> {
        let percent = self.derating_percent.unwrap_or(100);
        if !(1..=100).contains(&percent) {
            return Err(Error::invalid("derating_percent", "must be 1 to 100"));
        }
        if self.limits_a.iter().any(|a| *a > MAX_LIMIT_A) {
            return Err(Error::invalid("limits_a", "must be 0 to 6300 A per phase"));
        }
        if let Some(cap) = self.power_cap_w {
            if !(0..=100_000_000).contains(&cap) {
                return Err(Error::invalid("power_cap_w", "must be 0 to 100000000 W"));
            }
        }
        let da = self
            .limits_a
            .map(|a| i64::from(a) * 10 * i64::from(percent) / 100);
        let cap = self.power_cap_w.map(|w| w * i64::from(percent) / 100);
        Ok((da, cap))
    }
}

/// `POST /api/v1/sites`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSiteRequest {
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub owner: Option<OwnerId>,
    pub name: String,
    /// The connection's limits (see [`NodeLimits`]).
    pub limits_a: [u32; 3],
    #[serde(default)]
    pub power_cap_w: Option<i64>,
    #[serde(default)]
    pub derating_percent: Option<u32>,
    pub failsafe: Failsafe,
    #[serde(default)]
    pub lease_s: Option<i64>,
}

/// `POST /api/v1/sites/{id}/nodes` (with `parent`) and `PATCH .../nodes/{node}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRequest {
    #[serde(default)]
    pub parent: Option<i64>,
    pub name: String,
    pub limits_a: [u32; 3],
    #[serde(default)]
    pub power_cap_w: Option<i64>,
    #[serde(default)]
    pub derating_percent: Option<u32>,
}

impl NodeRequest {
    fn limits(&self) -> NodeLimits {
        NodeLimits {
            limits_a: self.limits_a,
            power_cap_w: self.power_cap_w,
            derating_percent: self.derating_percent,
        }
    }
}

/// `PUT /api/v1/devices/{id}/site`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceRequest {
    pub site: i64,
    pub node: i64,
    /// The site phase each of the charger's phases is wired to, in its order
    /// (`["L2", "L3", "L1"]`; one for a single-phase charger).
    pub rotation: Vec<String>,
    pub max_current_a: u32,
    #[serde(default)]
    pub priority: i32,
}

/// A site as the API shows it: its tree, its chargers, and what each running session
/// was given.
#[derive(Debug, Clone, Serialize)]
pub struct SiteView {
    #[serde(flatten)]
    pub site: Site,
    pub nodes: Vec<NodeView>,
    pub chargers: Vec<PlacementView>,
    pub sessions: Vec<SessionAllocation>,
}

/// A node with what its sessions are given now, per site phase (dA).
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub node: SiteNode,
    pub given_da: [i64; 3],
}

/// A charger on a site.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementView {
    pub device: DeviceId,
    pub node: i64,
    pub rotation: Vec<String>,
    pub max_current_da: i64,
    pub priority: i32,
    pub online: bool,
    /// What it holds with the server gone (dA, per phase it loads).
    pub failsafe_da: i64,
    /// OCPP: what its composite schedule showed once it held a session's profile: `ok`,
    /// `wrong` (it would draw more than it was given), `unknown`; absent: not checked yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_check: Option<String>,
}

/// What a running session on a site is given.
#[derive(Debug, Clone, Serialize)]
pub struct SessionAllocation {
    pub session: i64,
    pub device: DeviceId,
    pub connector: i64,
    /// dA per phase it loads; 0: paused. None: not allocated yet.
    pub current_da: Option<i64>,
    pub paused: bool,
    /// The charger acknowledged it.
    pub acked: bool,
    pub lease_until: Option<chrono::DateTime<chrono::Utc>>,
    /// What its limit holds once the lease ends (dA): without the server, from then on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failsafe_da: Option<i64>,
    /// The most current per phase the car last drew, in dA, when its charger says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drawn_da: Option<i64>,
    /// Why it is paused, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<&'static str>,
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            "must be 1 to 100 characters, no control characters",
        ));
    }
    Ok(name.to_owned())
}

fn phase_name(p: u8) -> String {
    format!("L{p}")
}

impl Service {
    /// Creates a site with its connection at the given limits.
    pub async fn create_site(&self, who: &Principal, req: CreateSiteRequest) -> Result<Site> {
        let owner = who.owner_for_new(req.owner)?;
        self.require_owner(&owner).await?;
        let name = check_name(&req.name)?;
        let root = NodeLimits {
            limits_a: req.limits_a,
            power_cap_w: req.power_cap_w,
            derating_percent: req.derating_percent,
        }
        .deciamps()?;
        let lease_s = req.lease_s.unwrap_or(LEASE_S_DEFAULT);
        if !LEASE_S_RANGE.contains(&lease_s) {
            return Err(Error::invalid("lease_s", "must be 10 to 3600 s"));
        }
        let site = self
            .store
            .create_site(&owner, &name, req.failsafe, lease_s, root, self.now())
            .await?;
        self.audit(
            who,
            Some(&owner),
            None,
            "site:create",
            Some(format!("site {} ({})", site.id, site.name)),
            "created",
        )
        .await;
        Ok(site)
    }

    pub async fn list_sites(&self, who: &Principal) -> Result<Vec<Site>> {
        Ok(self.store.sites(who.owner_filter()).await?)
    }

    async fn site_of(&self, who: &Principal, id: i64) -> Result<Site> {
        match self.store.get_site(id).await? {
            Some(s) if who.can_see(&s.owner) => Ok(s),
            _ => Err(Error::not_found("site")),
        }
    }

    /// A site with its tree, chargers and allocations.
    pub async fn get_site(&self, who: &Principal, id: i64) -> Result<SiteView> {
        self.site_of(who, id).await?;
        let load = self
            .store
            .site_load(id)
            .await?
            .ok_or_else(|| Error::not_found("site"))?;
        let plan = balancer::Plan::of(&load);
        let chargers = load
            .chargers
            .iter()
            .map(|c| PlacementView {
                device: c.placement.device.clone(),
                node: c.placement.node,
                rotation: c
                    .placement
                    .rotation
                    .iter()
                    .map(|p| phase_name(*p))
                    .collect(),
                max_current_da: c.placement.max_current_da,
                priority: c.placement.priority,
                online: c.online,
                failsafe_da: plan.failsafe_of(&c.placement.device, 1),
                schedule_check: c.placement.schedule_check.clone(),
            })
            .collect();
        let sessions = load
            .sessions
            .iter()
            .map(|s| {
                let row = load.allocations.iter().find(|a| a.session == s.id);
                let online = load
                    .chargers
                    .iter()
                    .any(|c| c.placement.device == s.device && c.online);
                let paused = row.is_some_and(|a| a.current_da == 0);
                SessionAllocation {
                    session: s.id,
                    device: s.device.clone(),
                    connector: s.connector,
                    current_da: row.map(|a| a.current_da),
                    paused,
                    acked: row.is_some_and(|a| a.acked),
                    lease_until: row.map(|a| a.lease_until),
                    failsafe_da: row.map(|a| a.failsafe_da),
                    drawn_da: row.and_then(|a| a.drawn_da),
                    why: match (paused, online) {
                        (true, false) => Some("the charger is offline"),
                        (true, true) => Some(
                            "no room under a fuse for its minimum (6 A) now; it takes its turn",
                        ),
                        _ => None,
                    },
                }
            })
            .collect();
        // What the sessions are given, on every node above them and every phase they load.
        let mut given = vec![[0i64; 3]; load.nodes.len()];
        for s in &load.sessions {
            let Some(row) = load.allocations.iter().find(|a| a.session == s.id) else {
                continue;
            };
            let Some(c) = load
                .chargers
                .iter()
                .find(|c| c.placement.device == s.device)
            else {
                continue;
            };
            let mut node = load.nodes.iter().position(|n| n.id == c.placement.node);
            while let Some(i) = node {
                for p in &c.placement.rotation {
                    if let Some(slot) = given[i].get_mut(usize::from(p.saturating_sub(1))) {
                        *slot += row.current_da.max(row.previous_da * i64::from(!row.acked));
                    }
                }
                node = load.nodes[i]
                    .parent
                    .and_then(|p| load.nodes.iter().position(|n| n.id == p));
            }
        }
        let nodes = load
            .nodes
            .into_iter()
            .zip(given)
            .map(|(node, given_da)| NodeView { node, given_da })
            .collect();
        Ok(SiteView {
            site: load.site,
            nodes,
            chargers,
            sessions,
        })
    }

    /// Adds a board or circuit under one of the site's nodes.
    pub async fn add_site_node(
        &self,
        who: &Principal,
        site: i64,
        req: NodeRequest,
    ) -> Result<SiteNode> {
        let s = self.site_of(who, site).await?;
        let name = check_name(&req.name)?;
        let parent = req
            .parent
            .ok_or_else(|| Error::invalid("parent", "is required"))?;
        let (limit, cap) = req.limits().deciamps()?;
        let node = self
            .store
            .add_site_node(site, parent, &name, limit, cap)
            .await?
            .ok_or_else(|| Error::invalid("parent", "is not a node of this site"))?;
        self.audit(
            who,
            Some(&s.owner),
            None,
            "site:node",
            Some(format!("site {site}: node {} ({name}) added", node.id)),
            "created",
        )
        .await;
        self.site_changed(site);
        Ok(node)
    }

    /// Changes a node's name and limits (a lower limit takes effect at the next run).
    pub async fn update_site_node(
        &self,
        who: &Principal,
        site: i64,
        node: i64,
        req: NodeRequest,
    ) -> Result<SiteNode> {
        let s = self.site_of(who, site).await?;
        if req.parent.is_some() {
            return Err(Error::invalid("parent", "a node cannot move"));
        }
        let nodes = self.store.site_nodes(site).await?;
        let old = nodes
            .iter()
            .find(|n| n.id == node)
            .ok_or_else(|| Error::not_found("node"))?;
        let (limit_da, power_cap_w) = req.limits().deciamps()?;
        let new = SiteNode {
            name: check_name(&req.name)?,
            limit_da,
            power_cap_w,
            ..old.clone()
        };
        if !self.store.set_site_node(&new).await? {
            return Err(Error::not_found("node"));
        }
        self.audit(
            who,
            Some(&s.owner),
            None,
            "site:node",
            Some(format!(
                "site {site}: node {node} limits {:?} dA, cap {:?} W",
                new.limit_da, new.power_cap_w
            )),
            "updated",
        )
        .await;
        self.site_changed(site);
        Ok(new)
    }

    /// Places a charger on a node of a site of its owner.
    pub async fn place_charger(
        &self,
        who: &Principal,
        device: &DeviceId,
        req: PlaceRequest,
    ) -> Result<Placement> {
        let d = self.get_device(who, device).await?;
        let s = self.site_of(who, req.site).await?;
        if s.owner != d.owner {
            return Err(Error::not_found("site"));
        }
        let mut rotation = Vec::new();
        for p in &req.rotation {
            let phase = match p.as_str() {
                "L1" => 1,
                "L2" => 2,
                "L3" => 3,
                _ => return Err(Error::invalid("rotation", "phases are L1, L2, L3")),
            };
            if rotation.contains(&phase) {
                return Err(Error::invalid("rotation", "names a phase twice"));
            }
            rotation.push(phase);
        }
        if rotation.is_empty() || rotation.len() > 3 {
            return Err(Error::invalid("rotation", "must name 1 to 3 phases"));
        }
        if !(6..=MAX_CHARGER_A).contains(&req.max_current_a) {
            return Err(Error::invalid("max_current_a", "must be 6 to 500 A"));
        }
        if !(-1000..=1000).contains(&req.priority) {
            return Err(Error::invalid("priority", "must be -1000 to 1000"));
        }
        let placement = Placement {
            device: device.clone(),
            node: req.node,
            rotation,
            max_current_da: i64::from(req.max_current_a) * 10,
            priority: req.priority,
            default_da: None,
            schedule_check: None,
        };
        let before = self.store.placement(device).await?.map(|(_, s)| s);
        if !self.store.place_charger(req.site, &placement).await? {
            return Err(Error::invalid("node", "is not a node of this site"));
        }
        self.audit(
            who,
            Some(&d.owner),
            Some(device),
            "site:place",
            Some(format!("site {} node {}", req.site, req.node)),
            "placed",
        )
        .await;
        self.site_changed(req.site);
        // Moved: the site it left runs again too.
        if let Some(old) = before.filter(|s| *s != req.site) {
            self.site_changed(old);
        }
        Ok(placement)
    }

    /// Takes a charger off its site (its limits are lifted by the balancer); a charger on
    /// no site is already off it (no error).
    pub async fn unplace_charger(&self, who: &Principal, device: &DeviceId) -> Result<()> {
        let d = self.get_device(who, device).await?;
        let site = self.store.placement(device).await?.map(|(_, s)| s);
        // Idempotent: a charger on no site is already off it.
        if !self.store.unplace_charger(device).await? {
            return Ok(());
        }
        self.audit(
            who,
            Some(&d.owner),
            Some(device),
            "site:unplace",
            None,
            "removed",
        )
        .await;
        if let Some(site) = site {
            self.site_changed(site);
        }
        // Off the site, it charges unconstrained again: the balancer lifts its limits
        // (now if it is connected, otherwise once it is).
        Ok(())
    }
}
