//! The `patriotpay` binary: parses settings and runs a subcommand (`serve` by default).
#![forbid(unsafe_code)]

use clap::Parser;
use patriotpay::config::{Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_new(&cli.config.log).unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("patriotpay: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = cli.config;
    match cli.command.unwrap_or(Command::Serve { demo: false }) {
        Command::Migrate => {
            patriotpay::open_storage(&cfg).await?;
            println!("Migrations applied.");
        }
        Command::DemoLink { patient } => {
            let (db, crypto) = patriotpay::open_storage(&cfg).await?;
            let tenant = patriotpay::demo::ensure(&db, &crypto).await?;
            let public = cfg
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", cfg.addr));
            let (help, url) = patriotpay::demo::link_text(
                &db,
                &crypto,
                &tenant,
                patient,
                public.trim_end_matches('/'),
                cfg.link_ttl_days,
            )
            .await?;
            println!("{help}");
            println!("{url}");
        }
        Command::Serve { demo } => {
            let running = patriotpay::start(&cfg).await?;
            println!("PatriotPay portal:        {}", running.public_url);
            println!("Sandbox card processor:   http://{}", running.sandbox_addr);
            if demo {
                let st = &running.state;
                let tenant = patriotpay::demo::ensure(&st.db, &st.crypto).await?;
                let (help, url) = patriotpay::demo::link_text(
                    &st.db,
                    &st.crypto,
                    &tenant,
                    1,
                    &running.public_url,
                    st.link_ttl_days,
                )
                .await?;
                println!("{help}");
                println!("Open this demo pay link in a browser (more: `cargo run -- demo-link --patient 2`):");
                println!("{url}");
            } else {
                println!(
                    "No demo data loaded; start with --demo for a demo practice and pay link."
                );
            }
            tokio::signal::ctrl_c().await?;
            println!("Shutting down.");
            running.stop().await;
        }
    }
    Ok(())
}
