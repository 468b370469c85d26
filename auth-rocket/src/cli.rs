//! The operators' command line, for any host app: `migrate`,
//! `create-superuser`, `create-tenant`, `invite` and `generate-key`
//! beside `serve`. It ignites the host's own Rocket, so the commands see
//! exactly the settings, database and roles the server would, and it goes
//! through the same operations as HTTP ([`Auth::operators`] and the others):
//! the same rules, and every change in the audit trail.
//!
//! ```no_run
//! #[rocket::main]
//! async fn main() -> std::process::ExitCode {
//!     auth_rocket::cli::run(rocket::build().attach(auth_rocket::AuthFairing::default())).await
//! }
//! ```

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use auth_core::{Auth, AuthError, ClientInfo, SigningAlgorithm, tokens::KeySet};
use clap::{Parser, Subcommand, ValueEnum};
use rocket::{Build, Rocket};
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "Serve the app, or manage its users, tenants and keys")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the app (the default).
    Serve,
    /// Create the database tables, or bring them up to date.
    Migrate,
    /// Create an active, verified staff superuser. The password is asked for
    /// on a terminal, or read from the first line of standard input.
    CreateSuperuser {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        full_name: String,
    },
    /// Create a tenant owned by an existing user.
    CreateTenant {
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner_email: String,
    },
    /// Invite an email address to a tenant with a role: the invitation is
    /// mailed, and the address's account joins when it accepts.
    Invite {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// Generate a signing key (PKCS#8 PEM, or an HS256 secret) for `tokens.signing_key`.
    GenerateKey {
        #[arg(long, value_enum, default_value = "rs256")]
        algorithm: Algorithm,
        #[arg(long, default_value = "key-1")]
        kid: String,
        /// Write the key to this file (created with mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Algorithm {
    Rs256,
    Eddsa,
    Es256,
    Hs256,
}

impl From<Algorithm> for SigningAlgorithm {
    fn from(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Rs256 => Self::Rs256,
            Algorithm::Eddsa => Self::EdDsa,
            Algorithm::Es256 => Self::Es256,
            Algorithm::Hs256 => Self::Hs256,
        }
    }
}

/// Parses the process arguments and serves `rocket` or runs the command.
pub async fn run(rocket: Rocket<Build>) -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command.unwrap_or(Command::Serve), rocket).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command, rocket: Rocket<Build>) -> Result<(), String> {
    if let Command::GenerateKey { algorithm, kid, out } = command {
        return generate_key(algorithm.into(), kid, out);
    }
    let rocket = rocket.ignite().await.map_err(|e| format!("cannot start: {e}"))?;
    if let Command::Serve = command {
        rocket.launch().await.map_err(|e| e.to_string())?;
        return Ok(());
    }
    let auth = rocket.state::<Auth>().ok_or("the app does not attach AuthFairing")?;
    match command {
        Command::Migrate => {
            // Igniting connected and ran the migrations.
            println!("database is up to date ({})", auth.backend_name());
        }
        Command::CreateSuperuser { email, full_name } => {
            let password = read_password()?;
            let user = auth.operators().create_superuser(&email, &password, &full_name).await.map_err(describe)?;
            println!("superuser {} created with id {}", user.email, user.id);
        }
        Command::CreateTenant { name, owner_email } => {
            let owner = find_user(auth, &owner_email).await?;
            let tenant = auth.tenants().create(owner, &name, &ClientInfo::default()).await.map_err(describe)?;
            println!("tenant {:?} created with id {}; {owner_email} is its {}", tenant.name, tenant.id, tenant.role);
        }
        Command::Invite { tenant, email, role } => {
            let invitation = auth.operators().invite(tenant, &email, &role).await.map_err(describe)?;
            println!(
                "invited {} to tenant {tenant} as {} until {}; the link is on its way",
                invitation.email, invitation.role, invitation.expires_at
            );
        }
        Command::Serve | Command::GenerateKey { .. } => unreachable!("handled above"),
    }
    Ok(())
}

async fn find_user(auth: &Auth, email: &str) -> Result<Uuid, String> {
    match auth.operators().find_user(email).await {
        Ok(Some(user)) => Ok(user.id),
        Ok(None) => Err(format!("no user with email {email}")),
        Err(AuthError::Validation(_)) => Err(format!("{email:?} is not a valid email address")),
        Err(error) => Err(describe(error)),
    }
}

fn describe(error: AuthError) -> String {
    match error {
        AuthError::Validation(fields) => format!("invalid input: {}", serde_json::json!(fields)),
        AuthError::NotFound => "not found (unknown tenant or user)".into(),
        AuthError::NotAMember => "no such tenant".into(),
        other => other.to_string(),
    }
}

/// On a terminal, asks twice without echo; otherwise reads one line of stdin.
fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let password = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Password (again): ").map_err(|e| e.to_string())?;
        if password != again {
            return Err("the passwords do not match".into());
        }
        Ok(password)
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| e.to_string())?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

fn generate_key(algorithm: SigningAlgorithm, kid: String, out: Option<PathBuf>) -> Result<(), String> {
    let spec = KeySet::generate(algorithm, &kid).map_err(|e| e.to_string())?;
    let material = spec.pem.or(spec.secret).ok_or("no key material generated")?;
    match out {
        Some(path) => {
            crate::fairing::write_private(&path, material.expose())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            let field = if algorithm.is_symmetric() { "secret" } else { "pem_file" };
            eprintln!("wrote {}; configure tokens.signing_key = {{ kid = {kid:?}, {field} = ... }}", path.display());
        }
        None => println!("{}", material.expose()),
    }
    Ok(())
}
