//! The worked example in docs/mqtt-api.md, checked against the code: the documented key,
//! nonce, id, status, code and plaintext must seal to exactly the documented `data` and RES.

use charger_protocol::envelope::{associated_data, open_response, seal_response_with_nonce};
use charger_protocol::envelope::{
    request_aad_v2, response_aad_v2, seal_request_v2_with_nonce, seal_response_v2_with_nonce,
};
use charger_protocol::rekey::{credentials_context, seal_credentials_with};
use charger_protocol::{open_request_v2, open_response_on, RequestEnvelope};
use charger_protocol::{DeviceKey, KeyExchange, NewCredentials, RequestId, ResponseEnvelope};

/// The values of the example block after `marker`, by label.
fn example_at(marker: &str) -> std::collections::HashMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/mqtt-api.md");
    let doc = std::fs::read_to_string(path).expect("docs/mqtt-api.md");
    let start = doc.find(marker).expect("the example's marker");
    let block = &doc[start..];
    let open = block.find("```text\n").expect("the example block") + "```text\n".len();
    let close = block[open..].find("```").expect("the end of the block") + open;
    block[open..close]
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(label, value)| (label.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

fn example() -> std::collections::HashMap<String, String> {
    example_at("<!-- worked-example -->")
}

#[test]
fn the_documented_example_seals_and_opens_as_documented() {
    let ex = example();
    let get = |label: &str| {
        ex.get(label)
            .unwrap_or_else(|| panic!("{label} in the example"))
    };
    let key = DeviceKey::from_hex(get("key")).expect("key");
    let nonce: [u8; 12] = hex::decode(get("nonce"))
        .expect("nonce hex")
        .try_into()
        .expect("12 bytes");
    let id = RequestId::Int(get("id").parse().expect("integer id"));
    let code: u16 = get("code").parse().expect("code");
    let status: u8 = get("status").parse().expect("status");

    assert_eq!(
        &associated_data(Some(&id), status, code),
        get("associated data")
    );
    let res = seal_response_with_nonce(&key, id, code, get("plaintext").as_bytes(), nonce)
        .expect("seals");
    assert_eq!(res.status, status);
    assert_eq!(&res.data, get("data"));
    assert_eq!(&serde_json::to_string(&res).expect("json"), get("RES"));

    let documented: ResponseEnvelope = serde_json::from_str(get("RES")).expect("RES parses");
    let plain = open_response(&key, &documented).expect("opens");
    assert_eq!(plain, get("plaintext").as_bytes());
    // Any change to the envelope's plain fields breaks the tag.
    let mut tampered = documented;
    tampered.code = 201;
    assert!(open_response(&key, &tampered).is_err());
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).expect("hex").try_into().expect("32 bytes")
}

#[test]
fn the_documented_credentials_exchange_seals_and_opens_as_documented() {
    let ex = example_at("<!-- credentials-example -->");
    let get = |label: &str| {
        ex.get(label)
            .unwrap_or_else(|| panic!("{label} in the example"))
    };
    let (device, owner) = (get("device"), get("owner"));
    let charger = KeyExchange::from_secret(hex32(get("charger private key")));
    assert_eq!(&charger.public_base64(), get("charger pub"));
    assert_eq!(
        &credentials_context(device, owner),
        get("info and associated data")
    );
    let credentials: NewCredentials =
        serde_json::from_str(get("plaintext")).expect("plaintext is the credentials");
    let nonce: [u8; 12] = hex::decode(get("nonce"))
        .expect("nonce hex")
        .try_into()
        .expect("12 bytes");
    let sealed = seal_credentials_with(
        device,
        owner,
        get("charger pub"),
        &credentials,
        hex32(get("server private key")),
        nonce,
    )
    .expect("seals");
    assert_eq!(&sealed.public, get("server pub"));
    assert_eq!(&sealed.credentials, get("credentials"));
    let opened = charger
        .open(device, owner, get("server pub"), get("credentials"))
        .expect("opens");
    assert_eq!(opened, credentials);
    // The same answer does not open for another device or owner.
    assert!(charger
        .open(
            device,
            "someone-else",
            get("server pub"),
            get("credentials")
        )
        .is_err());
}

fn nonce12(s: &str) -> [u8; 12] {
    hex::decode(s).expect("hex").try_into().expect("12 bytes")
}

#[test]
fn the_documented_v2_example_seals_and_opens_as_documented() {
    let ex = example_at("<!-- worked-example-v2 -->");
    let get = |label: &str| {
        ex.get(label)
            .unwrap_or_else(|| panic!("{label} in the example"))
    };
    let key = DeviceKey::from_hex(get("key")).expect("key");
    let endpoint = get("endpoint");
    let id: RequestId = serde_json::from_str(get("id")).expect("id JSON");
    assert_eq!(
        &request_aad_v2(endpoint, &id),
        get("request associated data")
    );
    let req = seal_request_v2_with_nonce(
        &key,
        endpoint,
        id.clone(),
        get("params").as_bytes(),
        nonce12(get("request nonce")),
    )
    .expect("seals");
    assert_eq!(&serde_json::to_string(&req).expect("json"), get("REQ"));
    let parsed = RequestEnvelope::parse(get("REQ").as_bytes()).expect("parses");
    assert_eq!(
        open_request_v2(&key, endpoint, &parsed).expect("opens"),
        get("params").as_bytes()
    );

    assert_eq!(
        &response_aad_v2(endpoint, Some(&id), 1, 200),
        get("response associated data")
    );
    let res = seal_response_v2_with_nonce(
        &key,
        endpoint,
        id,
        200,
        get("body").as_bytes(),
        nonce12(get("response nonce")),
    )
    .expect("seals");
    assert_eq!(&serde_json::to_string(&res).expect("json"), get("RES"));
    let documented: ResponseEnvelope = serde_json::from_str(get("RES")).expect("RES parses");
    assert_eq!(
        open_response_on(&key, endpoint, &documented).expect("opens"),
        get("body").as_bytes()
    );
    // Moved to another endpoint, it no longer opens.
    assert!(open_response_on(&key, "boot", &documented).is_err());
}
