//! Mosquitto 2's dynamic security plugin as the external broker's ACL, provisioned by the
//! server over `$CONTROL/dynamic-security/v1`.
//!
//! Each charger has one client (user name and client id = its device id, its derived
//! password) and one role `mybox-charger-<device>` allowing exactly: publish on
//! `<owner>/req/<device>/+`, subscribe to `<owner>/res/<device>/+`. The client's
//! `textdescription` records what it was made from (`mybox owner=<owner> v=<version>`),
//! so a change is needed only when that differs: every dynsec change rewrites Mosquitto's
//! whole configuration file (milliseconds each, growing with the fleet), so provisioning
//! and reconciliation change only what differs.
//!
//! Changing a client's password or deleting it disconnects the charger at once (the
//! plugin kicks it): that is how a rotation, a claim or a rekey takes effect.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::devices::BrokerAccount;
use crate::ids::DeviceId;
use crate::service::Service;

/// Where commands go.
pub const CONTROL_TOPIC: &str = "$CONTROL/dynamic-security/v1";
/// Where the plugin answers (every admin client subscribed gets every answer).
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";
/// What marks a client as one of ours.
const MARK: &str = "mybox ";
/// How long one command may take (the plugin saves its whole file per change).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The plugin's client, shared by the transport.
pub struct Dynsec {
    client: AsyncClient,
    next: AtomicU64,
    /// Correlation data of this instance's commands (random prefix: instances share the
    /// response topic).
    prefix: String,
    pending: Mutex<HashMap<String, oneshot::Sender<Value>>>,
}

/// A refused dynsec command.
#[derive(Debug, thiserror::Error)]
#[error("dynsec {command}: {error}")]
pub struct DynsecError {
    command: String,
    error: String,
}

fn role_of(device: &DeviceId) -> String {
    format!("mybox-charger-{device}")
}

fn description(account: &BrokerAccount) -> String {
    format!("{MARK}owner={} v={}", account.owner, account.version)
}

/// The topics a charger's role allows, for `owner`.
fn acls(owner: &str, device: &DeviceId) -> [(&'static str, String); 2] {
    [
        ("publishClientSend", format!("{owner}/req/{device}/+")),
        ("subscribePattern", format!("{owner}/res/{device}/+")),
    ]
}

impl Dynsec {
    pub fn new(client: AsyncClient) -> Self {
        Self {
            client,
            next: AtomicU64::new(0),
            prefix: crate::secrets::random_token(6),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Hands a response from [`RESPONSE_TOPIC`] to the command waiting for it.
    pub fn on_response(&self, payload: &[u8]) {
        let Ok(tree) = serde_json::from_slice::<Value>(payload) else {
            return;
        };
        let Some(responses) = tree.get("responses").and_then(Value::as_array) else {
            return;
        };
        for r in responses {
            let Some(id) = r.get("correlationData").and_then(Value::as_str) else {
                continue;
            };
            let waiter = self.pending.lock().ok().and_then(|mut p| p.remove(id));
            if let Some(waiter) = waiter {
                let _ = waiter.send(r.clone());
            }
        }
    }

    /// Runs one command; its `data` on success.
    async fn run(&self, mut command: Value) -> Result<Value, DynsecError> {
        let name = command["command"].as_str().unwrap_or("?").to_owned();
        let failed = |error: String| DynsecError {
            command: name.clone(),
            error,
        };
        let id = format!(
            "{}-{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        command["correlationData"] = Value::String(id.clone());
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id.clone(), tx);
        }
        let body = json!({ "commands": [command] }).to_string();
        let sent = self
            .client
            .publish(CONTROL_TOPIC, QoS::AtLeastOnce, false, body)
            .await;
        let answer = match sent {
            Ok(()) => tokio::time::timeout(COMMAND_TIMEOUT, rx)
                .await
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        let Some(answer) = answer else {
            if let Ok(mut p) = self.pending.lock() {
                p.remove(&id);
            }
            return Err(failed("no answer from the broker".to_owned()));
        };
        match answer.get("error").and_then(Value::as_str) {
            Some(error) => Err(failed(error.to_owned())),
            None => Ok(answer.get("data").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Makes the broker's account of `device` what the database says: created, changed
    /// (the charger is disconnected), or removed when there is no usable account.
    pub async fn sync(
        &self,
        device: &DeviceId,
        want: Option<&BrokerAccount>,
    ) -> Result<(), DynsecError> {
        let have = match self
            .run(json!({"command": "getClient", "username": device.as_str()}))
            .await
        {
            Ok(data) => Some(data.get("client").cloned().unwrap_or(Value::Null)),
            Err(e) if e.error.contains("not found") => None,
            Err(e) => return Err(e),
        };
        let have_description = have
            .as_ref()
            .and_then(|c| c.get("textdescription"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.apply(device, have_description.as_deref(), have.is_some(), want)
            .await
    }

    /// Brings one account from `have` (its recorded description; `exists`) to `want`.
    async fn apply(
        &self,
        device: &DeviceId,
        have: Option<&str>,
        exists: bool,
        want: Option<&BrokerAccount>,
    ) -> Result<(), DynsecError> {
        let role = role_of(device);
        let Some((want, password)) = want.and_then(|a| a.password.as_ref().map(|p| (a, p))) else {
            if exists && have.is_some_and(|d| d.starts_with(MARK)) {
                self.run(json!({"command": "deleteClient", "username": device.as_str()}))
                    .await?;
                let _ = self
                    .run(json!({"command": "deleteRole", "rolename": role}))
                    .await;
            }
            return Ok(());
        };
        let description = description(want);
        if have == Some(description.as_str()) {
            return Ok(());
        }
        let owner = want.owner.as_str();
        if !exists {
            let acls: Vec<Value> = acls(owner, device)
                .into_iter()
                .map(|(t, topic)| json!({"acltype": t, "topic": topic, "allow": true}))
                .collect();
            match self
                .run(json!({"command": "createRole", "rolename": role, "acls": acls}))
                .await
            {
                Ok(_) => {}
                // Left over (or made by another instance): set its topics below.
                Err(e) if e.error.contains("already exists") => {
                    self.set_role_topics(device, None, owner).await?;
                }
                Err(e) => return Err(e),
            }
            let created = self
                .run(json!({
                    "command": "createClient",
                    "username": device.as_str(),
                    "password": password.expose(),
                    "clientid": device.as_str(),
                    "textname": "MyBox charger",
                    "textdescription": description,
                    "roles": [{"rolename": role}],
                }))
                .await;
            match created {
                Ok(_) => return Ok(()),
                // Another instance created it meanwhile: bring it up to date below.
                Err(e) if e.error.contains("already exists") => {}
                Err(e) => return Err(e),
            }
        }
        let old_owner = have
            .and_then(|d| d.strip_prefix(MARK))
            .and_then(|d| d.split(' ').find_map(|kv| kv.strip_prefix("owner=")));
        if old_owner != Some(owner) {
            self.set_role_topics(device, old_owner, owner).await?;
        }
        // A new password disconnects the charger at once.
        self.run(json!({
            "command": "modifyClient",
            "username": device.as_str(),
            "password": password.expose(),
            "textdescription": description,
            "roles": [{"rolename": role}],
        }))
        .await?;
        Ok(())
    }

    /// Moves a charger's role from `old` owner's topics (if known) to `owner`'s.
    async fn set_role_topics(
        &self,
        device: &DeviceId,
        old: Option<&str>,
        owner: &str,
    ) -> Result<(), DynsecError> {
        let role = role_of(device);
        if let Some(old) = old {
            for (t, topic) in acls(old, device) {
                let _ = self
                    .run(json!({"command": "removeRoleACL", "rolename": role, "acltype": t, "topic": topic}))
                    .await;
            }
        }
        for (t, topic) in acls(owner, device) {
            match self
                .run(json!({"command": "addRoleACL", "rolename": role, "acltype": t, "topic": topic, "allow": true}))
                .await
            {
                Ok(_) => {}
                Err(e) if e.error.contains("already exists") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Disconnects `device`'s connection (disabling its account kicks it), and lets it
    /// log in again: its request budget, not a ban, keeps it in check.
    pub async fn kick(&self, device: &DeviceId) {
        for command in ["disableClient", "enableClient"] {
            if let Err(e) = self
                .run(json!({"command": command, "username": device.as_str()}))
                .await
            {
                tracing::warn!(%device, error = %e, "cannot disconnect a charger at the broker");
                return;
            }
        }
    }

    /// Makes the broker agree with the database, changing only what differs; returns how
    /// many accounts were changed.
    pub async fn reconcile(&self, service: &Service) -> anyhow::Result<usize> {
        let accounts = service.broker_accounts().await?;
        let data = self
            .run(json!({"command": "listClients", "verbose": true, "count": -1}))
            .await?;
        let mut have: HashMap<String, String> = HashMap::new();
        for c in data
            .get("clients")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = c.get("username").and_then(Value::as_str) {
                let d = c
                    .get("textdescription")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                have.insert(name.to_owned(), d.to_owned());
            }
        }
        // A broker that holds none of the chargers' accounts lost its state (an emptied
        // dynamic-security file, a fresh install): said loudly before it is restored.
        let expected = accounts.iter().filter(|a| a.password.is_some()).count();
        let present = accounts
            .iter()
            .filter(|a| have.contains_key(a.device.as_str()))
            .count();
        if expected >= 10 && present == 0 {
            tracing::error!(
                chargers = expected,
                "the broker holds none of the chargers' accounts: its dynamic-security file \
                 was lost, emptied or replaced; restoring every account now (restore the file \
                 from its copy, docs/operations.md)"
            );
        }
        let mut changed = 0;
        let mut stale = 0;
        for account in &accounts {
            let current = have.remove(account.device.as_str());
            if account.password.is_none() {
                stale += 1;
            }
            let wanted = account.password.is_some().then(|| description(account));
            if current.is_some() && current == wanted {
                continue;
            }
            if current.is_none() && wanted.is_none() {
                continue;
            }
            self.apply(
                &account.device,
                current.as_deref(),
                current.is_some(),
                Some(account),
            )
            .await?;
            changed += 1;
        }
        // Ours, but no longer in the database.
        for (name, d) in have {
            if !d.starts_with(MARK) {
                continue;
            }
            if let Ok(device) = DeviceId::parse(&name) {
                self.apply(&device, Some(&d), true, None).await?;
                changed += 1;
            }
        }
        if stale > 0 {
            tracing::warn!(
                chargers = stale,
                "chargers whose password predates external-broker support cannot be provisioned \
                 on the broker; give them new credentials (POST /devices/{{id}}/credentials)"
            );
        }
        Ok(changed)
    }
}
