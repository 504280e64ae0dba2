//! Provisioning through the REST API: owners, tokens, devices (firmware bundle), tags,
//! tariffs; bad input; owner scoping.

use charger_e2e::{assert_error, on_both_databases, spawn_app_on, Db, TestApp, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

on_both_databases!(spawn_app_on =>
    healthz_answers_200,
    admin_provisions_owner_device_tag_and_tariff,
    owner_tokens_see_and_change_only_their_own_rows,
    missing_or_wrong_tokens_are_401,
    bad_input_gets_a_json_error_and_writes_nothing,
    duplicates_are_409_and_change_nothing,
    bulk_provisioning_is_all_or_nothing,
    tags_patch_and_delete,
    device_keys_and_passwords_never_reach_the_database_file,
);

async fn device_count(app: &TestApp) -> usize {
    let a = app.get("/api/v1/devices", ADMIN_TOKEN).await;
    assert_eq!(a.status, 200, "{a:?}");
    a.body.as_array().expect("list").len()
}

async fn healthz_answers_200(app: TestApp) {
    let a = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["status"], "ok");
}

async fn admin_provisions_owner_device_tag_and_tariff(app: TestApp) {
    let a = app
        .post(
            "/api/v1/owners",
            ADMIN_TOKEN,
            json!({"id": "acme", "name": "Acme Charging"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["id"], "acme");

    let a = app
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": "mybox-0001", "owner": "acme", "connectors": 2}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let bundle = &a.body;
    assert_eq!(bundle["device_id"], "mybox-0001");
    assert_eq!(bundle["owner"], "acme");
    assert_eq!(bundle["mqtt"]["username"], "mybox-0001");
    assert_eq!(bundle["mqtt"]["host"], "127.0.0.1");
    assert!(bundle["mqtt"]["port"].as_u64().is_some());
    let password = bundle["mqtt"]["password"].as_str().expect("password");
    assert!(password.len() >= 32, "{password}");
    let key = bundle["key"].as_str().expect("key");
    assert_eq!(key.len(), 64);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));

    let a = app.get("/api/v1/devices/mybox-0001", ADMIN_TOKEN).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["online"], false);
    assert_eq!(
        a.body["connectors"].as_array().expect("connectors").len(),
        2
    );
    assert!(
        a.body.get("key").is_none() && a.body.get("password").is_none(),
        "shown once"
    );

    let a = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "04a1b2c3d4e5f6", "owner": "acme", "role": "driver",
                   "expires_at": "2030-01-01T00:00:00+02:00", "group": "fleet",
                   "devices": ["mybox-0001"], "max_sessions": 2, "label": "Alice"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["uid"], "04A1B2C3D4E5F6", "stored upper-case");
    assert_eq!(a.body["status"], "active");
    assert_eq!(a.body["expires_at"], "2029-12-31T22:00:00Z", "kept in UTC");
    assert_eq!(a.body["devices"], json!(["mybox-0001"]));

    let a = app
        .post(
            "/api/v1/tariffs",
            ADMIN_TOKEN,
            json!({"id": "standard", "owner": "acme", "currency": "EUR",
                   "energy_per_kwh": "0.30", "time_per_hour": "1.20",
                   "session_fee": "0.50", "tax_rate": "0.21", "default": true}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(
        a.body["energy_per_kwh"], "0.3",
        "decimal strings, never floats"
    );
    assert_eq!(a.body["default"], true);

    let a = app
        .put(
            "/api/v1/devices/mybox-0001/tariff",
            ADMIN_TOKEN,
            json!({"tariff": "standard"}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["tariff"], "standard");
    let a = app
        .put(
            "/api/v1/devices/mybox-0001/tariff",
            ADMIN_TOKEN,
            json!({"tariff": null}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["tariff"], Value::Null);
}

async fn owner_tokens_see_and_change_only_their_own_rows(app: TestApp) {
    let acme = app.owner_with_token("acme").await;
    let beta = app.owner_with_token("beta").await;
    let a = app
        .post(
            "/api/v1/devices",
            &acme,
            json!({"id": "acme-1", "connectors": 1}),
        )
        .await;
    assert_eq!(a.status, 201, "an owner token provisions for itself: {a:?}");
    assert_eq!(a.body["owner"], "acme");
    let a = app
        .post(
            "/api/v1/devices",
            &beta,
            json!({"id": "beta-1", "connectors": 1}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let a = app
        .post("/api/v1/tags", &acme, json!({"uid": "AABBCCDD"}))
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let a = app
        .post(
            "/api/v1/tariffs",
            &acme,
            json!({"id": "acme-std", "currency": "EUR", "energy_per_kwh": "0.3",
                   "time_per_hour": "0", "session_fee": "0", "tax_rate": "0"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");

    // Reads of another owner's rows are 404, never the row.
    assert_error(
        &app.get("/api/v1/devices/acme-1", &beta).await,
        404,
        "not_found",
    );
    assert_error(
        &app.get("/api/v1/tags/AABBCCDD", &beta).await,
        404,
        "not_found",
    );
    assert_error(
        &app.get("/api/v1/tariffs/acme-std", &beta).await,
        404,
        "not_found",
    );
    assert_error(
        &app.get("/api/v1/owners/acme", &beta).await,
        404,
        "not_found",
    );
    // Writes too, and nothing changes.
    assert_error(
        &app.patch("/api/v1/tags/AABBCCDD", &beta, json!({"status": "blocked"}))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &app.delete("/api/v1/tags/AABBCCDD", &beta).await,
        404,
        "not_found",
    );
    assert_error(
        &app.put(
            "/api/v1/devices/acme-1/tariff",
            &beta,
            json!({"tariff": null}),
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &app.put(
            "/api/v1/devices/beta-1/tariff",
            &beta,
            json!({"tariff": "acme-std"}),
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &app.post(
            "/api/v1/devices",
            &beta,
            json!({"id": "x-1", "owner": "acme", "connectors": 1}),
        )
        .await,
        404,
        "not_found",
    );
    assert_eq!(
        app.get("/api/v1/tags/AABBCCDD", &acme).await.body["status"],
        "active"
    );

    // Lists hold only the caller's rows; the admin sees all.
    let ids = |v: &Value, key: &str| -> Vec<String> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|d| d[key].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(
        ids(&app.get("/api/v1/devices", &beta).await.body, "id"),
        ["beta-1"]
    );
    assert!(app
        .get("/api/v1/tags", &beta)
        .await
        .body
        .as_array()
        .expect("list")
        .is_empty());
    assert!(app
        .get("/api/v1/tariffs", &beta)
        .await
        .body
        .as_array()
        .expect("list")
        .is_empty());
    assert_eq!(
        ids(&app.get("/api/v1/owners", &beta).await.body, "id"),
        ["beta"]
    );
    assert_eq!(
        ids(&app.get("/api/v1/devices", ADMIN_TOKEN).await.body, "id"),
        ["acme-1", "beta-1"]
    );

    // Admin-only calls are 403 for owner tokens.
    assert_error(
        &app.post(
            "/api/v1/owners",
            &acme,
            json!({"id": "evil", "name": "Evil"}),
        )
        .await,
        403,
        "admin_only",
    );
    assert_error(
        &app.post("/api/v1/owners/acme/tokens", &acme, Value::Null)
            .await,
        403,
        "admin_only",
    );
}

async fn missing_or_wrong_tokens_are_401(app: TestApp) {
    let a = app
        .request(Method::GET, "/api/v1/devices", None, None)
        .await;
    assert_error(&a, 401, "unauthorized");
    let a = app.get("/api/v1/devices", "not-a-token").await;
    assert_error(&a, 401, "unauthorized");
    let a = app
        .request(
            Method::POST,
            "/api/v1/owners",
            None,
            Some(&json!({"id": "acme", "name": "Acme"})),
        )
        .await;
    assert_error(&a, 401, "unauthorized");
    assert!(app
        .get("/api/v1/owners", ADMIN_TOKEN)
        .await
        .body
        .as_array()
        .expect("list")
        .is_empty());
}

async fn bad_input_gets_a_json_error_and_writes_nothing(app: TestApp) {
    app.owner_with_token("acme").await;
    let a = app
        .post_raw("/api/v1/devices", ADMIN_TOKEN, "{\"id\": \"d1\",")
        .await;
    assert_error(&a, 400, "malformed_json");
    // A body is an object: serde would read a struct from an array (schemathesis found a
    // PATCH with `[]` answered 200).
    let a = app
        .post("/api/v1/owners", ADMIN_TOKEN, json!(["arr", "ay"]))
        .await;
    assert_error(&a, 422, "invalid_input");
    let a = app
        .patch("/api/v1/devices/nope", ADMIN_TOKEN, json!([]))
        .await;
    assert_error(&a, 422, "invalid_input");
    // A name is counted as sent, as the schema counts it: 201 characters, one of them a
    // leading blank, is too long (found by schemathesis).
    let a = app
        .post(
            "/api/v1/owners",
            ADMIN_TOKEN,
            json!({"id": "long", "name": format!("\t{}", "n".repeat(200))}),
        )
        .await;
    assert_error(&a, 422, "invalid_input");
    let a = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "0A0B0C0D", "owner": "acme", "label": format!(" {}", "n".repeat(200))}),
        )
        .await;
    assert_error(&a, 422, "invalid_input");
    let a = app
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": "d1", "owner": "acme", "connectors": "two"}),
        )
        .await;
    assert_error(&a, 422, "invalid_input");
    let a = app
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": "d/1", "owner": "acme", "connectors": 1}),
        )
        .await;
    assert_error(&a, 422, "invalid_input");
    let a = app
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": "d1", "owner": "acme", "connectors": 0}),
        )
        .await;
    assert_error(&a, 422, "invalid_input");
    assert!(a.body["message"]
        .as_str()
        .expect("message")
        .contains("connectors"));
    let a = app
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": "d1", "owner": "nobody", "connectors": 1}),
        )
        .await;
    assert_error(&a, 404, "not_found");
    assert_eq!(device_count(&app).await, 0);

    let a = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "04A1B2", "owner": "acme"}),
        )
        .await;
    assert_error(&a, 422, "invalid_input");
    assert!(a.body["message"].as_str().expect("message").contains("uid"));
    let a = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "04A1B2C3", "owner": "acme", "role": "boss"}),
        )
        .await;
    assert_error(&a, 422, "invalid_input");
    let a = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "04A1B2C3", "owner": "acme", "devices": ["ghost"]}),
        )
        .await;
    assert_error(&a, 422, "invalid_input");
    assert!(app
        .get("/api/v1/tags", ADMIN_TOKEN)
        .await
        .body
        .as_array()
        .expect("list")
        .is_empty());

    let tariff = |price: Value| {
        json!({"id": "t1", "owner": "acme", "currency": "EUR", "energy_per_kwh": price,
               "time_per_hour": "0", "session_fee": "0", "tax_rate": "0.2"})
    };
    let a = app
        .post("/api/v1/tariffs", ADMIN_TOKEN, tariff(json!("-0.01")))
        .await;
    assert_error(&a, 422, "invalid_input");
    assert!(a.body["message"]
        .as_str()
        .expect("message")
        .contains("energy_per_kwh"));
    let a = app
        .post("/api/v1/tariffs", ADMIN_TOKEN, tariff(json!(0.3)))
        .await;
    assert_error(&a, 422, "invalid_input");
    let a = app
        .post("/api/v1/tariffs", ADMIN_TOKEN, tariff(json!("abc")))
        .await;
    assert_error(&a, 422, "invalid_input");
    let mut bad_currency = tariff(json!("0.3"));
    bad_currency["currency"] = json!("euro");
    assert_error(
        &app.post("/api/v1/tariffs", ADMIN_TOKEN, bad_currency).await,
        422,
        "invalid_input",
    );
    let mut bad_tax = tariff(json!("0.3"));
    bad_tax["tax_rate"] = json!("21");
    assert_error(
        &app.post("/api/v1/tariffs", ADMIN_TOKEN, bad_tax).await,
        422,
        "invalid_input",
    );
    assert!(app
        .get("/api/v1/tariffs", ADMIN_TOKEN)
        .await
        .body
        .as_array()
        .expect("list")
        .is_empty());

    let a = app
        .post(
            "/api/v1/owners",
            ADMIN_TOKEN,
            json!({"id": "x", "name": "X", "extra": 1}),
        )
        .await;
    assert_error(&a, 422, "invalid_input");
    assert_error(
        &app.get("/api/v1/nothing-here", ADMIN_TOKEN).await,
        404,
        "not_found",
    );
}

async fn duplicates_are_409_and_change_nothing(app: TestApp) {
    app.owner_with_token("acme").await;
    let body = json!({"id": "d1", "owner": "acme", "connectors": 1});
    assert_eq!(
        app.post("/api/v1/devices", ADMIN_TOKEN, body.clone())
            .await
            .status,
        201
    );
    let before = app.get("/api/v1/devices/d1", ADMIN_TOKEN).await.body;
    assert_error(
        &app.post("/api/v1/devices", ADMIN_TOKEN, body).await,
        409,
        "conflict",
    );
    assert_eq!(
        app.get("/api/v1/devices/d1", ADMIN_TOKEN).await.body,
        before
    );
    assert_eq!(device_count(&app).await, 1);

    let a = app
        .post(
            "/api/v1/owners",
            ADMIN_TOKEN,
            json!({"id": "acme", "name": "Other"}),
        )
        .await;
    assert_error(&a, 409, "conflict");
    assert_eq!(
        app.get("/api/v1/owners/acme", ADMIN_TOKEN).await.body["name"],
        "acme Ltd"
    );

    let tag = json!({"uid": "04A1B2C3", "owner": "acme"});
    assert_eq!(
        app.post("/api/v1/tags", ADMIN_TOKEN, tag.clone())
            .await
            .status,
        201
    );
    let lower = json!({"uid": "04a1b2c3", "owner": "acme"});
    assert_error(
        &app.post("/api/v1/tags", ADMIN_TOKEN, lower).await,
        409,
        "tag_exists",
    );
}

async fn bulk_provisioning_is_all_or_nothing(app: TestApp) {
    let acme = app.owner_with_token("acme").await;
    let a = app
        .post(
            "/api/v1/devices/bulk",
            &acme,
            json!({"prefix": "cp-", "count": 250, "connectors": 2}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let devices = a.body["devices"].as_array().expect("bundles");
    assert_eq!(devices.len(), 250);
    assert_eq!(devices[0]["device_id"], "cp-00000");
    assert_eq!(devices[249]["device_id"], "cp-00249");
    let keys: std::collections::HashSet<_> = devices
        .iter()
        .map(|d| d["key"].as_str().expect("key"))
        .collect();
    assert_eq!(keys.len(), 250, "every device has its own key");

    // Overlapping range: 409, and none of the new ids exist.
    let a = app
        .post(
            "/api/v1/devices/bulk",
            &acme,
            json!({"prefix": "cp-", "count": 10, "start": 245}),
        )
        .await;
    assert_error(&a, 409, "conflict");
    assert_error(
        &app.get("/api/v1/devices/cp-00250", &acme).await,
        404,
        "not_found",
    );
    assert_eq!(device_count(&app).await, 250);
    let a = app
        .post(
            "/api/v1/devices/bulk",
            &acme,
            json!({"prefix": "cp-", "count": 10001}),
        )
        .await;
    assert_error(&a, 422, "invalid_input");
}

async fn tags_patch_and_delete(app: TestApp) {
    let acme = app.owner_with_token("acme").await;
    let a = app
        .post(
            "/api/v1/tags",
            &acme,
            json!({"uid": "04A1B2C3", "expires_at": "2030-01-01T00:00:00Z", "label": "Bob"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let a = app
        .patch(
            "/api/v1/tags/04a1b2c3",
            &acme,
            json!({"status": "blocked", "expires_at": null}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["status"], "blocked");
    assert_eq!(a.body["expires_at"], Value::Null, "null clears");
    assert_eq!(a.body["label"], "Bob", "absent fields stay");
    assert_error(
        &app.patch("/api/v1/tags/04A1B2C3", &acme, json!({"max_sessions": 0}))
            .await,
        422,
        "invalid_input",
    );
    assert_error(&app.get("/api/v1/tags/zz", &acme).await, 404, "not_found");
    let a = app.delete("/api/v1/tags/04A1B2C3", &acme).await;
    assert_eq!(a.status, 204);
    assert_error(
        &app.get("/api/v1/tags/04A1B2C3", &acme).await,
        404,
        "not_found",
    );
}

async fn device_keys_and_passwords_never_reach_the_database_file(app: TestApp) {
    if app.db != Db::Sqlite {
        return; // the file check needs the SQLite file; the SQLite run covers it
    }
    app.owner_with_token("acme").await;
    let a = app
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": "d1", "owner": "acme", "connectors": 1}),
        )
        .await;
    assert_eq!(a.status, 201);
    let key_hex = a.body["key"].as_str().expect("key").to_owned();
    let key_bytes = hex::decode(&key_hex).expect("hex");
    let password = a.body["mqtt"]["password"]
        .as_str()
        .expect("password")
        .to_owned();
    // Flush the WAL into the main file too, then look at every file in the data dir.
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&app.dir.0).expect("data dir") {
        let path = entry.expect("entry").path();
        files.push((path.clone(), std::fs::read(&path).expect("read")));
    }
    assert!(files.iter().any(|(p, _)| p.ends_with("charger.db")));
    for (path, bytes) in files {
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        assert!(
            !text.contains(&key_hex.to_lowercase()),
            "key hex in {}",
            path.display()
        );
        assert!(
            !text.contains(&password.to_lowercase()),
            "password in {}",
            path.display()
        );
        assert!(
            !bytes
                .windows(key_bytes.len())
                .any(|w| w == key_bytes.as_slice()),
            "raw key bytes in {}",
            path.display()
        );
    }
}

/// Found by schemathesis: `null` for a field that cannot be cleared, and a missing
/// required-but-nullable field, are 422 like every other schema violation.
#[tokio::test]
async fn nulls_and_missing_fields_the_schema_forbids_are_refused() {
    let app = charger_e2e::spawn_app().await;
    app.provision("acme", 1).await;
    let a = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "0A0B0C0D", "owner": "acme"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    for field in ["max_sessions", "role", "status", "devices"] {
        let a = app
            .patch("/api/v1/tags/0A0B0C0D", ADMIN_TOKEN, json!({ field: null }))
            .await;
        assert_error(&a, 422, "invalid_input");
    }
    let a = app
        .put("/api/v1/devices/acme-00000/tariff", ADMIN_TOKEN, json!({}))
        .await;
    assert_error(&a, 422, "invalid_input");
    let a = app
        .put(
            "/api/v1/devices/acme-00000/tariff",
            ADMIN_TOKEN,
            json!({"tariff": null}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    // A rated power may be left out (the default), never null.
    for (path, body) in [
        (
            "/api/v1/devices",
            json!({"id": "n1", "owner": "acme", "connectors": 1, "max_power_w": null}),
        ),
        (
            "/api/v1/devices/bulk",
            json!({"owner": "acme", "prefix": "n", "count": 1, "max_power_w": null}),
        ),
    ] {
        assert_error(
            &app.post(path, ADMIN_TOKEN, body).await,
            422,
            "invalid_input",
        );
    }
    let a = app
        .patch(
            "/api/v1/devices/acme-00000",
            ADMIN_TOKEN,
            json!({"max_power_w": null}),
        )
        .await;
    assert_error(&a, 422, "invalid_input");
}

#[tokio::test]
async fn tags_import_from_csv_all_or_none() {
    let app = charger_e2e::spawn_app().await;
    app.provision("acme", 2).await;
    let acme = app
        .post("/api/v1/owners/acme/tokens", ADMIN_TOKEN, Value::Null)
        .await
        .body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let import = |token: &str, body: &str| {
        let req = app
            .http
            .post(format!("{}/api/v1/tags/import", app.base))
            .bearer_auth(token)
            .header("content-type", "text/csv")
            .body(body.to_owned());
        async move {
            let r = req.send().await.expect("POST");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let csv = "uid,label,role,devices,max_sessions,expires_at\r\n\
               04a1b2c3,\"Van 7, blue\",driver,acme-00001,2,2030-01-01T00:00:00Z\r\n\
               0A0B0C0D,,installer,,,\r\n";
    assert_eq!(import(&acme, csv).await, (201, json!({"imported": 2})));
    let tag = app.get("/api/v1/tags/04A1B2C3", &acme).await.body;
    assert_eq!(tag["label"], "Van 7, blue");
    assert_eq!(tag["devices"], json!(["acme-00001"]));
    assert_eq!(tag["max_sessions"], 2);
    assert_eq!(
        app.get("/api/v1/tags/0A0B0C0D", &acme).await.body["role"],
        "installer"
    );

    // A bad row anywhere: nothing is imported, and the message names line and column.
    let (status, body) = import(&acme, "uid,role\n11111111,driver\n22222222,pilot\n").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("line 3, role"),
        "{body}"
    );
    assert_eq!(app.get("/api/v1/tags/11111111", &acme).await.status, 404);
    let (status, body) = import(&acme, "uid\n33333333\n04A1B2C3\n").await;
    assert_eq!(
        (status, &body["error"]),
        (409, &json!("tag_exists")),
        "{body}"
    );
    assert_eq!(app.get("/api/v1/tags/33333333", &acme).await.status, 404);
    for bad in [
        "",
        "label\nx\n",
        "uid,colour\n44444444,red\n",
        "uid\n\"44444444\n",
        "uid,label\n44444444\n",
    ] {
        let (status, body) = import(&acme, bad).await;
        assert_eq!(status, 422, "{bad:?}: {body}");
    }
    // Another owner's chargers or owner: refused; the admin must name the owner.
    let (status, _) = import(&acme, "uid,owner\n55555555,beta\n").await;
    assert_eq!(status, 422);
    let (status, _) = import(ADMIN_TOKEN, "uid\n55555555\n").await;
    assert_eq!(status, 422);
    let (status, _) = import(ADMIN_TOKEN, "uid,owner\n55555555,acme\n").await;
    assert_eq!(status, 201);
    let r = app
        .http
        .post(format!("{}/api/v1/tags/import", app.base))
        .bearer_auth(&acme)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 415);
}
