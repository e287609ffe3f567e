//! PostgreSQL: a throw-away schema per test, the shared scenarios, and
//! PostgreSQL-only behaviour (several handles, schema versions, corrupt rows).
//!
//! Everything here needs `CRM_TEST_POSTGRES_URL` (e.g.
//! `postgresql://postgres@127.0.0.1:5432/test`); without it each test prints
//! "skipped: CRM_TEST_POSTGRES_URL not set" and passes. The conformance suite
//! runs on [`PgTemp`] through `store_suite!` in `conformance.rs`.

use std::sync::atomic::{AtomicU64, Ordering};

use crm_core::store::postgres::{PostgresOptions, PostgresStore};
use crm_core::store::{Commit, CommitError, Receipt, Versioned};
use crm_core::Store;

pub const SKIPPED: &str = "skipped: CRM_TEST_POSTGRES_URL not set";

/// The test database URL, or `None` (after saying so) when it is not set.
pub fn url() -> Option<String> {
    match std::env::var("CRM_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            // Once per run, past the test harness's output capture, so the
            // skip is visible in a passing run.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "{SKIPPED}: PostgreSQL conformance, scenarios, concurrency and crash tests did not run"
                );
            });
            None
        }
    }
}

/// A schema name no other test (or test run) uses.
pub fn fresh_schema(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000_000;
    format!("crm_test_{tag}_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A store in a fresh schema that is dropped with the store.
pub struct PgTemp {
    store: Option<PostgresStore>,
}

impl PgTemp {
    /// `None` when `CRM_TEST_POSTGRES_URL` is not set.
    pub fn new() -> Option<PgTemp> {
        let url = url()?;
        Some(PgTemp::in_schema(&url, &fresh_schema("t")))
    }

    pub fn in_schema(url: &str, schema: &str) -> PgTemp {
        let options = PostgresOptions::new().schema(schema).pool_size(4);
        PgTemp { store: Some(PostgresStore::connect_with(url, options).expect("connect to CRM_TEST_POSTGRES_URL")) }
    }

    pub fn s(&self) -> &PostgresStore {
        self.store.as_ref().unwrap()
    }
}

impl Drop for PgTemp {
    fn drop(&mut self) {
        if let Some(s) = self.store.take() {
            let name = s.schema().to_string();
            if let Err(e) = s.drop_schema() {
                eprintln!("could not drop test schema {name}: {e}");
            }
        }
    }
}

delegate_store!(PgTemp);

/// A raw client on the test database with `search_path` set to `schema`.
fn raw(url: &str, schema: &str) -> postgres::Client {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.batch_execute(&format!("SET search_path TO \"{schema}\"")).unwrap();
    c
}

mod scenario_runner {
    //! The shared JSON scenarios on PostgreSQL, through the runner of `scenarios.rs`.

    use super::super::scenarios::{files, run};

    #[test]
    fn every_scenario_passes_on_postgres() {
        let Some(url) = super::url() else { return };
        let files = files();
        assert!(!files.is_empty(), "no scenarios found");
        let mut failures = Vec::new();
        // One schema per scenario, a few scenarios at a time.
        std::thread::scope(|scope| {
            let handles: Vec<_> = files
                .chunks(files.len().div_ceil(4))
                .map(|chunk| {
                    let url = url.clone();
                    scope.spawn(move || {
                        let mut failed = Vec::new();
                        for f in chunk {
                            let name = f.file_name().unwrap().to_string_lossy().to_string();
                            let store = super::PgTemp::in_schema(&url, &super::fresh_schema("sc"));
                            if let Err(e) = run(f, store) {
                                failed.push(format!("{name} [postgres]: {e}"));
                            }
                        }
                        failed
                    })
                })
                .collect();
            for h in handles {
                failures.extend(h.join().unwrap());
            }
        });
        assert!(
            failures.is_empty(),
            "{} of {} scenarios failed:\n{}",
            failures.len(),
            files.len(),
            failures.join("\n")
        );
        eprintln!("{} scenarios passed on postgres", files.len());
    }
}

// ----- PostgreSQL only ---------------------------------------------------------

use std::sync::Arc;

use chrono::{DateTime, Utc};
use crm_core::{Command, Engine, Order, Outcome, Program};
use rust_decimal::Decimal;

use super::conformance::{ident, mid, t0, tags, write};

fn tag_receipt(key: &str, member: &str) -> Receipt {
    Receipt {
        key: key.into(),
        now: t0(),
        member_id: Some(mid(member)),
        command: Command::AddTag { member_id: mid(member), tag: "x".into() },
        outcome: Outcome::Member { member_id: mid(member) },
    }
}

fn ok(r: Result<(), CommitError>) {
    if let Err(e) = r {
        panic!("commit failed: {e:?}");
    }
}

fn seed(s: &impl Store, id: &str) -> Versioned {
    ok(s.commit(Commit { members: vec![write(None, id, tags(1, 0))], ..Commit::default() }));
    s.load(&mid(id)).unwrap().unwrap()
}

fn engine<S: Store>(s: S) -> Engine<S> {
    Engine::new(Program::default_demo(), s)
}

fn paid(id: &str, member: &str, at: DateTime<Utc>, cents: i64) -> Order {
    Order::paid(id, member, at, Decimal::new(cents, 2))
}

#[test]
fn postgres_second_handle_sees_writes_and_stale_commit_is_rejected() {
    let Some(url) = url() else { return };
    let a = Arc::new(PgTemp::new().unwrap());
    let b = PostgresStore::connect_with(&url, PostgresOptions::new().schema(a.s().schema()).pool_size(2)).unwrap();
    seed(&a, "alice");
    let seen_by_b = b.load(&mid("alice")).unwrap().unwrap();
    ok(a.commit(Commit {
        members: vec![write(a.load(&mid("alice")).unwrap(), "alice", tags(1, 1))],
        ..Commit::default()
    }));
    let err = b
        .commit(Commit {
            members: vec![write(Some(seen_by_b), "alice", tags(1, 7))],
            receipts: vec![tag_receipt("k-b", "alice")],
            ..Commit::default()
        })
        .unwrap_err();
    assert_eq!(err, CommitError::Stale { member: mid("alice") });
    assert_eq!(b.receipt("k-b").unwrap(), None);
    assert_eq!(b.events(&mid("alice")).unwrap(), tags(2, 0));
    let (ea, eb) = (engine(a.clone()), engine(b));
    let now = t0();
    ea.record_order(paid("o-1", "bob", now, 5_000), now).unwrap();
    assert_eq!(eb.balance(&mid("bob"), "reward", now).unwrap().available, 50);
    assert_eq!(eb.record_order(paid("o-1", "bob", now, 6_000), now).unwrap_err().code(), "conflict");
}

#[test]
fn postgres_concurrent_identity_claims_have_one_winner() {
    let Some(_) = url() else { return };
    let store = PgTemp::new().unwrap();
    let x = ident("wechat", "shared");
    let barrier = std::sync::Barrier::new(6);
    let winners: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let (store, x, barrier) = (&store, x.clone(), &barrier);
                scope.spawn(move || {
                    let id = format!("m{i}");
                    barrier.wait();
                    let r = store.commit(Commit {
                        members: vec![write(None, &id, tags(1, 0))],
                        identities: vec![(x, Some(mid(&id)))],
                        ..Commit::default()
                    });
                    match r {
                        Ok(()) => 1,
                        Err(CommitError::IdentityTaken { .. }) => 0,
                        Err(e) => panic!("{e:?}"),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(winners, 1);
    let owner = store.identity_owner(&x).unwrap().unwrap();
    assert!(store.load(&owner).unwrap().is_some());
}

#[test]
fn postgres_large_batch_and_schema_versions() {
    let Some(url) = url() else { return };
    let store = Arc::new(PgTemp::new().unwrap());
    let schema = store.s().schema().to_string();
    let e = engine(store.clone());
    let now = t0();
    let orders: Vec<_> = (0..2_000).map(|i| paid(&format!("o-{i}"), &format!("m{}", i % 300), now, 1_000)).collect();
    let results = e.record_orders(&orders, now).unwrap();
    assert!(results.iter().all(|r| r.is_ok()));
    let mut n = 0;
    store
        .scan(&mut |v| {
            assert_eq!(v.version, store.events(&v.state.id).unwrap().len() as u64);
            n += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(n, 300);
    let mut keys = 0;
    store
        .receipts(&mut |_| {
            keys += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(keys, 2_000);
    assert_eq!(e.balance(&mid("m7"), "reward", now).unwrap().available, 70);

    let mut c = raw(&url, &schema);
    let v: i32 = c.query_one("SELECT max(version) FROM crm_schema_migrations", &[]).unwrap().get(0);
    assert_eq!(v as u32, crm_core::store::postgres::SCHEMA_VERSION);
    // Reconnecting to an up-to-date schema changes nothing.
    drop(PostgresStore::connect_with(&url, PostgresOptions::new().schema(&schema)).unwrap());
    c.execute("INSERT INTO crm_schema_migrations (version) VALUES ($1)", &[&(v + 1)]).unwrap();
    let err = PostgresStore::connect_with(&url, PostgresOptions::new().schema(&schema)).unwrap_err();
    assert_eq!(err.code(), "store_error");
    assert!(err.to_string().contains("newer"), "{err}");
    // Schema names are identifiers, never spliced from arbitrary text.
    let err = PostgresStore::connect_with(&url, PostgresOptions::new().schema("x; DROP TABLE y")).unwrap_err();
    assert_eq!(err.code(), "validation_error");
}

#[test]
fn postgres_corrupt_rows_are_store_errors() {
    let Some(url) = url() else { return };
    let store = Arc::new(PgTemp::new().unwrap());
    let e = engine(store.clone());
    let now = t0();
    e.record_order(paid("o-1", "alice", now, 1_000), now).unwrap();
    e.record_order(paid("o-2", "bob", now, 1_000), now).unwrap();
    raw(&url, store.s().schema())
        .batch_execute(
            "UPDATE members SET state = '{\"not\": \"a state\"}' WHERE id = 'alice';
             UPDATE events SET event = 'garbage' WHERE member_id = 'bob' AND seq = 1;
             UPDATE receipts SET body = '[]' WHERE key = 'order:o-2';",
        )
        .unwrap();
    super::conformance::assert_corrupt_rows_are_store_errors(&store);
    let bob = store.load(&mid("bob")).unwrap();
    let err = store
        .commit(Commit { members: vec![write(bob, "bob", tags(1, 0))], redact: vec![mid("bob")], ..Commit::default() })
        .unwrap_err();
    assert!(matches!(err, CommitError::Store(_)), "{err:?}");
    assert_eq!(store.load(&mid("bob")).unwrap().unwrap().version, 3);
}

#[test]
fn postgres_malformed_url_says_which_option() {
    // Needs no server: the URL is refused before connecting.
    let err = PostgresStore::connect("postgresql://postgres@127.0.0.1:1/test?colour=blue").unwrap_err();
    assert_eq!(err.code(), "store_error");
    assert!(err.to_string().contains("colour"), "{err}");
}

#[test]
fn postgres_unreachable_server_is_a_store_error() {
    // Needs no server: nothing listens on port 1.
    let err = PostgresStore::connect_with(
        "postgresql://postgres@127.0.0.1:1/test",
        PostgresOptions::new().connect_timeout(std::time::Duration::from_secs(2)),
    )
    .unwrap_err();
    assert_eq!(err.code(), "store_error");
    assert!(err.to_string().contains("connect"), "{err}");
}

/// Debian's PostgreSQL serves this self-signed certificate (`CN=localhost`)
/// with `ssl = on`.
const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// `url` with more query parameters.
fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// Whether the server sees the connections named `app` as TLS ones (`None`: it sees none).
fn tls_of(url: &str, app: &str) -> Option<bool> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let row = c
        .query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            &[&app],
        )
        .unwrap();
    row.get(0)
}

/// Over a Unix-domain socket libpq never uses TLS, whatever `sslmode`
/// says ("ignored for Unix domain socket communication"); neither does the
/// store, so a connection string that works with `psql` works here too.
#[test]
fn postgres_over_a_unix_socket_ignores_sslmode() {
    let Some(url) = url() else { return };
    let dir = "/var/run/postgresql";
    let port = url.parse::<postgres::Config>().ok().and_then(|c| c.get_ports().first().copied()).unwrap_or(5432);
    if !std::path::Path::new(&format!("{dir}/.s.PGSQL.{port}")).exists() {
        eprintln!("skipped: no PostgreSQL socket in {dir}");
        return;
    }
    let config: postgres::Config = url.parse().unwrap();
    let (user, db) = (config.get_user().unwrap_or("postgres"), config.get_dbname().unwrap_or("postgres"));
    let schema = fresh_schema("socket");
    for mode in ["require", "verify-ca"] {
        let app = format!("crm_socket_{}_{}", std::process::id(), mode.replace('-', "_"));
        let socket = format!(
            "host={dir} port={port} user={user} dbname={db} sslmode={mode} sslrootcert={SNAKEOIL} application_name={app}"
        );
        let store = PostgresStore::connect_with(&socket, PostgresOptions::new().schema(&schema).pool_size(1))
            .unwrap_or_else(|e| panic!("sslmode={mode} over the socket: {e}"));
        assert_eq!(tls_of(&url, &app), Some(false), "sslmode={mode}");
        drop(store);
    }
    // The same as a URL (the socket's directory percent-encoded as the host).
    let app = format!("crm_socket_{}_url", std::process::id());
    let socket =
        format!("postgresql://{user}@%2Fvar%2Frun%2Fpostgresql:{port}/{db}?sslmode=require&application_name={app}");
    let _store = PostgresStore::connect_with(&socket, PostgresOptions::new().schema(&schema).pool_size(1))
        .expect("sslmode=require over the socket, as a URL");
    assert_eq!(tls_of(&url, &app), Some(false));
    PostgresStore::connect_with(&url, PostgresOptions::new().schema(&schema)).unwrap().drop_schema().unwrap();
}

#[test]
fn postgres_tls_follows_sslmode_and_sslrootcert() {
    let Some(url) = url() else { return };
    let mut plain = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let ssl: String = plain.query_one("SHOW ssl", &[]).unwrap().get(0);
    if ssl != "on" || !std::path::Path::new(SNAKEOIL).exists() {
        eprintln!("skipped: the test server has no TLS with {SNAKEOIL}");
        return;
    }
    let schema = fresh_schema("tls");
    let tag = format!("crm_tls_{}", std::process::id());
    let open = |url: &str, params: &str, app: &str| {
        let url = with_params(url, &format!("{params}&application_name={tag}_{app}"));
        PostgresStore::connect_with(&url, PostgresOptions::new().schema(&schema).pool_size(1))
    };
    let app = |name: &str| format!("{tag}_{name}");

    // Encrypted without a check of the certificate (libpq's `require` and `prefer`), or not at all.
    let kept = open(&url, "sslmode=require", "require").expect("sslmode=require connects");
    assert_eq!(tls_of(&url, &app("require")), Some(true));
    let _prefer = open(&url, "sslmode=prefer", "prefer").expect("sslmode=prefer connects");
    assert_eq!(tls_of(&url, &app("prefer")), Some(true), "prefer uses the TLS the server offers");
    let _disable = open(&url, "sslmode=disable", "disable").expect("sslmode=disable connects");
    assert_eq!(tls_of(&url, &app("disable")), Some(false));

    // The chain is checked against the roots given: the snakeoil certificate
    // is trusted when named, not when another authority is the only root
    // (the first of the system's bundle; `system` itself is not used here:
    // on Debian it reads every file in /etc/ssl/certs, the snakeoil one too).
    let _ca = open(&url, &format!("sslmode=verify-ca&sslrootcert={SNAKEOIL}"), "ca").expect("verify-ca connects");
    assert_eq!(tls_of(&url, &app("ca")), Some(true));
    if let Ok(bundle) = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt") {
        let end = "-----END CERTIFICATE-----";
        let first = &bundle[..bundle.find(end).expect("a certificate in the bundle") + end.len()];
        let other = std::env::temp_dir().join(format!("{tag}_other_ca.pem"));
        std::fs::write(&other, format!("{first}\n")).unwrap();
        let other = other.to_string_lossy().into_owned();
        let untrusted = open(&url, &format!("sslmode=verify-ca&sslrootcert={other}"), "other").unwrap_err();
        assert_eq!(untrusted.code(), "store_error");
        assert!(untrusted.to_string().contains("certificate"), "{untrusted}");
        assert_eq!(tls_of(&url, &app("other")), None);
        // `require` with a root file checks the chain too, as libpq does.
        let also_checked = open(&url, &format!("sslmode=require&sslrootcert={other}"), "req_other").unwrap_err();
        assert!(also_checked.to_string().contains("certificate"), "{also_checked}");
        let _ = std::fs::remove_file(&other);
    }

    // verify-full also checks the host name: the certificate names `localhost`.
    if url.contains("127.0.0.1") {
        let wrong = open(&url, &format!("sslmode=verify-full&sslrootcert={SNAKEOIL}"), "by_ip").unwrap_err();
        assert!(wrong.to_string().contains("certificate"), "{wrong}");
        let by_name = url.replace("127.0.0.1", "localhost");
        let _full = open(&by_name, &format!("sslmode=verify-full&sslrootcert={SNAKEOIL}"), "full")
            .expect("verify-full connects to the name on the certificate");
        assert_eq!(tls_of(&url, &app("full")), Some(true));
    }

    // Settings the store cannot follow are refused before connecting, naming the setting.
    let bad = open(&url, "sslmode=allow", "allow").unwrap_err();
    assert_eq!(bad.code(), "validation_error", "{bad}");
    assert!(bad.to_string().contains("sslmode"), "{bad}");
    let no_root = open(&url, "sslmode=verify-full", "no_root").unwrap_err();
    assert!(no_root.to_string().contains("sslrootcert"), "{no_root}");
    kept.drop_schema().unwrap();
}

/// A stand-in for a PostgreSQL server that asks for client certificates
/// (`cert` authentication): it answers the client's SSLRequest, completes a
/// TLS handshake that requires a certificate signed by `ca`, reports what
/// the client presented, and hangs up (so the connection itself fails).
mod client_certificates {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::{mpsc, Arc};

    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::server::WebPkiClientVerifier;

    use crm_core::store::postgres::{PostgresOptions, PostgresStore};

    struct Pki {
        dir: std::path::PathBuf,
        ca: CertifiedIssuer<'static, KeyPair>,
        server: (CertificateDer<'static>, PrivateKeyDer<'static>),
        client: CertificateDer<'static>,
    }

    fn pki(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("crm-mtls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
            params.extended_key_usages = vec![usage];
            (params.signed_by(&key, &ca).unwrap(), key)
        };
        let (server, server_key) = leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
        let (client, client_key) = leaf("crm", ExtendedKeyUsagePurpose::ClientAuth);
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("client.pem"), client.pem()).unwrap();
        std::fs::write(dir.join("client.key"), client_key.serialize_pem()).unwrap();
        let server_key = PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
        Pki { dir, server: (server.der().clone(), server_key), client: client.der().clone(), ca }
    }

    /// Serve one connection; the client's certificate, or why the handshake failed.
    fn serve_once(pki: &Pki) -> (u16, mpsc::Receiver<Result<Option<CertificateDer<'static>>, String>>) {
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca.der().clone()).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![pki.server.0.clone()], pki.server.1.clone_key())
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = [0u8; 8];
            socket.read_exact(&mut request).unwrap();
            assert_eq!(&request[4..], &80_877_103u32.to_be_bytes(), "an SSLRequest first");
            socket.write_all(b"S").unwrap();
            let mut tls = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            let outcome = loop {
                match tls.complete_io(&mut socket) {
                    Ok(_) if !tls.is_handshaking() => {
                        break Ok(tls.peer_certificates().and_then(|c| c.first().cloned()));
                    }
                    Ok(_) => continue,
                    Err(e) => break Err(e.to_string()),
                }
            };
            let _ = tx.send(outcome);
        });
        (port, rx)
    }

    fn connect(port: u16, pki: &Pki, client: bool) -> crm_core::CrmError {
        let dir = pki.dir.display();
        let mut url = format!("postgresql://crm@localhost:{port}/shop?sslmode=verify-full&sslrootcert={dir}/ca.pem");
        if client {
            url.push_str(&format!("&sslcert={dir}/client.pem&sslkey={dir}/client.key"));
        }
        let options = PostgresOptions::new().connect_timeout(std::time::Duration::from_secs(5));
        PostgresStore::connect_with(&url, options).expect_err("the stand-in hangs up after the handshake")
    }

    #[test]
    fn the_client_certificate_is_presented_when_the_server_asks() {
        let pki = pki("given");
        let (port, seen) = serve_once(&pki);
        let err = connect(port, &pki, true);
        assert_eq!(err.code(), "store_error", "{err}");
        let presented = seen.recv().unwrap().expect("the handshake completes with the client's certificate");
        assert_eq!(presented, Some(pki.client.clone()));
        let _ = std::fs::remove_dir_all(&pki.dir);
    }

    #[test]
    fn without_sslcert_a_server_that_asks_refuses_the_handshake() {
        let pki = pki("none");
        let (port, seen) = serve_once(&pki);
        let err = connect(port, &pki, false);
        assert_eq!(err.code(), "store_error", "{err}");
        let refused = seen.recv().unwrap().expect_err("no certificate, no handshake");
        assert!(refused.to_lowercase().contains("certificate"), "{refused}");
        let _ = std::fs::remove_dir_all(&pki.dir);
    }
}
