//! Migrations carry existing data over: a database at the schema before owner namespaces
//! (migration 4), with a tariff, a device on it, a tag limited to that device and a
//! session, is migrated by the server's own start-up and keeps all of it, reachable
//! through the owner-scoped store.

use std::path::Path;

use charger_e2e::{fresh_database, on_both_databases, Db, TempDir};
use charger_server::ids::{DeviceId, OwnerId, TagUid, TariffId};
use charger_server::store::{self, Store};
use sqlx::migrate::Migrator;
use sqlx::Connection as _;

async fn url_at_version_4(db: Db) -> Option<(String, TempDir)> {
    let dir = TempDir::new();
    let url = fresh_database(db, &dir).await?;
    let folder = match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(folder);
    let mut migrator = Migrator::new(path).await.expect("migrations");
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= 4)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let seed = [
        "INSERT INTO owners (id, name, list_version, created_at) VALUES ('acme', 'Acme', 2, 1)",
        "INSERT INTO tariffs (id, owner_id, currency, energy_per_kwh, time_per_hour, session_fee,
             tax_rate, is_default, created_at) VALUES ('std', 'acme', 'EUR', '0.30', '0', '0', '0', 1, 1)",
        "INSERT INTO devices (id, owner_id, connectors, password_hash, key_version, tariff_id,
             online, created_at) VALUES ('d1', 'acme', 1, 'h', 1, 'std', 0, 1)",
        "INSERT INTO tags (uid, owner_id, role, status, max_sessions, list_version, created_at,
             updated_at) VALUES ('04A1B2C3', 'acme', 'driver', 'active', 1, 2, 1, 1)",
        "INSERT INTO tag_devices (uid, device_id) VALUES ('04A1B2C3', 'd1')",
        "INSERT INTO sessions (device_id, connector, owner_id, tag_uid, status, meter_start_wh,
             last_meter_wh, started_at, tariff_id, currency, minor_units, energy_per_kwh,
             time_per_hour, session_fee, tax_rate, created_at)
             VALUES ('d1', 1, 'acme', '04A1B2C3', 'active', 0, 0, 1, 'std', 'EUR', 2, '0.30',
             '0', '0', '0', 1)",
    ];
    match db {
        Db::Sqlite => {
            let options: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("sqlite url");
            let mut conn = sqlx::SqliteConnection::connect_with(&options.create_if_missing(true))
                .await
                .expect("sqlite");
            migrator.run(&mut conn).await.expect("migrate to 4");
            for sql in seed {
                sqlx::query(sql).execute(&mut conn).await.expect(sql);
            }
            conn.close().await.expect("close");
        }
        Db::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("postgres");
            migrator.run(&mut conn).await.expect("migrate to 4");
            for sql in seed {
                sqlx::query(sql).execute(&mut conn).await.expect(sql);
            }
            conn.close().await.expect("close");
        }
    }
    Some((url, dir))
}

on_both_databases!(url_at_version_4 =>
    owner_namespaces_keep_existing_tags_tariffs_and_their_links,
);

async fn owner_namespaces_keep_existing_tags_tariffs_and_their_links(fixture: (String, TempDir)) {
    let (url, _dir) = fixture;
    let store = store::connect(&url).await.expect("migrates to the latest");
    let acme = OwnerId::parse("acme").expect("id");
    let d1 = DeviceId::parse("d1").expect("id");
    let tag = store
        .get_tag(&acme, &TagUid::parse("04A1B2C3").expect("uid"))
        .await
        .expect("read")
        .expect("the tag is kept");
    assert_eq!(tag.devices, vec![d1.clone()], "its charger limit is kept");
    assert_eq!(tag.list_version, 2);
    let device = store.get_device(&d1).await.expect("read").expect("kept");
    assert_eq!(device.tariff.as_ref().map(TariffId::as_str), Some("std"));
    assert_eq!(device.max_power_w, 22_000);
    let tariff = store
        .get_tariff(&acme, &TariffId::parse("std").expect("id"))
        .await
        .expect("read");
    assert!(tariff.is_some_and(|t| t.default));
    assert_eq!(store.count_active_sessions().await.expect("count"), 1);
    // The rebuilt tables still enforce their links: a tariff of nobody cannot be set.
    assert!(store
        .set_device_tariff(
            &d1,
            &OwnerId::parse("acme").expect("id"),
            Some(&TariffId::parse("nope").expect("id"))
        )
        .await
        .is_err());
}
