//! One storage suite, run on SQLite always and on PostgreSQL when `TEST_DATABASE_URL` is
//! set (in CI always). Each case gets a fresh database.

use charger_e2e::{on_both_databases, test_store, Db, TempDir};
use charger_server::billing::{Currency, Tariff};
use charger_server::devices::NewDevice;
use charger_server::devices::{PresenceChange, PresenceKind};
use charger_server::ids::{DeviceId, OwnerId, TagUid, TariffId};
use charger_server::owners::{Owner, TokenScope};
use charger_server::store::{SqlStore, Store, StoreError, StoredResult};
use charger_server::tags::{Tag, TagRole, TagStatus};
use chrono::{DateTime, TimeZone as _, Utc};
use rust_decimal::Decimal;

on_both_databases!(store_fixture =>
    owners_round_trip_and_duplicates_conflict,
    tokens_resolve_to_their_scope,
    devices_insert_atomically_with_connectors,
    tags_round_trip_and_bump_the_list_version,
    tariffs_keep_one_default_per_owner,
    meta_is_set_once,
    presence_applies_in_order_and_ignores_stale_closes,
    request_results_are_kept_and_the_first_one_wins,
    a_read_only_connection_reads_refuses_writes_and_holds_unknown_tags,
    a_rolled_back_request_leaves_nothing_and_the_batch_commits,
    fleet_and_tags_are_paged_searched_and_counted_in_the_database,
);

/// A migrated store on a fresh database, with the directory that holds it.
pub struct StoreFixture {
    store: SqlStore,
    _dir: TempDir,
}

async fn store_fixture(db: Db) -> Option<StoreFixture> {
    test_store(db)
        .await
        .map(|(store, dir)| StoreFixture { store, _dir: dir })
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_780_000_000_000 + secs * 1000 + 123)
        .single()
        .expect("valid time")
}

fn owner(id: &str) -> Owner {
    Owner {
        id: OwnerId::parse(id).expect("owner id"),
        name: format!("{id} Ltd"),
        created_at: t(0),
    }
}

fn device(id: &str, owner: &str, connectors: i64) -> NewDevice {
    NewDevice {
        id: DeviceId::parse(id).expect("device id"),
        owner: OwnerId::parse(owner).expect("owner id"),
        connectors,
        max_power_w: 22_000,
        password_hash: format!("hash-of-{id}"),
        key_version: 1,
        protocol: Default::default(),
        created_at: t(1),
    }
}

fn tag(uid: &str, owner: &str) -> Tag {
    Tag {
        uid: TagUid::parse(uid).expect("uid"),
        owner: OwnerId::parse(owner).expect("owner id"),
        role: TagRole::Driver,
        status: TagStatus::Active,
        expires_at: Some(t(86_400)),
        group: Some("fleet".into()),
        devices: vec![],
        max_sessions: 2,
        label: Some("Alice".into()),
        list_version: 0,
        created_at: t(2),
        updated_at: t(2),
    }
}

fn tariff(id: &str, owner: &str, default: bool) -> Tariff {
    Tariff {
        id: TariffId::parse(id).expect("tariff id"),
        owner: OwnerId::parse(owner).expect("owner id"),
        currency: Currency::parse("EUR").expect("currency"),
        energy_per_kwh: "0.3456".parse::<Decimal>().expect("decimal"),
        time_per_hour: Decimal::ONE,
        session_fee: "0.50".parse::<Decimal>().expect("decimal"),
        tax_rate: "0.21".parse::<Decimal>().expect("decimal"),
        default,
        created_at: t(3),
    }
}

async fn owners_round_trip_and_duplicates_conflict(fixture: StoreFixture) {
    let store: &dyn Store = &fixture.store;
    store.insert_owner(&owner("acme")).await.expect("insert");
    store.insert_owner(&owner("beta")).await.expect("insert");
    let got = store
        .get_owner(&OwnerId::parse("acme").expect("id"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got, owner("acme"), "times keep millisecond precision");
    assert!(matches!(
        store.insert_owner(&owner("acme")).await,
        Err(StoreError::Conflict(_))
    ));
    let all = store.list_owners().await.expect("list");
    assert_eq!(all.len(), 2);
    assert!(store
        .get_owner(&OwnerId::parse("nobody").expect("id"))
        .await
        .expect("get")
        .is_none());
}

async fn tokens_resolve_to_their_scope(fixture: StoreFixture) {
    let store: &dyn Store = &fixture.store;
    store.insert_owner(&owner("acme")).await.expect("insert");
    let acme = OwnerId::parse("acme").expect("id");
    assert!(!store.has_admin_token().await.expect("query"));
    let token = |hash: &str, owner: Option<&OwnerId>| charger_server::owners::NewToken {
        id: format!("tok_{hash}"),
        token_hash: hash.to_owned(),
        owner: owner.cloned(),
        name: None,
        created_at: t(0),
    };
    store
        .insert_token(&token("h-admin", None))
        .await
        .expect("admin");
    store
        .insert_token(&token("h-acme", Some(&acme)))
        .await
        .expect("owner");
    let listed = store.list_tokens(&acme).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, "tok_h-acme");
    assert!(store
        .delete_token(&acme, "tok_h-acme")
        .await
        .expect("revoke"));
    assert_eq!(store.find_token("h-acme").await.expect("find"), None);
    store
        .insert_token(&token("h-acme", Some(&acme)))
        .await
        .expect("owner again");
    assert!(store.has_admin_token().await.expect("query"));
    assert_eq!(
        store.find_token("h-admin").await.expect("find"),
        Some(TokenScope::Admin)
    );
    assert_eq!(
        store.find_token("h-acme").await.expect("find"),
        Some(TokenScope::Owner(acme))
    );
    assert_eq!(store.find_token("h-other").await.expect("find"), None);
    assert_eq!(store.delete_admin_tokens().await.expect("delete"), 1);
    assert_eq!(store.find_token("h-admin").await.expect("find"), None);
}

async fn devices_insert_atomically_with_connectors(fixture: StoreFixture) {
    let store: &dyn Store = &fixture.store;
    store.insert_owner(&owner("acme")).await.expect("insert");
    store.insert_owner(&owner("beta")).await.expect("insert");
    store
        .insert_devices(&[device("d1", "acme", 2), device("d2", "acme", 1)])
        .await
        .expect("insert");
    store
        .insert_devices(&[device("b1", "beta", 1)])
        .await
        .expect("insert");
    // A batch with one duplicate inserts nothing.
    let r = store
        .insert_devices(&[device("d3", "acme", 1), device("d1", "acme", 1)])
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    let d3 = DeviceId::parse("d3").expect("id");
    assert!(store.get_device(&d3).await.expect("get").is_none());

    let d1 = store
        .get_device(&DeviceId::parse("d1").expect("id"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(d1.connectors.len(), 2);
    assert_eq!(d1.connectors[0].state, "unavailable");
    assert!(!d1.online);
    let acme = OwnerId::parse("acme").expect("id");
    let mine = store.list_devices(Some(&acme)).await.expect("list");
    assert_eq!(
        mine.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["d1", "d2"]
    );
    assert_eq!(store.list_devices(None).await.expect("list").len(), 3);
    let auth = store
        .get_device_auth(&DeviceId::parse("b1").expect("id"))
        .await
        .expect("auth")
        .expect("present");
    assert_eq!(auth.password_hash, "hash-of-b1");
    assert_eq!(auth.owner.as_str(), "beta");
}

async fn tags_round_trip_and_bump_the_list_version(fixture: StoreFixture) {
    let store: &dyn Store = &fixture.store;
    store.insert_owner(&owner("acme")).await.expect("insert");
    store
        .insert_devices(&[device("d1", "acme", 1), device("d2", "acme", 1)])
        .await
        .expect("insert");
    let mut a = tag("04A1B2C3", "acme");
    a.devices = vec![DeviceId::parse("d1").expect("id")];
    store.insert_tag(&a).await.expect("insert");
    store
        .insert_tag(&tag("04A1B2C3D4E5F6", "acme"))
        .await
        .expect("insert");
    assert!(matches!(
        store.insert_tag(&tag("04A1B2C3", "acme")).await,
        Err(StoreError::Conflict(_))
    ));
    // Another owner enrolls the same card: its own, independent tag.
    store.insert_owner(&owner("beta")).await.expect("insert");
    let beta = OwnerId::parse("beta").expect("id");
    store
        .insert_tag(&tag("04A1B2C3", "beta"))
        .await
        .expect("the same uid under another owner");
    assert_eq!(store.find_tags(&a.uid).await.expect("find").len(), 2);
    let theirs = store
        .get_tag(&beta, &a.uid)
        .await
        .expect("get")
        .expect("present");
    assert!(theirs.devices.is_empty(), "limits stay with their owner");
    let acme = OwnerId::parse("acme").expect("id");
    let got = store
        .get_tag(&acme, &a.uid)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got.devices, a.devices);
    assert_eq!(got.expires_at, a.expires_at);
    assert_eq!(got.list_version, 1);

    let mut changed = got.clone();
    changed.status = TagStatus::Blocked;
    changed.devices = vec![];
    changed.label = None;
    assert!(store.update_tag(&changed).await.expect("update"));
    let got = store
        .get_tag(&acme, &a.uid)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got.status, TagStatus::Blocked);
    assert!(got.devices.is_empty());
    assert_eq!(got.label, None);
    assert_eq!(got.list_version, 3, "two inserts and one update");

    assert!(store.delete_tag(&acme, &a.uid, t(5)).await.expect("delete"));
    assert!(!store.delete_tag(&acme, &a.uid, t(5)).await.expect("delete"));
    assert!(store.get_tag(&acme, &a.uid).await.expect("get").is_none());
    assert!(
        store.get_tag(&beta, &a.uid).await.expect("get").is_some(),
        "the other owner's enrollment stays"
    );
    assert_eq!(store.list_tags(Some(&acme)).await.expect("list").len(), 1);
    // A deleted uid can be enrolled again.
    store
        .insert_tag(&tag("04A1B2C3", "acme"))
        .await
        .expect("re-insert");
}

async fn tariffs_keep_one_default_per_owner(fixture: StoreFixture) {
    let store: &dyn Store = &fixture.store;
    store.insert_owner(&owner("acme")).await.expect("insert");
    store
        .insert_devices(&[device("d1", "acme", 1)])
        .await
        .expect("insert");
    store
        .insert_tariff(&tariff("t1", "acme", true))
        .await
        .expect("insert");
    store
        .insert_tariff(&tariff("t2", "acme", true))
        .await
        .expect("insert");
    assert!(matches!(
        store.insert_tariff(&tariff("t2", "acme", false)).await,
        Err(StoreError::Conflict(_))
    ));
    let acme = OwnerId::parse("acme").expect("id");
    let all = store.list_tariffs(Some(&acme)).await.expect("list");
    let defaults: Vec<_> = all
        .iter()
        .filter(|t| t.default)
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(defaults, ["t2"]);
    store.insert_owner(&owner("beta")).await.expect("insert");
    store
        .insert_tariff(&tariff("t1", "beta", false))
        .await
        .expect("the same tariff id under another owner");
    let t1 = store
        .get_tariff(&acme, &TariffId::parse("t1").expect("id"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(
        t1.energy_per_kwh.to_string(),
        "0.3456",
        "decimals round-trip exactly"
    );
    let d1 = DeviceId::parse("d1").expect("id");
    assert!(store
        .set_device_tariff(&d1, &OwnerId::parse("acme").expect("id"), Some(&t1.id))
        .await
        .expect("assign"));
    let d = store.get_device(&d1).await.expect("get").expect("present");
    assert_eq!(d.tariff, Some(t1.id));
    let missing = TariffId::parse("nope").expect("id");
    assert!(store
        .set_device_tariff(&d1, &OwnerId::parse("acme").expect("id"), Some(&missing))
        .await
        .is_err());
}

async fn meta_is_set_once(fixture: StoreFixture) {
    let store: &dyn Store = &fixture.store;
    assert_eq!(store.get_meta("k").await.expect("get"), None);
    assert_eq!(store.init_meta("k", "a").await.expect("init"), "a");
    assert_eq!(store.init_meta("k", "b").await.expect("init"), "a");
}

async fn presence_applies_in_order_and_ignores_stale_closes(fixture: StoreFixture) {
    let store: &dyn Store = &fixture.store;
    store.insert_owner(&owner("acme")).await.expect("insert");
    store
        .insert_devices(&[device("d1", "acme", 1)])
        .await
        .expect("insert");
    let d1 = DeviceId::parse("d1").expect("id");
    let change = |conn, online: bool, secs| PresenceChange {
        device: d1.clone(),
        conn,
        kind: if online {
            PresenceKind::Connected
        } else {
            PresenceKind::Disconnected
        },
        at: t(secs),
    };
    // Connection 1 opens, connection 2 replaces it, then connection 1's close arrives late.
    store
        .record_presence(&[
            change(1, true, 10),
            change(2, true, 11),
            change(1, false, 12),
        ])
        .await
        .expect("presence");
    let d = store.get_device(&d1).await.expect("get").expect("present");
    assert!(d.online, "a stale close must not clear a newer connection");
    assert_eq!(d.last_seen, Some(t(11)));
    store
        .record_presence(&[change(2, false, 20)])
        .await
        .expect("presence");
    let d = store.get_device(&d1).await.expect("get").expect("present");
    assert!(!d.online);
    assert_eq!(d.last_seen, Some(t(20)));
    store
        .record_presence(&[change(3, true, 30)])
        .await
        .expect("presence");
    // A message seen on a connection moves only its last seen time.
    store
        .record_presence(&[PresenceChange {
            device: d1.clone(),
            conn: 3,
            kind: PresenceKind::Seen,
            at: t(35),
        }])
        .await
        .expect("presence");
    let d = store.get_device(&d1).await.expect("get").expect("present");
    assert!(d.online);
    assert_eq!(d.last_seen, Some(t(35)));
    // The history has each connection and disconnection that changed something.
    let q = |limit| charger_server::devices::HistoryQuery {
        limit,
        ..Default::default()
    };
    let history = store.device_history(&d1, &q(10)).await.expect("history");
    let kinds: Vec<&str> = history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["connected", "disconnected", "connected", "connected"]
    );
    assert_eq!(store.set_all_devices_offline().await.expect("reset"), 1);
    assert!(
        !store
            .get_device(&d1)
            .await
            .expect("get")
            .expect("present")
            .online
    );
}

async fn request_results_are_kept_and_the_first_one_wins(fixture: StoreFixture) {
    let store: &dyn Store = &fixture.store;
    store.insert_owner(&owner("acme")).await.expect("insert");
    store
        .insert_devices(&[device("d1", "acme", 1)])
        .await
        .expect("insert");
    let d1 = DeviceId::parse("d1").expect("id");
    let first = StoredResult {
        code: 200,
        body: r#"{"a":1}"#.into(),
    };
    let second = StoredResult {
        code: 422,
        body: r#"{"b":2}"#.into(),
    };
    let mut tx = store.begin().await.expect("begin");
    assert_eq!(tx.request_result(&d1, "42").await.expect("get"), None);
    let kept = tx
        .save_request_result(&kept_row(&d1, "42", "boot", &first), t(1))
        .await
        .expect("save");
    assert_eq!(kept, None, "the first answer is kept");
    let kept = tx
        .save_request_result(&kept_row(&d1, "42", "boot", &second), t(2))
        .await
        .expect("save");
    assert_eq!(
        kept,
        Some(first.clone()),
        "a repeat does not replace the stored answer, and gets it back"
    );
    // The id's JSON text is the key: "42" (a string) is another request.
    let kept = tx
        .save_request_result(&kept_row(&d1, "\"42\"", "boot", &second), t(3))
        .await
        .expect("save");
    assert_eq!(kept, None);
    tx.commit().await.expect("commit");
    let mut tx = store.begin().await.expect("begin");
    assert_eq!(
        tx.request_result(&d1, "42").await.expect("get"),
        Some(first)
    );
    tx.commit().await.expect("commit");
}

/// The read path's connection: the device with its kept answer in one read, writes
/// refused, unknown-tag sightings held back for the writer.
async fn a_read_only_connection_reads_refuses_writes_and_holds_unknown_tags(fixture: StoreFixture) {
    let store: &dyn Store = &fixture.store;
    store.insert_owner(&owner("acme")).await.expect("insert");
    store
        .insert_devices(&[device("d1", "acme", 1)])
        .await
        .expect("insert");
    let d1 = DeviceId::parse("d1").expect("id");
    let kept = StoredResult {
        code: 200,
        body: "{}".into(),
    };
    let mut tx = store.begin().await.expect("begin");
    tx.save_request_result(&kept_row(&d1, "7", "authorize", &kept), t(1))
        .await
        .expect("save");
    tx.commit().await.expect("commit");

    let mut read = store.begin_read().await.expect("read");
    let (charger, found) = read
        .charger(&d1, "7")
        .await
        .expect("read")
        .expect("the charger");
    assert_eq!(
        (charger.owner.as_str(), found),
        ("acme", Some((kept, Some(charger.key_version))))
    );
    let (_, found) = read
        .charger(&d1, "8")
        .await
        .expect("read")
        .expect("charger");
    assert_eq!(found, None);
    assert!(read
        .charger(&DeviceId::parse("nope").expect("id"), "7")
        .await
        .expect("read")
        .is_none());
    let uid = TagUid::parse("0BADCAFE").expect("uid");
    read.note_unknown_tag(&d1, &OwnerId::parse("acme").expect("id"), &uid, t(2))
        .await
        .expect("held");
    let err = read
        .save_request_result(
            &kept_row(
                &d1,
                "9",
                "authorize",
                &StoredResult {
                    code: 200,
                    body: "{}".into(),
                },
            ),
            t(3),
        )
        .await
        .expect_err("a write is refused");
    assert!(matches!(err, StoreError::ReadOnly), "{err}");
    let held = read.held_notes();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].uid, uid);
    read.commit().await.expect("nothing to commit");
    // Held back, not written.
    assert!(store
        .list_unknown_tags(None)
        .await
        .expect("list")
        .is_empty());
}

/// A request rolled back to its savepoint leaves nothing; the others in the batch commit.
async fn a_rolled_back_request_leaves_nothing_and_the_batch_commits(fixture: StoreFixture) {
    let store: &dyn Store = &fixture.store;
    store.insert_owner(&owner("acme")).await.expect("insert");
    store
        .insert_devices(&[device("d1", "acme", 1)])
        .await
        .expect("insert");
    let d1 = DeviceId::parse("d1").expect("id");
    let result = |n: u16| StoredResult {
        code: n,
        body: "{}".into(),
    };
    let mut tx = store.begin().await.expect("begin");
    tx.savepoint().await.expect("savepoint");
    tx.save_request_result(&kept_row(&d1, "1", "boot", &result(200)), t(1))
        .await
        .expect("save");
    tx.release_savepoint().await.expect("release");
    tx.savepoint().await.expect("savepoint");
    tx.save_request_result(&kept_row(&d1, "2", "boot", &result(201)), t(1))
        .await
        .expect("save");
    tx.rollback_to_savepoint().await.expect("rollback");
    tx.savepoint().await.expect("savepoint");
    tx.save_request_result(&kept_row(&d1, "3", "boot", &result(202)), t(1))
        .await
        .expect("save");
    tx.release_savepoint().await.expect("release");
    tx.commit().await.expect("commit");
    let mut tx = store.begin().await.expect("begin");
    assert_eq!(
        tx.request_result(&d1, "1").await.expect("get"),
        Some(result(200))
    );
    assert_eq!(tx.request_result(&d1, "2").await.expect("get"), None);
    assert_eq!(
        tx.request_result(&d1, "3").await.expect("get"),
        Some(result(202))
    );
    tx.commit().await.expect("commit");
}

/// A kept answer of `device` for request `id` (its JSON text), under key version 1.
fn kept_row(
    device: &DeviceId,
    id: &str,
    endpoint: &str,
    result: &StoredResult,
) -> charger_server::store::KeptResult {
    charger_server::store::KeptResult {
        device: device.clone(),
        request_id: id.to_owned(),
        endpoint: endpoint.to_owned(),
        result: result.clone(),
        key_version: 1,
    }
}

/// The console's queries: a page of chargers searched (a LIKE pattern's `%` and `_` are
/// literal) and filtered by state, after a cursor; the fleet's counts and faults; a page of
/// tags.
async fn fleet_and_tags_are_paged_searched_and_counted_in_the_database(fixture: StoreFixture) {
    use charger_server::devices::{DeviceQuery, DeviceState};
    use charger_server::tags::TagQuery;
    let store: &dyn Store = &fixture.store;
    store.insert_owner(&owner("acme")).await.expect("insert");
    store.insert_owner(&owner("beta")).await.expect("insert");
    store
        .insert_devices(&[
            device("a_1", "acme", 1),
            device("a-2", "acme", 2),
            device("a3", "acme", 1),
            device("ab4", "acme", 1),
        ])
        .await
        .expect("insert");
    store
        .insert_devices(&[device("b1", "beta", 1)])
        .await
        .expect("insert");
    let id = |s: &str| DeviceId::parse(s).expect("id");
    let mut tx = store.begin().await.expect("begin");
    tx.set_device_boot(&id("a-2"), "FW-9.1-Beta", "Wallbox X")
        .await
        .expect("boot");
    tx.set_device_boot(&id("a3"), "v1%-rc", "Wallbox Y")
        .await
        .expect("boot");
    tx.set_connector_state(&id("a-2"), 2, "faulted", Some("GroundFailure"), t(10))
        .await
        .expect("state");
    tx.set_connector_state(&id("ab4"), 1, "charging", None, t(11))
        .await
        .expect("state");
    tx.set_connector_state(&id("b1"), 1, "faulted", Some("OverVoltage"), t(12))
        .await
        .expect("state");
    tx.commit().await.expect("commit");

    let acme = OwnerId::parse("acme").expect("owner");
    let page =
        |search: Option<&str>, state: DeviceState, after: Option<&str>, limit: i64| DeviceQuery {
            owner: Some(acme.clone()),
            search: search.map(str::to_owned),
            state,
            after: after.map(id),
            limit,
        };
    let ids = |v: Vec<charger_server::devices::Device>| {
        v.into_iter().map(|d| d.id.to_string()).collect::<Vec<_>>()
    };
    let all = store
        .device_page(&page(None, DeviceState::All, None, 10))
        .await
        .expect("page");
    // (the order is the database's own: collations differ in where they put '-' and '_')
    let all = ids(all);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(sorted, ["a-2", "a3", "a_1", "ab4"]);
    let first = ids(store
        .device_page(&page(None, DeviceState::All, None, 2))
        .await
        .expect("page"));
    assert_eq!(first, all[..2]);
    let second = ids(store
        .device_page(&page(None, DeviceState::All, Some(&first[1]), 2))
        .await
        .expect("page"));
    assert_eq!(second, all[2..], "the next page starts after the cursor");
    for (search, expected) in [
        ("_", vec!["a_1"]),
        ("%", vec!["a3"]),
        ("1%-", vec!["a3"]),
        ("fw-9", vec!["a-2"]),
        ("WALLBOX X", vec!["a-2"]),
        ("b1", vec![]),
    ] {
        let found = store
            .device_page(&page(Some(search), DeviceState::All, None, 10))
            .await
            .expect("search");
        assert_eq!(ids(found), expected, "search {search:?}");
    }
    for (state, expected) in [
        (DeviceState::Faulted, vec!["a-2"]),
        (DeviceState::Charging, vec!["ab4"]),
        (DeviceState::Online, vec![]),
    ] {
        let found = store
            .device_page(&page(None, state, None, 10))
            .await
            .expect("filter");
        assert_eq!(ids(found), expected, "state {state:?}");
    }
    let counts = store.fleet_counts(Some(&acme)).await.expect("counts");
    assert_eq!(
        (
            counts.chargers,
            counts.online,
            counts.charging,
            counts.faulted
        ),
        (4, 0, 1, 1)
    );
    let everyone = store.fleet_counts(None).await.expect("counts");
    assert_eq!((everyone.chargers, everyone.faulted), (5, 2));
    let faults = store.recent_faults(Some(&acme), 10).await.expect("faults");
    assert_eq!(faults.len(), 1);
    assert_eq!(
        (
            faults[0].device.as_str(),
            faults[0].connector,
            faults[0].error.as_str()
        ),
        ("a-2", 2, "GroundFailure")
    );
    let history = store
        .device_history(
            &id("a-2"),
            &charger_server::devices::HistoryQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("history");
    assert!(
        history
            .iter()
            .any(|l| l.kind == "status" && l.detail.contains("GroundFailure")),
        "{history:?}"
    );
    let read =
        |kind, since: Option<i64>, through: Option<i64>| charger_server::devices::HistoryQuery {
            kind,
            since: since.map(t),
            through: through.map(t),
            limit: 10,
        };
    use charger_server::devices::HistoryKind;
    for (kind, since, through, expected) in [
        (HistoryKind::Status, None, None, 1),
        (HistoryKind::Connections, None, None, 0),
        (HistoryKind::Requests, None, None, 0),
        (HistoryKind::Status, Some(10), Some(10), 1),
        (HistoryKind::Status, Some(11), None, 0),
        (HistoryKind::Status, None, Some(9), 0),
    ] {
        let lines = store
            .device_history(&id("a-2"), &read(kind, since, through))
            .await
            .expect("history");
        assert_eq!(
            lines.len(),
            expected,
            "{kind:?} {since:?} {through:?}: {lines:?}"
        );
    }

    for (uid, owner) in [
        ("0A000001", "acme"),
        ("0A000002", "acme"),
        ("0A000003", "acme"),
        ("0B000001", "beta"),
    ] {
        store.insert_tag(&tag(uid, owner)).await.expect("tag");
    }
    let tags = |search: Option<&str>, after: Option<&str>| TagQuery {
        owner: Some(acme.clone()),
        search: search.map(str::to_owned),
        after: after.map(|u| (TagUid::parse(u).expect("uid"), acme.clone())),
        limit: 2,
    };
    let uids = |v: Vec<Tag>| v.into_iter().map(|t| t.uid.to_string()).collect::<Vec<_>>();
    assert_eq!(
        uids(store.tag_page(&tags(None, None)).await.expect("tags")),
        ["0A000001", "0A000002"]
    );
    assert_eq!(
        uids(
            store
                .tag_page(&tags(None, Some("0A000002")))
                .await
                .expect("tags")
        ),
        ["0A000003"]
    );
    assert_eq!(
        uids(
            store
                .tag_page(&tags(Some("a000003"), None))
                .await
                .expect("tags")
        ),
        ["0A000003"]
    );
    assert_eq!(
        uids(
            store
                .tag_page(&tags(Some("alice"), None))
                .await
                .expect("tags")
        )
        .len(),
        2
    );
}

/// One instance at a time does an exclusive job (the broker's reconciliation): a second
/// store on the same PostgreSQL database is refused while the first holds it, and gets it
/// once the first lets go, or once its connection is gone (a killed instance).
#[tokio::test]
async fn one_instance_at_a_time_holds_an_exclusive_job() {
    use charger_server::store::Exclusive;
    let dir = TempDir::new();
    let Some(url) = charger_e2e::fresh_database(Db::Postgres, &dir).await else {
        return;
    };
    let a = charger_server::store::connect(&url).await.expect("a store");
    let b = charger_server::store::connect(&url)
        .await
        .expect("a second store");
    let held = a
        .try_exclusive(Exclusive::BrokerReconcile)
        .await
        .expect("asks")
        .expect("the first gets it");
    assert!(b
        .try_exclusive(Exclusive::BrokerReconcile)
        .await
        .expect("asks")
        .is_none());
    drop(held);
    let mut got = None;
    for _ in 0..50 {
        got = b
            .try_exclusive(Exclusive::BrokerReconcile)
            .await
            .expect("asks");
        if got.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(got.is_some(), "the lock outlived its holder");
    // SQLite has one instance: always granted.
    let (s, _dir) = test_store(Db::Sqlite).await.expect("sqlite");
    let one = s
        .try_exclusive(Exclusive::BrokerReconcile)
        .await
        .expect("asks");
    let two = s
        .try_exclusive(Exclusive::BrokerReconcile)
        .await
        .expect("asks");
    assert!(one.is_some() && two.is_some());
}

/// What a busy PostgreSQL fails with (a deadlock broken by failing one transaction, a lock
/// time-out) is transient: a batch runs again instead of answering, and the domain maps it
/// to 503 (retry), never 500.
#[tokio::test]
async fn a_deadlock_and_a_lock_time_out_are_transient_never_internal() {
    use charger_server::error::Error;
    use sqlx::Connection as _;
    let dir = TempDir::new();
    let Some(url) = charger_e2e::fresh_database(Db::Postgres, &dir).await else {
        return;
    };
    let mut a = sqlx::PgConnection::connect(&url).await.expect("a");
    let mut b = sqlx::PgConnection::connect(&url).await.expect("b");
    for statement in [
        "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
        "INSERT INTO t VALUES (1, 0), (2, 0)",
    ] {
        sqlx::query(statement).execute(&mut a).await.expect("setup");
    }
    let check = |e: sqlx::Error| {
        let e = StoreError::Database(e);
        assert!(e.is_transient(), "{e}");
        assert!(matches!(Error::from(e), Error::Unavailable(_)));
    };
    // A lock time-out: b waits on a's row lock for 100 ms at most.
    sqlx::query("BEGIN").execute(&mut a).await.expect("begin");
    sqlx::query("UPDATE t SET v = 1 WHERE id = 1")
        .execute(&mut a)
        .await
        .expect("a locks 1");
    sqlx::query("SET lock_timeout = 100")
        .execute(&mut b)
        .await
        .expect("set");
    let timed_out = sqlx::query("UPDATE t SET v = 2 WHERE id = 1")
        .execute(&mut b)
        .await
        .expect_err("b times out");
    check(timed_out);
    sqlx::query("SET lock_timeout = 0")
        .execute(&mut b)
        .await
        .expect("set");
    // A deadlock: a holds 1 and wants 2, b holds 2 and wants 1.
    sqlx::query("BEGIN").execute(&mut b).await.expect("begin");
    sqlx::query("UPDATE t SET v = 2 WHERE id = 2")
        .execute(&mut b)
        .await
        .expect("b locks 2");
    let (ra, rb) = tokio::join!(
        sqlx::query("UPDATE t SET v = 1 WHERE id = 2").execute(&mut a),
        sqlx::query("UPDATE t SET v = 2 WHERE id = 1").execute(&mut b),
    );
    match (ra, rb) {
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => check(e),
        other => panic!("no deadlock: {other:?}"),
    }
}
