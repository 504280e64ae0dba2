//! One simulated MyBox charger (one connector): RFID taps, plug and unplug, energy
//! flowing at a chosen power and time scale, remote commands, installer enrollment, a
//! local list for offline authorization, and an offline queue replayed in order.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use anyhow::{bail, Context as _};
use charger_protocol::{api, FirmwareBundle, KeyExchange};
use serde_json::Value;

use crate::link::{Answer, Link};

/// How a session is named to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SessionRef {
    Id(i64),
    Local(String),
}

impl SessionRef {
    /// The session as `(session_id, local_id)`, one of them set.
    fn ids(&self) -> (Option<i64>, Option<String>) {
        match self {
            SessionRef::Id(id) => (Some(*id), None),
            SessionRef::Local(l) => (None, Some(l.clone())),
        }
    }
}

#[derive(Debug, Clone)]
struct Active {
    reference: SessionRef,
    tag: String,
}

/// A simulated charger.
pub struct Charger {
    pub bundle: FirmwareBundle,
    broker: Option<String>,
    /// The `<user>` it talks under (changes after an ownership claim).
    pub user: String,
    link: Option<Link>,
    session: Option<Active>,
    /// The energy meter, in Wh.
    pub meter_wh: i64,
    plugged: bool,
    authorized: Option<String>,
    installer: Option<String>,
    local_list: HashMap<String, Value>,
    list_version: i64,
    queue: VecDeque<(String, Value)>,
    local_seq: u64,
    /// Simulated seconds per real second for energy flow.
    pub time_scale: f64,
    /// The envelope it speaks (v2 unless set to v1).
    pub envelope: charger_protocol::Version,
    /// Pause between replayed requests after a reconnect.
    pub replay_pause: Duration,
    /// What happened, one line each.
    pub events: Vec<String>,
    pub echo: bool,
    /// The firmware version it reports at boot.
    pub firmware: String,
    /// The last `charging-limit` for its connector (site load management), and when its
    /// lease ends; it ends with the session.
    pub limit: Option<(api::ChargingLimitRequest, std::time::Instant)>,
    /// The last `charging-limit` without a connector: the default, for a connector with
    /// no limit of its own (kept across restarts, as firmware keeps it in flash).
    pub default_limit: Option<(api::ChargingLimitRequest, std::time::Instant)>,
}

/// Volts per phase, for the current a power draws.
const PHASE_V: i64 = 230;

/// A request's params as JSON, from its wire type.
fn params<T: serde::Serialize>(req: &T) -> Value {
    serde_json::to_value(req).unwrap_or_default()
}

impl Charger {
    pub fn new(bundle: FirmwareBundle, broker: Option<String>) -> Self {
        Self {
            user: bundle.owner.clone(),
            bundle,
            broker,
            link: None,
            session: None,
            meter_wh: 0,
            plugged: false,
            authorized: None,
            installer: None,
            local_list: HashMap::new(),
            list_version: 0,
            queue: VecDeque::new(),
            local_seq: 0,
            time_scale: 1.0,
            envelope: charger_protocol::Version::V2,
            replay_pause: Duration::from_millis(20),
            events: Vec::new(),
            echo: false,
            firmware: "sim-1.0".into(),
            limit: None,
            default_limit: None,
        }
    }

    fn say(&mut self, line: String) {
        if self.echo {
            println!("{}: {line}", self.bundle.device_id);
        }
        self.events.push(line);
    }

    pub fn is_online(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.closed().is_none())
    }

    pub fn session_id(&self) -> Option<i64> {
        match self.session.as_ref().map(|s| &s.reference) {
            Some(SessionRef::Id(id)) => Some(*id),
            _ => None,
        }
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    async fn call(&mut self, endpoint: &str, data: Value) -> anyhow::Result<Answer> {
        let Some(link) = self.link.as_mut() else {
            bail!("offline");
        };
        let answer = link.request(endpoint, data).await?;
        let error = answer.body["error"].as_str().unwrap_or("").to_owned();
        self.say(
            format!("{endpoint} -> {} {error}", answer.code)
                .trim_end()
                .to_owned(),
        );
        Ok(answer)
    }

    /// Connects, boots, reports its connector, refreshes its local list, and replays
    /// what it queued while offline (in order, paced).
    pub async fn online(&mut self) -> anyhow::Result<()> {
        let mut link =
            Link::connect(&self.bundle, self.broker.as_deref(), Some(&self.user)).await?;
        link.version = self.envelope;
        self.link = Some(link);
        self.say("online".into());
        let boot = self
            .call(
                "boot",
                params(&api::BootRequest {
                    firmware: self.firmware.clone(),
                    model: "MyBox sim".into(),
                    connectors: 1,
                }),
            )
            .await?;
        if let Some(owner) = boot.body["owner"].as_str() {
            self.user = owner.to_owned();
        }
        let state = if self.session.is_some() {
            api::ConnectorState::Charging
        } else {
            api::ConnectorState::Available
        };
        self.report(state).await?;
        self.sync_list().await?;
        self.replay().await
    }

    /// Drops the connection without a goodbye (power or network gone).
    pub fn offline(&mut self) {
        self.link = None;
        self.say("offline".into());
    }

    /// Brings the local list up to date (by delta, page by page).
    pub async fn sync_list(&mut self) -> anyhow::Result<()> {
        for _ in 0..1000 {
            let a = self
                .call(
                    "local-list",
                    params(&api::LocalListRequest {
                        version: self.list_version,
                    }),
                )
                .await?;
            if a.code != 200 {
                bail!("local-list answered {}", a.code);
            }
            if a.body["reset"] == true {
                self.local_list.clear();
            }
            for t in a.body["tags"].as_array().cloned().unwrap_or_default() {
                if let Some(uid) = t["tag"].as_str() {
                    self.local_list.insert(uid.to_owned(), t.clone());
                }
            }
            for uid in a.body["removed"].as_array().cloned().unwrap_or_default() {
                if let Some(uid) = uid.as_str() {
                    self.local_list.remove(uid);
                }
            }
            self.list_version = a.body["version"].as_i64().unwrap_or(self.list_version);
            if a.body["more"] != true {
                break;
            }
        }
        Ok(())
    }

    /// Sends, or queues while offline.
    async fn send_or_queue(
        &mut self,
        endpoint: &str,
        data: Value,
    ) -> anyhow::Result<Option<Answer>> {
        if self.is_online() {
            return self.call(endpoint, data).await.map(Some);
        }
        self.queue.push_back((endpoint.to_owned(), data));
        self.say(format!("{endpoint} queued"));
        Ok(None)
    }

    async fn replay(&mut self) -> anyhow::Result<()> {
        while let Some((endpoint, data)) = self.queue.pop_front() {
            match self.call(&endpoint, data.clone()).await {
                Ok(a) => {
                    // The server names an offline session by its local id; keep using it.
                    let _ = a;
                }
                Err(e) => {
                    self.queue.push_front((endpoint, data));
                    return Err(e).context("replaying the offline queue");
                }
            }
            tokio::time::sleep(self.replay_pause).await;
        }
        Ok(())
    }

    /// An RFID card is held to the reader.
    pub async fn tap(&mut self, tag: &str) -> anyhow::Result<()> {
        let tag = tag.to_ascii_uppercase();
        if let Some(installer) = self.installer.clone() {
            if installer == tag {
                self.installer = None;
                self.say("installer mode off".into());
                return Ok(());
            }
            let req = api::TagEnrollRequest {
                installer_tag: installer,
                tag,
                label: None,
                expires_at: None,
            };
            self.call("tag-enroll", params(&req)).await?;
            return Ok(());
        }
        if let Some(active) = self.session.clone() {
            let allowed = if self.is_online() {
                let (session_id, local_id) = active.reference.ids();
                let req = api::AuthorizeRequest {
                    tag: tag.clone(),
                    connector: 1,
                    session_id,
                    local_id,
                };
                self.call("authorize", params(&req)).await?.code == 200
            } else {
                active.tag == tag || self.same_group(&active.tag, &tag)
            };
            if allowed {
                return self.stop(api::StopReason::Local).await;
            }
            self.say("stop refused".into());
            return Ok(());
        }
        if self.is_online() {
            let a = self
                .call(
                    "authorize",
                    params(&api::AuthorizeRequest {
                        tag: tag.clone(),
                        connector: 1,
                        session_id: None,
                        local_id: None,
                    }),
                )
                .await?;
            if a.code != 200 {
                return Ok(());
            }
            if a.body["role"] == "installer" {
                self.installer = Some(tag);
                self.say("installer mode on".into());
                return Ok(());
            }
        } else if !self.locally_allowed(&tag) {
            self.say(format!("{tag} refused offline"));
            return Ok(());
        }
        self.authorized = Some(tag);
        if self.plugged {
            self.start().await?;
        }
        Ok(())
    }

    fn locally_allowed(&self, tag: &str) -> bool {
        self.local_list.get(tag).is_some_and(|t| {
            t["status"] == "active"
                && t["expires_at"]
                    .as_str()
                    .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
                    .is_none_or(|e| e > chrono::Utc::now())
        })
    }

    fn same_group(&self, a: &str, b: &str) -> bool {
        let group = |t: &str| {
            self.local_list
                .get(t)
                .and_then(|e| e["group"].as_str().map(str::to_owned))
        };
        matches!((group(a), group(b)), (Some(x), Some(y)) if x == y)
    }

    /// The car's cable is plugged in.
    pub async fn plug(&mut self) -> anyhow::Result<()> {
        self.plugged = true;
        if self.is_online() && self.session.is_none() {
            self.report(api::ConnectorState::Preparing).await?;
        }
        if self.authorized.is_some() && self.session.is_none() {
            self.start().await?;
        }
        Ok(())
    }

    async fn start(&mut self) -> anyhow::Result<()> {
        let Some(tag) = self.authorized.take() else {
            return Ok(());
        };
        let mut req = api::SessionStartRequest {
            tag: tag.clone(),
            connector: 1,
            meter_start_wh: self.meter_wh,
            started_at: chrono::Utc::now(),
            local_id: None,
        };
        if !self.is_online() {
            self.local_seq += 1;
            let local = format!(
                "{}-{}",
                chrono::Utc::now().timestamp_millis(),
                self.local_seq
            );
            req.local_id = Some(local.clone());
            self.queue.push_back(("session-start".into(), params(&req)));
            self.session = Some(Active {
                reference: SessionRef::Local(local),
                tag,
            });
            self.say("session-start queued".into());
            return Ok(());
        }
        let a = self.call("session-start", params(&req)).await?;
        if a.code == 201 {
            if let Some(id) = a.body["session_id"].as_i64() {
                self.session = Some(Active {
                    reference: SessionRef::Id(id),
                    tag,
                });
                self.report(api::ConnectorState::Charging).await?;
            }
        }
        Ok(())
    }

    /// Energy flows for `real` time at `power_w` (scaled by `time_scale`), then one meter
    /// sample is reported.
    pub async fn charge(&mut self, real: Duration, power_w: i64) -> anyhow::Result<()> {
        if self.session.is_none() {
            bail!("no session to charge");
        }
        tokio::time::sleep(real).await;
        // Three phases; a site's limit caps the current (its failsafe once the lease ends).
        let mut per_phase_a = power_w / (PHASE_V * 3);
        let mut power_w = power_w;
        if let Some(limit) = self.limit_a().map(i64::from) {
            if per_phase_a > limit {
                per_phase_a = limit;
                power_w = limit * PHASE_V * 3;
            }
        }
        let current = u32::try_from(per_phase_a).unwrap_or(0);
        let hours = real.as_secs_f64() * self.time_scale / 3600.0;
        self.meter_wh += (power_w as f64 * hours).round() as i64;
        let Some(active) = self.session.clone() else {
            return Ok(());
        };
        let (session_id, local_id) = active.reference.ids();
        let req = api::MeterValuesRequest {
            session_id,
            local_id,
            samples: vec![api::MeterSample {
                at: chrono::Utc::now(),
                energy_wh: self.meter_wh,
                power_w: Some(power_w),
                current_a: Some([current; 3]),
            }],
        };
        if let Some(a) = self.send_or_queue("meter-values", params(&req)).await? {
            let (net, currency) = (a.body["net"].clone(), a.body["currency"].clone());
            self.say(format!(
                "running cost {} {}",
                net.as_str().unwrap_or("?"),
                currency.as_str().unwrap_or("")
            ));
        }
        Ok(())
    }

    /// The current per phase a site allows now: its limit until the lease ends, then its
    /// failsafe; None when it was never given one.
    pub fn limit_a(&self) -> Option<u32> {
        let (limit, until) = self.limit.as_ref().or(self.default_limit.as_ref())?;
        let most = limit.limits_a.iter().copied().max().unwrap_or(0);
        Some(if std::time::Instant::now() < *until {
            most
        } else {
            limit.failsafe_a
        })
    }

    /// The cable is pulled: a running session stops.
    pub async fn unplug(&mut self) -> anyhow::Result<()> {
        if self.session.is_some() {
            self.stop(api::StopReason::EvDisconnected).await?;
        }
        self.plugged = false;
        if self.is_online() {
            self.report(api::ConnectorState::Available).await?;
        }
        Ok(())
    }

    async fn stop(&mut self, reason: api::StopReason) -> anyhow::Result<()> {
        // A connector's own limit ends with its session.
        self.limit = None;
        let Some(active) = self.session.take() else {
            return Ok(());
        };
        let (session_id, local_id) = active.reference.ids();
        let req = api::SessionStopRequest {
            session_id,
            local_id,
            meter_stop_wh: self.meter_wh,
            stopped_at: chrono::Utc::now(),
            reason,
        };
        if let Some(a) = self.send_or_queue("session-stop", params(&req)).await? {
            if a.code == 200 {
                let b = &a.body;
                self.say(format!(
                    "billed {} Wh: net {} tax {} total {} {}",
                    b["energy_wh"],
                    b["net"].as_str().unwrap_or("?"),
                    b["tax"].as_str().unwrap_or("?"),
                    b["total"].as_str().unwrap_or("?"),
                    b["currency"].as_str().unwrap_or("")
                ));
            }
        }
        Ok(())
    }

    /// Reports its connector's state.
    async fn report(&mut self, state: api::ConnectorState) -> anyhow::Result<()> {
        let req = api::StatusRequest {
            connector: 1,
            state,
            error: None,
        };
        self.call("status", params(&req)).await?;
        Ok(())
    }

    /// Sends an ownership claim with a transfer code and a fresh X25519 public key; on
    /// success it takes the new credentials from the answer, is disconnected by the
    /// server, and comes back under its new owner with them.
    pub async fn claim(&mut self, code: &str) -> anyhow::Result<()> {
        let exchange = KeyExchange::new();
        let a = self
            .call(
                "ownership-claim",
                params(&api::OwnershipClaimRequest {
                    code: code.to_owned(),
                    public: exchange.public_base64(),
                }),
            )
            .await?;
        if a.code == 200 {
            self.take_credentials(&exchange, &a.body)?;
            self.list_version = 0;
            self.local_list.clear();
            self.reconnect().await?;
        }
        Ok(())
    }

    /// Rotates its own credentials (`rekey`), then reconnects with the new ones.
    pub async fn rekey(&mut self) -> anyhow::Result<()> {
        let exchange = KeyExchange::new();
        let a = self
            .call(
                "rekey",
                params(&api::RekeyRequest {
                    public: exchange.public_base64(),
                }),
            )
            .await?;
        if a.code == 200 {
            self.take_credentials(&exchange, &a.body)?;
            self.reconnect().await?;
        }
        Ok(())
    }

    /// Opens `{"owner", "pub", "credentials"}` and makes them its bundle.
    fn take_credentials(&mut self, exchange: &KeyExchange, body: &Value) -> anyhow::Result<()> {
        let owner = body["owner"].as_str().context("no owner in the answer")?;
        let credentials = exchange
            .open(
                &self.bundle.device_id,
                owner,
                body["pub"].as_str().context("no pub in the answer")?,
                body["credentials"]
                    .as_str()
                    .context("no credentials in the answer")?,
            )
            .context("the credentials do not open")?;
        credentials.device_key().context("the new key")?;
        self.bundle.owner = owner.to_owned();
        self.bundle.mqtt.password = credentials.password;
        self.bundle.key = credentials.key;
        self.user = owner.to_owned();
        self.say(format!("new credentials, owner {owner}"));
        Ok(())
    }

    /// Waits for the server to close the connection (it does once the answer is
    /// delivered), then connects again.
    async fn reconnect(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.is_online() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.link = None;
        self.online().await
    }

    /// Serves the server's commands for `wait`: remote stop, remote start, unlock.
    pub async fn serve_commands(&mut self, wait: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            let Some(link) = self.link.as_mut() else {
                tokio::time::sleep(left).await;
                return Ok(());
            };
            let Some(command) = link.next_command(left).await else {
                continue;
            };
            let accept = match command.name.as_str() {
                "remote-stop" => self
                    .session_id()
                    .is_some_and(|id| command.data["session_id"] == id),
                "remote-start" => self.session.is_none(),
                "unlock" => true,
                "charging-limit" => {
                    match serde_json::from_value::<api::ChargingLimitRequest>(command.data.clone())
                    {
                        Ok(limit) => {
                            let until = std::time::Instant::now()
                                + Duration::from_secs(u64::from(limit.lease_s));
                            self.events.push(format!(
                                "limit {:?} connector {:?} failsafe {}",
                                limit.limits_a, limit.connector, limit.failsafe_a
                            ));
                            if limit.connector.is_some() {
                                self.limit = Some((limit, until));
                            } else {
                                self.default_limit = Some((limit, until));
                            }
                            true
                        }
                        Err(_) => false,
                    }
                }
                _ => false,
            };
            let answer = api::CommandResponse {
                status: if accept {
                    api::CommandStatus::Accepted
                } else {
                    api::CommandStatus::Rejected
                },
                reason: (!accept).then_some(api::RefusalReason::Busy),
                message: None,
            };
            let status = if accept { "accepted" } else { "rejected" };
            if let Some(link) = self.link.as_ref() {
                link.answer_command(&command, params(&answer)).await?;
            }
            self.say(format!("command {} {status}", command.name));
            if accept {
                match command.name.as_str() {
                    "remote-stop" => self.stop(api::StopReason::Remote).await?,
                    "remote-start" => {
                        self.authorized = command.data["tag"].as_str().map(str::to_owned);
                        self.plugged = true;
                        self.start().await?;
                    }
                    _ => {}
                }
            }
        }
    }
}
