//! `rivulet users add|list|remove`: SCRAM users, either of a Rivulet broker's data directory
//! (`--data-dir`, offline: the way `kafka-storage format --add-scram` bootstraps Kafka's first
//! user; a running broker sees the change at the next login) or of any Kafka cluster online
//! (`--brokers` with client properties, KIP-554: the client sends a salted password). Passwords
//! are read from standard input only, never from the command line (where `ps` would show them),
//! and are not stored: the store keeps a salted, iterated SCRAM credential.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rivulet_auth::scram::{MAX_ITERATIONS, MIN_ITERATIONS};
use rivulet_auth::{CredentialStore, Mechanism, ScramCredential};

#[derive(Args)]
pub struct UsersArgs {
    /// The broker's data directory (`rivulet broker --data-dir`).
    #[arg(
        long,
        env = "RIVULET_DATA_DIR",
        global = true,
        default_value = "./data"
    )]
    data_dir: PathBuf,
    /// Manage the users of this cluster online instead of a data directory (needs Alter or
    /// Describe on the cluster: a super user).
    #[arg(long, global = true)]
    brokers: Option<String>,
    #[command(flatten)]
    client: super::connection::ClientConfigArgs,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user, or set a user's password for a mechanism; the password is read from stdin.
    Add {
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (PLAIN logins are checked against either).
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        /// Read the password from the first line of standard input (required: passwords are
        /// never taken from the command line).
        #[arg(long)]
        password_stdin: bool,
        /// PBKDF2 iterations (Kafka accepts 4096 to 16384).
        #[arg(long, default_value_t = MIN_ITERATIONS)]
        iterations: u32,
    },
    /// List users with their mechanisms and iteration counts.
    List,
    /// Remove a user (one mechanism with --mechanism, else all).
    Remove {
        name: String,
        #[arg(long)]
        mechanism: Option<String>,
    },
}

fn mechanism(name: &str) -> Result<Mechanism> {
    Mechanism::from_name(name).with_context(|| {
        format!(
            "--mechanism: `{}` is not SCRAM-SHA-256 or SCRAM-SHA-512",
            name.escape_debug()
        )
    })
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("the password on standard input is empty");
    }
    Ok(password)
}

/// `users add`'s mechanism and password (from stdin), checked.
fn to_add(
    m: &str,
    name: &str,
    password_stdin: bool,
    iterations: u32,
) -> Result<(Mechanism, String)> {
    let m = mechanism(m)?;
    if !password_stdin {
        bail!(
            "give the password on standard input with --password-stdin (e.g. `echo \"$PASSWORD\" | rivulet users add {} --password-stdin`)",
            name.escape_debug()
        );
    }
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        bail!("--iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}");
    }
    Ok((m, read_password()?))
}

/// Against a cluster (`--brokers`).
async fn online(args: UsersArgs, brokers: String) -> Result<()> {
    let conn = args.client.connection(&brokers)?;
    match args.command {
        UsersCommand::Add {
            name,
            mechanism: m,
            password_stdin,
            iterations,
        } => {
            let (m, password) = to_add(&m, &name, password_stdin, iterations)?;
            rivulet_client::users::upsert(&conn, &name, m, &password, iterations).await?;
            println!(
                "user {} ({m}, {iterations} iterations) stored on {brokers}",
                name.escape_debug()
            );
        }
        UsersCommand::List => {
            let users = rivulet_client::users::list(&conn).await?;
            if users.is_empty() {
                println!("no users on {brokers}");
            }
            for (u, infos) in users {
                let mechs: Vec<String> = infos
                    .iter()
                    .map(|(m, i)| format!("{m} (iterations {i})"))
                    .collect();
                println!("{}  {}", u.escape_debug(), mechs.join(", "));
            }
        }
        UsersCommand::Remove { name, mechanism: m } => {
            let mechs: Vec<Mechanism> = match m.as_deref() {
                Some(m) => vec![mechanism(m)?],
                None => Mechanism::ALL.to_vec(),
            };
            let mut removed = 0;
            for m in mechs {
                if rivulet_client::users::delete(&conn, &name, m).await.is_ok() {
                    removed += 1;
                }
            }
            if removed == 0 {
                bail!("no such user on {brokers}: {}", name.escape_debug());
            }
            println!("removed {}", name.escape_debug());
        }
    }
    Ok(())
}

pub async fn run(args: UsersArgs) -> Result<()> {
    if let Some(brokers) = args.brokers.clone() {
        return online(args, brokers).await;
    }
    let mut store = CredentialStore::open(&args.data_dir)?;
    match args.command {
        UsersCommand::Add {
            name,
            mechanism: m,
            password_stdin,
            iterations,
        } => {
            let (m, password) = to_add(&m, &name, password_stdin, iterations)?;
            let credential = ScramCredential::new(m, &password, iterations)?;
            store.upsert(&name, m, credential)?;
            println!(
                "user {} ({m}, {iterations} iterations) stored in {}",
                name.escape_debug(),
                args.data_dir.join(rivulet_auth::store::FILE_NAME).display()
            );
        }
        UsersCommand::List => {
            let users = store.list();
            if users.is_empty() {
                println!("no users in {}", args.data_dir.display());
            }
            for u in users {
                let mechs: Vec<String> = u
                    .mechanisms
                    .iter()
                    .map(|(m, i)| format!("{m} (iterations {i})"))
                    .collect();
                println!("{}  {}", u.name.escape_debug(), mechs.join(", "));
            }
        }
        UsersCommand::Remove { name, mechanism: m } => {
            let m = m.as_deref().map(mechanism).transpose()?;
            if !store.remove(&name, m)? {
                bail!(
                    "no such user{}: {}",
                    m.map(|m| format!(" with {m}")).unwrap_or_default(),
                    name.escape_debug()
                );
            }
            println!("removed {}", name.escape_debug());
        }
    }
    Ok(())
}
