//! Chargers: provisioning (the firmware bundle, shown once), listing, tariff assignment,
//! and (in [`transfers`]) ownership transfer with consent and credential rotation.

pub mod fleet;
mod transfers;

pub use crate::records::devices::{
    BrokerAccount, Bundle, Connector, Device, DeviceAuth, DeviceEvent, DeviceLogin, DeviceQuery,
    DeviceSettings, DeviceState, Fault, FleetCounts, HistoryKind, HistoryQuery, NewDevice,
    OcppBundle, OcppCredentials, PresenceChange, PresenceKind, Protocol, SupersededLogin,
    TransferOffer, TransferStatus,
};
pub use transfers::{
    TransferPage, TransferQuery, TransferRequest, TransferView, TRANSFER_VALID_HOURS,
};

use charger_protocol::DeviceKey;
pub use charger_protocol::{FirmwareBundle, MqttCredentials};
use serde::Deserialize;

use crate::charging::inputs::{check_max_power, DEFAULT_MAX_POWER_W};
use crate::error::{Error, Result};
use crate::ids::{DeviceId, OwnerId, TariffId};
use crate::secrets::hash_secret;
use crate::service::{Principal, Service};

/// Most connectors one charger may declare.
pub const MAX_CONNECTORS: i64 = 16;
/// Most devices one bulk provisioning call creates.
pub const MAX_BULK_DEVICES: usize = 10_000;
/// The key version new devices start at.
const FIRST_KEY_VERSION: i64 = 1;

/// `POST /api/v1/devices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDeviceRequest {
    pub id: DeviceId,
    /// Required with the admin token; an owner token may omit it (never `null`).
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub owner: Option<OwnerId>,
    pub connectors: i64,
    /// Each connector's rated power in W (default 22,000; null is refused).
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub max_power_w: Option<i64>,
    /// `mybox` (default), `ocpp1.6` or `ocpp2.0.1`.
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub protocol: Option<Protocol>,
}

/// `POST /api/v1/devices/bulk`: `count` devices named `<prefix><n>` (n zero-padded).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkCreateDevicesRequest {
    /// Required with the admin token; an owner token may omit it (never `null`).
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub owner: Option<OwnerId>,
    pub prefix: String,
    pub count: usize,
    #[serde(default = "one")]
    pub connectors: i64,
    #[serde(default)]
    pub start: usize,
    /// Each connector's rated power in W (default 22,000; null is refused).
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub max_power_w: Option<i64>,
    /// `mybox` (default), `ocpp1.6` or `ocpp2.0.1`.
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub protocol: Option<Protocol>,
}

/// `PATCH /api/v1/devices/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDeviceRequest {
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub max_power_w: Option<i64>,
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub require_v2: Option<bool>,
    /// OCPP chargers: `rejected` refuses its boots (and closes its socket), `accepted`
    /// takes it back, `pending` reads its configuration again at its next boot (2.0.1).
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub registration: Option<crate::records::devices::Registration>,
}

fn one() -> i64 {
    1
}

/// `PUT /api/v1/devices/{id}/tariff`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignTariffRequest {
    /// The tariff, or null to fall back to the owner's default. Required: `{}` is 422.
    #[serde(deserialize_with = "required_nullable")]
    pub tariff: Option<TariffId>,
}

/// A field that must be present and may be `null`.
fn required_nullable<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// The rated power asked for, or the default.
fn max_power(w: Option<i64>) -> Result<i64> {
    let w = w.unwrap_or(DEFAULT_MAX_POWER_W);
    check_max_power("max_power_w", w)?;
    Ok(w)
}

fn check_connectors(n: i64) -> Result<()> {
    if (1..=MAX_CONNECTORS).contains(&n) {
        Ok(())
    } else {
        Err(Error::invalid("connectors", "must be between 1 and 16"))
    }
}

impl Service {
    /// Provisions one charger and returns its firmware bundle.
    pub async fn create_device(&self, who: &Principal, req: CreateDeviceRequest) -> Result<Bundle> {
        check_connectors(req.connectors)?;
        let power = max_power(req.max_power_w)?;
        let owner = who.owner_for_new(req.owner)?;
        self.require_owner(&owner).await?;
        let protocol = req.protocol.unwrap_or_default();
        let (bundles, rows) =
            self.new_devices(&owner, vec![req.id], req.connectors, power, protocol);
        self.store.insert_devices(&rows).await?;
        let bundle = bundles
            .into_iter()
            .next()
            .ok_or_else(|| Error::Internal("provisioning produced no bundle".to_owned()))?;
        tracing::info!(device = %bundle.device_id(), owner = %owner, protocol = protocol.as_str(), "device provisioned");
        self.accounts_changed(rows.into_iter().map(|r| r.id).collect());
        Ok(bundle)
    }

    /// Provisions `count` chargers `<prefix><n>` in one transaction: all or none.
    pub async fn create_devices_bulk(
        &self,
        who: &Principal,
        req: BulkCreateDevicesRequest,
    ) -> Result<Vec<Bundle>> {
        check_connectors(req.connectors)?;
        let power = max_power(req.max_power_w)?;
        if req.count == 0 || req.count > MAX_BULK_DEVICES {
            return Err(Error::invalid("count", "must be between 1 and 10000"));
        }
        let owner = who.owner_for_new(req.owner)?;
        self.require_owner(&owner).await?;
        let last = req.start.saturating_add(req.count - 1);
        let width = last.to_string().len().max(5);
        let ids = (req.start..=last)
            .map(|n| DeviceId::parse(&format!("{}{n:0width$}", req.prefix)))
            .collect::<Result<Vec<_>>>()
            .map_err(|_| {
                Error::invalid(
                    "prefix",
                    "prefix + number must be a valid device id (A-Z a-z 0-9 _ -, at most 64)",
                )
            })?;
        let (bundles, rows) = self.new_devices(
            &owner,
            ids,
            req.connectors,
            power,
            req.protocol.unwrap_or_default(),
        );
        self.store.insert_devices(&rows).await?;
        tracing::info!(owner = %owner, count = bundles.len(), "devices provisioned in bulk");
        self.accounts_changed(rows.into_iter().map(|r| r.id).collect());
        Ok(bundles)
    }

    fn new_devices(
        &self,
        owner: &OwnerId,
        ids: Vec<DeviceId>,
        connectors: i64,
        max_power_w: i64,
        protocol: Protocol,
    ) -> (Vec<Bundle>, Vec<NewDevice>) {
        let now = self.now();
        ids.into_iter()
            .map(|id| {
                let password = self.password_of(&id, protocol, FIRST_KEY_VERSION);
                let row = NewDevice {
                    id: id.clone(),
                    owner: owner.clone(),
                    connectors,
                    max_power_w,
                    password_hash: hash_secret(&password),
                    key_version: FIRST_KEY_VERSION,
                    protocol,
                    created_at: now,
                };
                let bundle = self.bundle(&id, owner, protocol, password, FIRST_KEY_VERSION);
                (bundle, row)
            })
            .unzip()
    }

    /// A charger's password at a key version: the MQTT one, or the OCPP Basic-auth one
    /// (derived, never stored; its hash is).
    pub(crate) fn password_of(&self, id: &DeviceId, protocol: Protocol, version: i64) -> String {
        match protocol {
            Protocol::Mybox => self.secret.device_password(id.as_str(), version),
            Protocol::Ocpp16 | Protocol::Ocpp201 => self.secret.ocpp_password(id.as_str(), version),
        }
    }

    /// What a charger is given: the firmware bundle of `id` with `password` and the key of
    /// `key_version`, or an OCPP charger's credentials.
    pub(crate) fn bundle(
        &self,
        id: &DeviceId,
        owner: &OwnerId,
        protocol: Protocol,
        password: String,
        key_version: i64,
    ) -> Bundle {
        if protocol.is_ocpp() {
            return Bundle::Ocpp(OcppBundle {
                device_id: id.to_string(),
                owner: owner.to_string(),
                protocol,
                ocpp: OcppCredentials {
                    path: format!("/ocpp/{id}"),
                    subprotocol: protocol.as_str().to_owned(),
                    username: id.to_string(),
                    password,
                    pushed: None,
                },
            });
        }
        Bundle::Mybox(FirmwareBundle {
            device_id: id.to_string(),
            owner: owner.to_string(),
            mqtt: MqttCredentials {
                host: self.mqtt.host.clone(),
                port: self.mqtt.port,
                username: id.to_string(),
                password,
            },
            key: self.device_key(id, key_version).to_hex(),
        })
    }

    /// The AES key of a device at a key version (derived, never stored).
    pub fn device_key(&self, device: &DeviceId, version: i64) -> DeviceKey {
        self.secret.device_key(device.as_str(), version)
    }

    pub async fn get_device(&self, who: &Principal, id: &DeviceId) -> Result<Device> {
        match self.store.get_device(id).await? {
            Some(d) if who.can_see(&d.owner) => Ok(d),
            _ => Err(Error::not_found("device")),
        }
    }

    /// An OCPP 2.0.1 station's configuration as the server keeps it (the variables it uses).
    pub async fn station_variables(
        &self,
        who: &Principal,
        id: &DeviceId,
    ) -> Result<Vec<crate::records::devices::StationVariable>> {
        self.get_device(who, id).await?;
        Ok(self.store.station_variables(id).await?)
    }

    pub async fn list_devices(&self, who: &Principal) -> Result<Vec<Device>> {
        Ok(self.store.list_devices(who.owner_filter()).await?)
    }

    /// Changes a device's settings: its connectors' rated power, whether it must speak
    /// envelope v2.
    pub async fn update_device(
        &self,
        who: &Principal,
        id: &DeviceId,
        req: UpdateDeviceRequest,
    ) -> Result<Device> {
        let device = self.get_device(who, id).await?;
        if let Some(w) = req.max_power_w {
            check_max_power("max_power_w", w)?;
        }
        if req.registration.is_some() && !device.protocol.is_ocpp() {
            return Err(Error::invalid(
                "registration",
                "only OCPP chargers have a registration",
            ));
        }
        let settings = DeviceSettings {
            max_power_w: req.max_power_w,
            require_v2: req.require_v2,
            registration: req.registration,
        };
        if !self
            .store
            .set_device_settings(id, &device.owner, &settings)
            .await?
        {
            return Err(Error::not_found("device"));
        }
        self.audit(
            who,
            Some(&device.owner),
            Some(id),
            "settings",
            Some(format!("{settings:?}")),
            "ok",
        )
        .await;
        if req.registration == Some(crate::records::devices::Registration::Rejected) {
            // Its socket closes now: it boots again and is told Rejected.
            if let Some(channel) = self.ocpp_channel() {
                channel.disconnect(id).await;
            }
        }
        self.get_device(who, id).await
    }

    /// Assigns a tariff of the device's owner to the device, or clears it.
    pub async fn assign_tariff(
        &self,
        who: &Principal,
        id: &DeviceId,
        req: AssignTariffRequest,
    ) -> Result<Device> {
        let device = self.get_device(who, id).await?;
        if let Some(tariff_id) = &req.tariff {
            // Only the device owner's own tariffs: an id of another owner's is not found.
            if self
                .store
                .get_tariff(&device.owner, tariff_id)
                .await?
                .is_none()
            {
                return Err(Error::not_found("tariff"));
            }
        }
        if !self
            .store
            .set_device_tariff(id, &device.owner, req.tariff.as_ref())
            .await?
        {
            return Err(Error::not_found("device"));
        }
        let detail = req
            .tariff
            .as_ref()
            .map_or_else(|| "owner's default".to_owned(), ToString::to_string);
        self.audit(
            who,
            Some(&device.owner),
            Some(id),
            "tariff:assign",
            Some(detail),
            "ok",
        )
        .await;
        self.get_device(who, id).await
    }
}

/// Reads an endpoint's `data`; a bad one is 422 naming the field (`data` itself when the
/// problem is at the top, e.g. a missing field, which the message then names).
pub fn parse_data<T: serde::de::DeserializeOwned>(data: &serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(data).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // serde names a missing field only in its message: "missing field `x`".
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => name.to_owned(),
            (".", None) => "data".to_owned(),
            (_, Some(name)) => format!("{path}.{name}"),
            _ => path,
        };
        Error::invalid(field, message)
    })
}

/// Heartbeat interval chargers are told to keep (the default).
pub use crate::service::HEARTBEAT_S;
/// Longest firmware or model string kept.
pub(crate) const MAX_INFO_LEN: usize = 100;

impl Service {
    /// Checks a charger's MQTT login: client id = username = a provisioned device id, and
    /// its password, or (within the grace window) the password its last claim or rekey
    /// replaced, which may only repeat that exchange. `Unauthorized` for anything else.
    pub async fn authenticate_device(
        &self,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> Result<DeviceLogin> {
        if client_id != username {
            return Err(Error::Unauthorized);
        }
        let id = DeviceId::parse(client_id).map_err(|_| Error::Unauthorized)?;
        let Some(auth) = self.store.get_device_auth(&id).await? else {
            return Err(Error::Unauthorized);
        };
        // An OCPP charger has no MQTT login.
        if auth.protocol != Protocol::Mybox {
            return Err(Error::Unauthorized);
        }
        if crate::secrets::verify_secret(password, &auth.password_hash) {
            return Ok(DeviceLogin {
                owner: auth.owner,
                only: None,
            });
        }
        match auth.superseded {
            Some(old)
                if old.until > self.now()
                    && crate::secrets::verify_secret(password, &old.password_hash) =>
            {
                Ok(DeviceLogin {
                    owner: old.owner,
                    only: Some(old.endpoint),
                })
            }
            _ => Err(Error::Unauthorized),
        }
    }

    /// What an OCPP charger's handshake is checked against (None: no such charger).
    pub async fn ocpp_login_of(&self, id: &DeviceId) -> Result<Option<DeviceAuth>> {
        Ok(self.store.get_device_auth(id).await?)
    }

    /// Records a batch of presence changes in one commit (the broker's group commit).
    pub async fn record_presence(&self, changes: &[PresenceChange]) -> Result<()> {
        Ok(self.store.record_presence(changes).await?)
    }

    /// Whether a device is online now, as presence has it.
    pub async fn device_online(&self, id: &DeviceId) -> Result<bool> {
        Ok(self.store.get_device(id).await?.is_some_and(|d| d.online))
    }

    /// The current owner of a device (None when it does not exist).
    pub async fn device_owner(&self, id: &str) -> Result<Option<OwnerId>> {
        let Ok(id) = DeviceId::parse(id) else {
            return Ok(None);
        };
        Ok(self.store.get_device_auth(&id).await?.map(|a| a.owner))
    }

    /// The current AES key of a device, and whether it must speak envelope v2.
    pub async fn device_key_of(&self, id: &DeviceId) -> Result<(DeviceKey, bool)> {
        match self.store.get_device_auth(id).await? {
            Some(auth) => Ok((self.device_key(id, auth.key_version), auth.require_v2)),
            None => Err(Error::not_found("device")),
        }
    }
}

impl Service {
    /// Tells the transport (in the background) that chargers were provisioned.
    fn accounts_changed(&self, devices: Vec<DeviceId>) {
        if let Some(channel) = self.channel() {
            tokio::spawn(async move { channel.accounts_changed(&devices).await });
        }
    }

    fn broker_account(&self, device: DeviceId, auth: DeviceAuth) -> BrokerAccount {
        let password = self
            .secret
            .device_password(device.as_str(), auth.key_version);
        let derived = crate::secrets::verify_secret(&password, &auth.password_hash);
        BrokerAccount {
            owner: auth.owner,
            version: auth.key_version,
            password: derived.then(|| crate::secrets::Secret::new(password)),
            device,
        }
    }

    /// One charger's broker account as the database has it (None: no such charger).
    pub async fn broker_account_of(&self, device: &DeviceId) -> Result<Option<BrokerAccount>> {
        Ok(self
            .store
            .get_device_auth(device)
            .await?
            // An OCPP charger has no broker account.
            .filter(|auth| auth.protocol == Protocol::Mybox)
            .map(|auth| self.broker_account(device.clone(), auth)))
    }

    /// The right to reconcile the broker's accounts, alone among the instances; None
    /// while another instance does.
    pub async fn reconcile_alone(&self) -> Result<Option<crate::store::ExclusiveGuard>> {
        Ok(self
            .store
            .try_exclusive(crate::store::Exclusive::BrokerReconcile)
            .await?)
    }

    /// Every charger's broker account (start-up reconciliation).
    pub async fn broker_accounts(&self) -> Result<Vec<BrokerAccount>> {
        Ok(self
            .store
            .list_device_auth()
            .await?
            .into_iter()
            .filter(|(_, auth)| auth.protocol == Protocol::Mybox)
            .map(|(device, auth)| self.broker_account(device, auth))
            .collect())
    }
}

/// Most presence changes committed in one transaction.
const PRESENCE_BATCH: usize = 512;

/// The task that writes presence: it takes what has queued up and commits it in one
/// transaction, so a reconnect storm costs one fsync per batch, not per charger.
pub fn presence_writer(service: Service) -> tokio::sync::mpsc::Sender<PresenceChange> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<PresenceChange>(65_536);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(PRESENCE_BATCH);
        while rx.recv_many(&mut batch, PRESENCE_BATCH).await > 0 {
            if let Err(e) = service.record_presence(&batch).await {
                tracing::error!(error = %e, changes = batch.len(), "presence not recorded");
            }
            batch.clear();
        }
    });
    tx
}
