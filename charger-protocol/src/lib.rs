//! The MyBox charger MQTT API, as a small library that the server, the simulator and
//! firmware authors share.
//!
//! - [`topic`]: the topic grammar `<user>/req|res/<device-id>/<endpoint>` and the
//!   per-device ACL it implies.
//! - [`api`]: every endpoint and command as types (`*Request`, `*Response`).
//! - [`bundle`]: the firmware bundle a charger is provisioned with.
//! - [`envelope`]: the REQ and RES envelopes, the device key, and the AES-256-GCM
//!   sealing of RES `data` (nonce || ciphertext || tag, associated data `<id>|<status>|<code>`).
//! - [`rekey`]: new credentials sealed under an X25519 key agreement (`ownership-claim`,
//!   `rekey`), both sides.
//!
//! - [`ocpp`]: OCPP-J framing and the OCPP 1.6J message types.
//!
//! The crate has no database, web or broker dependency on purpose: a firmware engineer can
//! read it as the executable form of `docs/mqtt-api.md`.

pub mod api;
pub mod bundle;
pub mod endpoint;
pub mod envelope;
pub mod ocpp;
pub mod rekey;
pub mod topic;

pub use bundle::{BundleError, FirmwareBundle, MqttCredentials};
pub use envelope::{
    open_request_v2, open_response, open_response_on, seal_request_v2, seal_response,
    seal_response_v2, DeviceKey, EnvelopeError, ErrorBody, RequestEnvelope, RequestError,
    RequestId, ResponseEnvelope, Version,
};
pub use rekey::{seal_credentials, KeyExchange, NewCredentials, SealedCredentials};
pub use topic::{Direction, Topic, TopicError, TopicPart};
