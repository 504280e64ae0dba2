//! `openapi.yaml` against the router, both ways: every route the code registers is in the
//! spec, every route in the spec is registered, and the running server answers each one
//! (never with the router's "no such route" fallback or 405).

use std::collections::BTreeSet;

use charger_e2e::{spawn_app, ADMIN_TOKEN};
use yaml_rust2::YamlLoader;

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (METHOD, path) of every operation in openapi.yaml.
fn spec_routes() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(root().join("openapi.yaml")).expect("openapi.yaml");
    let docs = YamlLoader::load_from_str(&text).expect("openapi.yaml is YAML");
    let paths = docs[0]["paths"].as_hash().expect("paths");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path");
        for m in METHODS {
            if !item[*m].is_badvalue() {
                out.insert((m.to_uppercase(), path.to_owned()));
            }
        }
    }
    out
}

/// (METHOD, path) of every `.route("...", get(..).post(..))` in the API's sources and the
/// OCPP edge's; routes outside `api/mod.rs`, `api/broker_auth.rs` (the broker's, at the
/// root) and `ocpp/mod.rs` are nested under `/api/v1`.
fn router_routes() -> BTreeSet<(String, String)> {
    let dir = root().join("charger-server/src/api");
    let mut out = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("api dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.push(root().join("charger-server/src/ocpp/mod.rs"));
    for path in files {
        let src = std::fs::read_to_string(&path).expect("source");
        let prefix = if path.ends_with("mod.rs") || path.ends_with("broker_auth.rs") {
            ""
        } else {
            "/api/v1"
        };
        let mut rest = src.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = rest[at + ".route(".len()..].trim_start();
            let Some(literal) = rest.strip_prefix('"') else {
                continue;
            };
            rest = literal;
            let end = rest.find('"').expect("end of the path literal");
            let route = format!("{prefix}{}", &rest[..end]);
            // The method calls up to the end of this `.route(...)`.
            let mut depth = 1;
            let mut stop = end;
            for (i, ch) in rest[end..].char_indices() {
                match ch {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            stop = end + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call = &rest[end..stop];
            for m in METHODS {
                let needle = format!("{m}(");
                let found = call.match_indices(&needle).any(|(i, _)| {
                    i == 0 || !call[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if found {
                    out.insert((m.to_uppercase(), route.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn every_route_is_in_the_spec_and_every_spec_route_is_routed() {
    let spec = spec_routes();
    let router = router_routes();
    assert!(
        router.len() > 10,
        "the source scan found the routes: {router:?}"
    );
    let missing_in_spec: Vec<_> = router.difference(&spec).collect();
    let missing_in_router: Vec<_> = spec.difference(&router).collect();
    assert!(
        missing_in_spec.is_empty(),
        "routed but not in openapi.yaml: {missing_in_spec:?}"
    );
    assert!(
        missing_in_router.is_empty(),
        "in openapi.yaml but not routed: {missing_in_router:?}"
    );
}

#[tokio::test]
async fn the_running_server_answers_every_spec_route() {
    let app = spawn_app().await;
    for (method, path) in spec_routes() {
        let concrete = path
            .replace("{owner}", "nobody")
            .replace("{id}", "1")
            .replace("{uid}", "AABBCCDD")
            .replace("{command}", "unlock");
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let a = app
            .http
            .request(method.clone(), format!("{}{concrete}", app.base))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("request");
        let status = a.status().as_u16();
        let body = a.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            !body.contains("no such route"),
            "{method} {path}: {status} {body}"
        );
    }
}
