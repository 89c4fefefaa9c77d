//! Settings parsed from flags and the environment, and the checks `serve` makes on them.

use super::*;
use clap::Parser;

#[test]
fn debug_redacts_secrets() {
    let mut c = Config::for_data_dir("/tmp/x".into());
    c.database_url = Some(Secret::new("postgres://u:hunter2@db/x"));
    c.migrate_database_url = Some(Secret::new("postgres://o:ownerpw@db/x"));
    c.webhook_secret = Some(Secret::new("whsec_supersecret"));
    c.webhook_secret_previous = Some(Secret::new("whsec_oldsecret"));
    c.stripe_secret_key = Some(Secret::new("sk_live_stripesecret"));
    let s = format!("{c:?}");
    for secret in [
        "hunter2",
        "ownerpw",
        "supersecret",
        "oldsecret",
        "stripesecret",
    ] {
        assert!(!s.contains(secret), "{s}");
    }
    let settings = c.stripe_settings().expect("settings");
    assert!(!format!("{settings:?}").contains("stripesecret"));
}

#[test]
fn stripe_key_from_env_or_file_never_both_never_neither() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Config::for_data_dir(dir.path().to_path_buf());
    c.processor = ProcessorKind::Stripe;
    let e = c.stripe_settings().expect_err("no key");
    assert!(
        e.to_string().contains("PATRIOTPAY_STRIPE_SECRET_KEY")
            && e.to_string().contains("PATRIOTPAY_STRIPE_SECRET_KEY_FILE"),
        "says what to set: {e}"
    );
    c.stripe_secret_key = Some(Secret::new("rk_test_restricted123"));
    let s = c.stripe_settings().expect("restricted key");
    assert_eq!(s.secret_key.expose(), "rk_test_restricted123");
    assert_eq!(s.api_url, None);
    let file = dir.path().join("stripe.key");
    std::fs::write(&file, "sk_test_fromfile456\n").expect("write");
    c.stripe_secret_key_file = Some(file.clone());
    let e = c.stripe_settings().expect_err("both");
    assert!(e.to_string().contains("not both"), "{e}");
    assert!(!e.to_string().contains("rk_test_restricted123"), "{e}");
    c.stripe_secret_key = None;
    assert_eq!(
        c.stripe_settings().expect("file").secret_key.expose(),
        "sk_test_fromfile456",
        "the file's key, without its newline"
    );
    std::fs::write(&file, "pk_test_publishable789").expect("write");
    let e = c.stripe_settings().expect_err("publishable");
    assert!(
        e.to_string().contains("sk_") && !e.to_string().contains("publishable789"),
        "{e}"
    );
    std::fs::write(&file, " \n").expect("write");
    assert!(c.stripe_settings().is_err(), "an empty file is no key");
    c.stripe_secret_key_file = Some(dir.path().join("missing"));
    assert!(c.stripe_settings().is_err());
}

#[test]
fn the_previous_webhook_secret_is_accepted_during_a_roll() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Config::for_data_dir(dir.path().to_path_buf());
    c.webhook_secret = Some(Secret::new("whsec_new"));
    assert_eq!(c.resolve_webhook_secrets().expect("one").len(), 1);
    c.webhook_secret_previous = Some(Secret::new("whsec_old"));
    let all: Vec<String> = c
        .resolve_webhook_secrets()
        .expect("two")
        .iter()
        .map(|s| s.expose().to_owned())
        .collect();
    assert_eq!(all, ["whsec_new", "whsec_old"]);
    let cli =
        Cli::try_parse_from(["patriotpay", "--processor", "stripe", "migrate"]).expect("parse");
    assert_eq!(cli.config.processor, ProcessorKind::Stripe);
}

#[test]
fn cli_parses_defaults() {
    let cli = Cli::try_parse_from([
        "patriotpay",
        "--addr",
        "127.0.0.1:4000",
        "--data-dir",
        "/d",
        "migrate",
    ])
    .expect("parse");
    assert!(matches!(cli.command, Some(Command::Migrate)));
    assert_eq!(cli.config.addr.port(), 4000);
    assert_eq!(cli.config.master_key_path(), PathBuf::from("/d/master.key"));
}

#[test]
fn a_local_key_behind_https_needs_the_acknowledgement() {
    let mut c = Config::for_data_dir(PathBuf::from("/d"));
    assert!(
        c.check_key_placement().is_ok(),
        "development: no public URL"
    );
    c.public_url = Some("http://127.0.0.1:3000".into());
    assert!(
        c.check_key_placement().is_ok(),
        "plain http is not production"
    );
    c.public_url = Some("https://pay.example".into());
    let e = c.check_key_placement().expect_err("refused");
    assert!(
        e.to_string().contains("PATRIOTPAY_KEY_PROVIDER=aws-kms"),
        "{e}"
    );
    c.local_key_in_production = Some("yes".into());
    assert!(
        c.check_key_placement().is_err(),
        "only the exact words acknowledge it"
    );
    c.local_key_in_production = Some(LOCAL_KEY_ACK.into());
    assert!(c.check_key_placement().is_ok());
    c.local_key_in_production = None;
    c.key_provider = KeyProviderKind::AwsKms;
    assert!(
        c.check_key_placement().is_ok(),
        "KMS keys are not beside the data"
    );
}

#[test]
fn the_sandbox_is_refused_where_patients_could_reach_it() {
    let mut c = Config::for_data_dir(PathBuf::from("/d"));
    assert!(
        c.check_processor_placement().is_ok(),
        "loopback, no public URL"
    );
    c.public_url = Some("http://127.0.0.1:3000".into());
    assert!(c.check_processor_placement().is_ok());
    c.public_url = Some("https://pay.example".into());
    let e = c.check_processor_placement().expect_err("refused");
    assert!(e.to_string().contains("PATRIOTPAY_PROCESSOR=stripe"), "{e}");
    assert!(e.to_string().contains("https://"), "{e}");
    c.public_url = None;
    c.addr = "0.0.0.0:3000".parse().expect("addr");
    let e = c.check_processor_placement().expect_err("refused");
    assert!(e.to_string().contains("beyond loopback"), "{e}");
    c.sandbox_in_production = Some("yes".into());
    assert!(
        c.check_processor_placement().is_err(),
        "only the exact words acknowledge it"
    );
    c.sandbox_in_production = Some(SANDBOX_ACK.into());
    assert!(c.check_processor_placement().is_ok());
}
