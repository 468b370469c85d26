//! The operators' command line, for any host app: `migrate`,
//! `create-superuser`, `create-tenant`, `invite`, `generate-key`, `checklist`, and
//! the verbs of the staff's HTTP API (`find-user`, `deactivate`, `activate`,
//! `logout-all`, `audit`, `grant-staff`, `revoke-staff`) beside `serve`. It
//! ignites the host's own Rocket, so the commands see exactly the settings,
//! database and roles the server would, and it goes through the same
//! operations as HTTP ([`Auth::operators`] and the others): the same rules,
//! and every change in the audit trail, with `"cli"` as its actor. Sessions
//! it ends stop working on the running servers within
//! `tokens.revocation_poll_secs`.
//!
//! ```no_run
//! #[rocket::main]
//! async fn main() -> std::process::ExitCode {
//!     auth_rocket::cli::run(rocket::build().attach(auth_rocket::AuthFairing::default())).await
//! }
//! ```

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use auth_core::{
    Auth, AuthError, ClientInfo, Operator, SigningAlgorithm,
    contract::{AuditQuery, UserSearch},
    tokens::KeySet,
};
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
    /// Find users whose address contains EMAIL (ignoring case); one JSON object a line.
    FindUser {
        #[arg(long, default_value = "")]
        email: String,
        /// Pages of 50 users ordered by email, from 1.
        #[arg(long)]
        page: Option<String>,
    },
    /// Deactivate the account of EMAIL: it cannot sign in, and every session ends.
    Deactivate {
        #[arg(long)]
        email: String,
    },
    /// Reactivate the account of EMAIL.
    Activate {
        #[arg(long)]
        email: String,
    },
    /// End every session of the account of EMAIL.
    LogoutAll {
        #[arg(long)]
        email: String,
    },
    /// Read the audit trail, newest first; one JSON object a line.
    Audit {
        /// Events of the account of this address.
        #[arg(long)]
        email: Option<String>,
        /// Events of this kind, e.g. login_failed.
        #[arg(long)]
        event: Option<String>,
        /// Events at or after this RFC 3339 date-time.
        #[arg(long)]
        since: Option<String>,
        /// At most this many events (1 to 500; 100 without it).
        #[arg(long)]
        limit: Option<String>,
    },
    /// Make the account of EMAIL staff.
    GrantStaff {
        #[arg(long)]
        email: String,
    },
    /// Take the staff flag of the account of EMAIL; its sessions end.
    RevokeStaff {
        #[arg(long)]
        email: String,
    },
    /// Print the deployment checklist's state for this configuration, each
    /// launch check by name (docs/deployment.md), without opening the
    /// database or serving; fails when a launch would be refused.
    Checklist,
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
    report(run_command(cli.command.unwrap_or(Command::Serve), rocket).await)
}

/// Runs the command of `args` (the program's name first, as in
/// `std::env::args`) against `rocket`, and answers what it would print, or
/// why it failed; `serve` serves until Rocket shuts down.
pub async fn execute<I, T>(args: I, rocket: Rocket<Build>) -> Result<String, String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    run_command(cli.command.unwrap_or(Command::Serve), rocket).await
}

fn report(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `command`; its output, each line ended.
async fn run_command(command: Command, rocket: Rocket<Build>) -> Result<String, String> {
    if let Command::GenerateKey { algorithm, kid, out } = command {
        return generate_key(algorithm.into(), kid, out);
    }
    if let Command::Checklist = command {
        return crate::fairing::checklist(&rocket).map(ended);
    }
    let rocket = rocket.ignite().await.map_err(|e| format!("cannot start: {e}"))?;
    if let Command::Serve = command {
        rocket.launch().await.map_err(|e| e.to_string())?;
        return Ok(String::new());
    }
    let auth = rocket.state::<Auth>().ok_or("the app does not attach AuthFairing")?;
    let operators = auth.operators();
    let cli = ClientInfo::default();
    let output = match command {
        Command::Migrate => {
            // Igniting connected and ran the migrations.
            format!("database is up to date ({})", auth.backend_name())
        }
        Command::CreateSuperuser { email, full_name } => {
            let password = read_password()?;
            let user = operators.create_superuser(&email, &password, &full_name).await.map_err(describe)?;
            format!("superuser {} created with id {}", user.email, user.id)
        }
        Command::CreateTenant { name, owner_email } => {
            let owner = find_user(auth, &owner_email).await?;
            let tenant = auth.tenants().create(owner, &name, &cli).await.map_err(describe)?;
            format!("tenant {:?} created with id {}; {owner_email} is its {}", tenant.name, tenant.id, tenant.role)
        }
        Command::Invite { tenant, email, role } => {
            let invitation = operators.invite(tenant, &email, &role).await.map_err(describe)?;
            format!(
                "invited {} to tenant {tenant} as {} until {}; the link is on its way",
                invitation.email, invitation.role, invitation.expires_at
            )
        }
        Command::FindUser { email, page } => {
            let search = UserSearch::parse(Some(&email), page.as_deref()).map_err(describe)?;
            let found = operators.find_users(&search).await.map_err(describe)?;
            let mut lines = json_lines(&found.users);
            if found.has_more {
                lines.push(format!("more on page {}", found.page + 1));
            }
            lines.join("\n")
        }
        Command::Deactivate { email } => {
            let user = find_user(auth, &email).await?;
            operators.set_user_active(Operator::Cli, user, false, &cli).await.map_err(describe)?;
            format!("{email} is deactivated; its sessions have ended")
        }
        Command::Activate { email } => {
            let user = find_user(auth, &email).await?;
            operators.set_user_active(Operator::Cli, user, true, &cli).await.map_err(describe)?;
            format!("{email} is active")
        }
        Command::LogoutAll { email } => {
            let user = find_user(auth, &email).await?;
            operators.end_sessions(Operator::Cli, user, &cli).await.map_err(describe)?;
            format!("every session of {email} has ended")
        }
        Command::Audit { email, event, since, limit } => {
            let mut query =
                AuditQuery::parse(None, event.as_deref(), since.as_deref(), limit.as_deref()).map_err(describe)?;
            if let Some(email) = email {
                query.user_id = Some(find_user(auth, &email).await?);
            }
            json_lines(&operators.search_audit(&query).await.map_err(describe)?).join("\n")
        }
        Command::GrantStaff { email } => {
            let user = find_user(auth, &email).await?;
            operators.set_staff(Operator::Cli, user, true, &cli).await.map_err(describe)?;
            format!("{email} is staff")
        }
        Command::RevokeStaff { email } => {
            let user = find_user(auth, &email).await?;
            operators.set_staff(Operator::Cli, user, false, &cli).await.map_err(describe)?;
            format!("{email} is no longer staff; its sessions have ended")
        }
        Command::Serve | Command::GenerateKey { .. } | Command::Checklist => unreachable!("handled above"),
    };
    Ok(ended(output))
}

/// Each item as one line of JSON.
fn json_lines<T: serde::Serialize>(items: &[T]) -> Vec<String> {
    items.iter().map(|item| serde_json::to_string(item).unwrap_or_default()).collect()
}

/// `output` with a line end, unless empty.
fn ended(mut output: String) -> String {
    if !output.is_empty() {
        output.push('\n');
    }
    output
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

fn generate_key(algorithm: SigningAlgorithm, kid: String, out: Option<PathBuf>) -> Result<String, String> {
    let spec = KeySet::generate(algorithm, &kid).map_err(|e| e.to_string())?;
    let material = spec.pem.or(spec.secret).ok_or("no key material generated")?;
    match out {
        Some(path) => {
            crate::fairing::write_private(&path, material.expose())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            let field = if algorithm.is_symmetric() { "secret" } else { "pem_file" };
            eprintln!("wrote {}; configure tokens.signing_key = {{ kid = {kid:?}, {field} = ... }}", path.display());
            Ok(String::new())
        }
        None => Ok(ended(material.expose().to_owned())),
    }
}
