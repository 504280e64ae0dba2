//! The worked example in docs/mqtt-api.md, checked against the code: the documented key,
//! nonce, id, status, code and plaintext must seal to exactly the documented `data` and RES.

use charger_protocol::envelope::{associated_data, open_response, seal_response_with_nonce};
use charger_protocol::{DeviceKey, RequestId, ResponseEnvelope};

/// The values of the example block, by label.
fn example() -> std::collections::HashMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/mqtt-api.md");
    let doc = std::fs::read_to_string(path).expect("docs/mqtt-api.md");
    let start = doc
        .find("<!-- worked-example -->")
        .expect("the worked-example marker");
    let block = &doc[start..];
    let open = block.find("```text\n").expect("the example block") + "```text\n".len();
    let close = block[open..].find("```").expect("the end of the block") + open;
    block[open..close]
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(label, value)| (label.trim().to_owned(), value.trim().to_owned()))
        .collect()
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
