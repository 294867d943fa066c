//! The harness shared by the store's test suites: a fresh database on SQLite and on a real
//! PostgreSQL (a throwaway cluster the test kit starts), and `on_both!`, which turns each case
//! `async fn case(s: &Store)` into one test per backend.

use capstan_store::{ConnectOptions, Store};

pub struct Db {
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::connect(&url, &ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Db {
        store,
        _dir: Some(dir),
    }
}

pub async fn postgres() -> Db {
    let pg = capstan_testkit::postgres().expect("throwaway PostgreSQL");
    let url = pg.create_database().expect("create database");
    let store = Store::connect(&url, &ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Db { store, _dir: None }
}

/// One test per case and backend; the case gets the store and checks it is the backend named.
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let db = crate::common::sqlite().await;
                    assert_eq!(db.store.backend(), capstan_store::Backend::Sqlite);
                    super::$case(&db.store).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let db = crate::common::postgres().await;
                    assert_eq!(db.store.backend(), capstan_store::Backend::Postgres);
                    super::$case(&db.store).await;
                }
            }
        )*
    };
}
pub(crate) use on_both;
