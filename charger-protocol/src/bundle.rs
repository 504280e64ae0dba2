//! The firmware bundle: what the server issues once per charger, and what firmware (or the
//! simulator) is flashed with.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::envelope::DeviceKey;
use crate::topic::is_valid_part;

/// Broker coordinates and credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttCredentials {
    pub host: String,
    pub port: u16,
    /// Equals the device id; also the MQTT client id.
    pub username: String,
    pub password: String,
}

/// One charger's bundle. `Debug` never shows the password or the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareBundle {
    pub device_id: String,
    /// The `<user>` of the charger's topics.
    pub owner: String,
    pub mqtt: MqttCredentials,
    /// The device's AES-256 key, 64 hex characters.
    pub key: String,
}

/// What is wrong with a bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("device_id is not a valid topic part")]
    DeviceId,
    #[error("owner is not a valid topic part")]
    Owner,
    #[error("mqtt.username must equal device_id")]
    Username,
    #[error("mqtt.host is empty or mqtt.port is 0")]
    Broker,
    #[error("key must be 64 hexadecimal characters")]
    Key,
}

impl FirmwareBundle {
    /// Checks the bundle and returns the device key.
    pub fn validate(&self) -> Result<DeviceKey, BundleError> {
        if !is_valid_part(&self.device_id) {
            return Err(BundleError::DeviceId);
        }
        if !is_valid_part(&self.owner) {
            return Err(BundleError::Owner);
        }
        if self.mqtt.username != self.device_id {
            return Err(BundleError::Username);
        }
        if self.mqtt.host.is_empty() || self.mqtt.port == 0 {
            return Err(BundleError::Broker);
        }
        DeviceKey::from_hex(&self.key).map_err(|_| BundleError::Key)
    }
}

impl fmt::Debug for FirmwareBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirmwareBundle")
            .field("device_id", &self.device_id)
            .field("owner", &self.owner)
            .field("host", &self.mqtt.host)
            .field("port", &self.mqtt.port)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> FirmwareBundle {
        FirmwareBundle {
            device_id: "cp-1".into(),
            owner: "acme".into(),
            mqtt: MqttCredentials {
                host: "broker.example".into(),
                port: 1883,
                username: "cp-1".into(),
                password: "pw-secret".into(),
            },
            key: "0f".repeat(32),
        }
    }

    #[test]
    fn a_good_bundle_validates_and_debug_hides_secrets() {
        let b = bundle();
        assert!(b.validate().is_ok());
        let shown = format!("{b:?}");
        assert!(
            !shown.contains("pw-secret") && !shown.contains("0f0f"),
            "{shown}"
        );
        let json = serde_json::to_value(&b).expect("serialize");
        assert_eq!(json["mqtt"]["username"], "cp-1");
    }

    #[test]
    fn bad_bundles_say_what_is_wrong() {
        let mut b = bundle();
        b.mqtt.username = "other".into();
        assert_eq!(b.validate(), Err(BundleError::Username));
        let mut b = bundle();
        b.key = "xyz".into();
        assert_eq!(b.validate().map(|_| ()), Err(BundleError::Key));
        let mut b = bundle();
        b.owner = "a/b".into();
        assert_eq!(b.validate().map(|_| ()), Err(BundleError::Owner));
    }
}
