//! [`AuthFairing`]: reads the settings, opens the store, loads the keys and
//! manages an [`Auth`] as Rocket state. Outside development it refuses to
//! launch while any item of the deployment checklist fails; what counts as
//! development fails closed (see [`Deployment`]).

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use auth_core::{
    Auth, AuthBuilder, AuthConfig, LaunchCheck, SigningAlgorithm,
    config::{Environment, KeySpec, MailTransport, MfaSettings, Secret},
    tenancy::Roles,
    tokens::KeySet,
};
use rocket::{
    Build, Data, Orbit, Request, Rocket,
    fairing::{self, Fairing, Info, Kind},
    figment::Figment,
};

use crate::secret_query::SecretQueryRoutes;

/// Where a development signing key is kept between restarts, unless
/// `AUTH_DEV_KEY_FILE` says otherwise. Never used outside a debug build in development.
const DEV_KEY_FILE: &str = ".auth-dev-key";

type Customize = Arc<dyn Fn(AuthBuilder) -> AuthBuilder + Send + Sync>;

/// Attach this to a Rocket to get the platform. Settings come from the
/// `auth` table of Rocket's figment (`[default.auth]` in `Rocket.toml`,
/// `ROCKET_AUTH={...}`), and the environment variables `DATABASE_URL` and
/// `AUTH_OUTBOX_DIR` override the database and select the file outbox.
///
/// At ignite, after every route is mounted, it checks them (see
/// [`policy`](crate::policy)): outside development it refuses to launch
/// while a route has neither `#[requires(...)]` nor `#[public]`, naming each.
#[derive(Clone, Default)]
pub struct AuthFairing {
    customize: Option<Customize>,
    allow_unmarked_routes: bool,
    /// Where [`AuthFairing::mounted_at`] mounts the routes and catchers.
    base: Option<String>,
    pages: crate::ui::Pages,
}

impl AuthFairing {
    /// The platform in one call: at ignite, mounts [`routes()`](crate::routes)
    /// and registers [`catchers()`](crate::catchers) under `base` (such as
    /// `/api/auth`), and mounts [`well_known()`](crate::well_known) at `/`.
    /// The host's own error pages elsewhere stay its own.
    pub fn mounted_at(base: impl Into<String>) -> Self {
        Self::default().mount_at(base)
    }

    /// Mounts the platform under `base` too (see [`AuthFairing::mounted_at`]).
    pub fn mount_at(mut self, base: impl Into<String>) -> Self {
        self.base = Some(base.into());
        self
    }

    /// How the hosted pages look, or [`Pages::off`](crate::ui::Pages::off).
    pub fn pages(mut self, pages: crate::ui::Pages) -> Self {
        self.pages = pages;
        self
    }

    /// Uses the application's ordered roles instead of owner > admin > member.
    pub fn with_roles<R: Roles>() -> Self {
        Self::default().customize(|builder| builder.roles::<R>())
    }

    /// Launches in production even while routes have neither `#[requires(...)]`
    /// nor `#[public]` (they are still logged). A code setting on purpose:
    /// no deployment variable can open routes.
    pub fn allow_unmarked_routes(mut self) -> Self {
        self.allow_unmarked_routes = true;
        self
    }

    /// Adjusts the [`AuthBuilder`] before it builds (mailer, roles, keys, clock).
    pub fn customize(mut self, f: impl Fn(AuthBuilder) -> AuthBuilder + Send + Sync + 'static) -> Self {
        let previous = self.customize.take();
        self.customize = Some(Arc::new(move |builder| {
            let builder = match &previous {
                Some(previous) => previous(builder),
                None => builder,
            };
            f(builder)
        }));
        self
    }
}

/// Reads `AuthConfig` from the figment's `auth` table and the environment.
pub(crate) fn load_config(figment: &Figment) -> Result<AuthConfig, String> {
    let mut config = if figment.find_value("auth").is_ok() {
        figment.extract_inner::<AuthConfig>("auth").map_err(|error| format!("[auth] settings: {error}"))?
    } else {
        AuthConfig::default()
    };
    if let Ok(url) = std::env::var("DATABASE_URL") {
        config.database_url = url;
    }
    if let Ok(dir) = std::env::var("AUTH_OUTBOX_DIR") {
        config.mail.transport = MailTransport::Outbox { dir: PathBuf::from(dir) };
    }
    Ok(config)
}

/// How a launch is judged: production, unless development is certain.
///
/// Fails closed. Development is a debug build on Rocket's debug profile, or
/// `auth.environment = "development"` written on purpose; any other profile
/// name (`production`, `staging`, a typo) is production. A release build is
/// never trusted with development's shortcuts that leave secrets behind: it
/// never generates a signing key and never writes mail to the file outbox,
/// whatever its profile or settings say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deployment {
    /// The checklist and the unmarked-route refusal are relaxed.
    pub development: bool,
    /// A debug build of the host app (`cfg!(debug_assertions)`).
    pub debug_build: bool,
}

impl Deployment {
    pub(crate) fn of(figment: &Figment, config: &AuthConfig) -> Self {
        Self::decide(cfg!(debug_assertions), figment.profile() == rocket::Config::DEBUG_PROFILE, config.environment)
    }

    fn decide(debug_build: bool, debug_profile: bool, environment: Option<Environment>) -> Self {
        let development = match environment {
            Some(environment) => environment == Environment::Development,
            None => debug_build && debug_profile,
        };
        Self { development, debug_build }
    }

    /// Whether a missing signing key may be replaced by a generated one.
    fn may_generate_keys(self) -> bool {
        self.development && self.debug_build
    }

    /// What a release build requires of `config` in every environment,
    /// before the checklist (in production the checklist requires both too).
    fn release_checks(config: &AuthConfig) -> Vec<LaunchCheck> {
        let outbox = matches!(config.mail.transport, MailTransport::Outbox { .. });
        vec![
            LaunchCheck {
                name: "release_never_generates_keys",
                setting: "tokens.signing_key".into(),
                requirement: "a release build never generates a signing key",
                passed: config.tokens.signing_key.is_some(),
            },
            LaunchCheck {
                name: "release_never_uses_outbox",
                setting: "mail.transport".into(),
                requirement: "a release build never writes mail to the outbox",
                passed: !outbox,
            },
        ]
    }

    /// The first of [`Self::release_checks`] that fails, in a release build.
    fn refusals(self, config: &AuthConfig) -> Result<(), String> {
        if self.debug_build {
            return Ok(());
        }
        match Self::release_checks(config).into_iter().find(|check| !check.passed) {
            Some(check) => Err(format!("{}: configure {}", check.requirement, check.setting)),
            None => Ok(()),
        }
    }
}

/// The deployment checklist of `rocket`'s configuration as its launch would
/// judge it, without opening the store or serving: a line per check
/// (`ok` or `FAIL`, its name, its setting), then the verdict; an error when
/// the launch would be refused. For the operators' `checklist` command.
pub(crate) fn checklist(rocket: &Rocket<Build>) -> Result<String, String> {
    let config = load_config(rocket.figment())?;
    config.validate().map_err(|e| format!("refused before the checklist: {e}"))?;
    let deployment = Deployment::of(rocket.figment(), &config);
    let release = Deployment::release_checks(&config);
    let mut production = config.launch_checks();
    production.push(LaunchCheck {
        name: "routes_marked",
        setting: "#[requires(...)] or #[public] on every route".into(),
        requirement: "every route of the app states its policy",
        passed: crate::policy::check_marks(rocket, true).is_ok(),
    });
    // The checklist is enforced outside development, and a release build
    // enforces its own checks in development too.
    let failed = |checks: &[LaunchCheck], enforced: bool| {
        if enforced { checks.iter().filter(|check| !check.passed).count() } else { 0 }
    };
    let production_launch = !deployment.development;
    let refused =
        failed(&release, production_launch || !deployment.debug_build) + failed(&production, production_launch);
    let checks = [release, production].concat();
    let lines: Vec<String> = checks
        .iter()
        .map(|check| {
            let state = if check.passed { "ok  " } else { "FAIL" };
            let why = if check.passed { String::new() } else { format!(": {}", check.requirement) };
            format!("{state} {:<28} {}{why}", check.name, check.setting)
        })
        .collect();
    let report = lines.join("\n");
    match (deployment.development, refused) {
        (true, 0) => Ok(format!("{report}\ndevelopment: not enforced; a production launch would refuse each FAIL")),
        (false, 0) => Ok(format!("{report}\nproduction: all {} checks pass", checks.len())),
        (_, refused) => Err(format!("a launch would be refused: {refused} of {} checks fail\n{report}", checks.len())),
    }
}

/// The development signing key: read from `path`, or generated and written
/// there (mode 0600) on first use, so restarts keep issued tokens valid.
pub(crate) fn development_key(path: &Path, algorithm: SigningAlgorithm) -> Result<KeySpec, String> {
    let kid = format!("dev-{}", algorithm_name(algorithm));
    let stored = match std::fs::read_to_string(path) {
        Ok(stored) => stored,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let generated = KeySet::generate(algorithm, &kid).map_err(|e| e.to_string())?;
            let material = generated.pem.or(generated.secret).ok_or("no key material generated")?;
            write_private(path, material.expose()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            tracing::warn!(path = %path.display(), "generated a development signing key; never use it in production");
            material.expose().to_owned()
        }
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    let material = Some(Secret::new(stored.trim()));
    Ok(if algorithm.is_symmetric() {
        KeySpec { kid, algorithm: Some(algorithm), secret: material, ..KeySpec::default() }
    } else {
        KeySpec { kid, algorithm: Some(algorithm), pem: material, ..KeySpec::default() }
    })
}

fn algorithm_name(algorithm: SigningAlgorithm) -> &'static str {
    match algorithm {
        SigningAlgorithm::Rs256 => "rs256",
        SigningAlgorithm::EdDsa => "eddsa",
        SigningAlgorithm::Es256 => "es256",
        SigningAlgorithm::Hs256 => "hs256",
    }
}

pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// Builds the platform from a figment; the error says what to fix. With
/// hosted pages under `ui_base`, the emailed links land there.
async fn build(figment: &Figment, customize: Option<&Customize>, ui_base: Option<&str>) -> Result<Auth, String> {
    let mut config = load_config(figment)?;
    if let Some(base) = ui_base {
        crate::ui::link_paths(&mut config, base);
    }
    config.validate().map_err(|e| e.to_string())?;
    let deployment = Deployment::of(figment, &config);
    if config.tokens.signing_key.is_none() && deployment.may_generate_keys() {
        let path = std::env::var_os("AUTH_DEV_KEY_FILE").map_or_else(|| PathBuf::from(DEV_KEY_FILE), PathBuf::from);
        config.tokens.signing_key = Some(development_key(&path, config.tokens.algorithm)?);
    }
    if config.mfa.encryption_key.is_none() && deployment.may_generate_keys() {
        config.mfa.encryption_key = config.tokens.signing_key.as_ref().map(MfaSettings::development_key);
    }
    deployment.refusals(&config).map_err(|e| format!("refusing to launch: {e}"))?;
    if deployment.development {
        tracing::warn!("auth platform in development: the deployment checklist is not enforced");
    } else {
        config.check_production().map_err(|e| format!("refusing to launch in production: {e}"))?;
    }
    if config.metrics.enabled {
        // Before the build, so that what the start records (the first revocation poll) is kept.
        crate::metrics::recorder();
    }
    let mut builder = Auth::builder(config);
    if let Some(customize) = customize {
        builder = customize(builder);
    }
    builder.build().await.map_err(|e| e.to_string())
}

#[rocket::async_trait]
impl Fairing for AuthFairing {
    fn info(&self) -> Info {
        Info { name: "auth platform", kind: Kind::Ignite | Kind::Liftoff | Kind::Request }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        let rocket = match &self.base {
            Some(base) => {
                let rocket = rocket
                    .mount(base.as_str(), crate::routes())
                    .register(base.as_str(), crate::catchers())
                    .mount("/", crate::well_known());
                if self.pages.enabled() {
                    rocket.mount(format!("{}/ui", base.trim_end_matches('/')), crate::ui::routes())
                } else {
                    rocket
                }
            }
            None => rocket,
        };
        let ui_base = crate::ui::mounted_base(&rocket);
        let development = load_config(rocket.figment()).map(|c| Deployment::of(rocket.figment(), &c).development);
        let built = match development {
            Ok(development) => match crate::policy::check_marks(&rocket, !development && !self.allow_unmarked_routes) {
                Ok(()) => build(rocket.figment(), self.customize.as_ref(), ui_base.as_deref()).await,
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        let built = built.and_then(|auth| crate::policy::check_roles(&rocket, auth.roles()).map(|()| auth));
        let built = built.and_then(|auth| match ui_base {
            Some(_) => crate::ui::Ui::of(&rocket, &self.pages, &auth).map(|ui| (auth, Some(ui))),
            None => Ok((auth, None)),
        });
        match built {
            Ok((auth, ui)) => {
                let cors = crate::cors::Cors::new(&auth.config().http.cors_allowed_origins);
                let secret_queries = SecretQueryRoutes::of(&rocket);
                let method_not_allowed = crate::method_not_allowed::MethodNotAllowed::of(&rocket);
                let browser_sessions = crate::browser::BrowserSessions::of(&rocket, auth.config());
                let rocket = match ui {
                    Some(ui) => rocket.manage(ui),
                    None => rocket,
                };
                let rocket = if auth.config().metrics.enabled && crate::metrics::recorder().is_some() {
                    rocket
                        .mount("/", rocket::routes![crate::metrics::prometheus_metrics])
                        .register("/metrics", crate::catchers())
                } else {
                    rocket
                };
                Ok(rocket
                    .manage(auth)
                    .manage(secret_queries)
                    .manage(browser_sessions)
                    .attach(cors)
                    .attach(method_not_allowed))
            }
            Err(error) => {
                tracing::error!("auth platform: {error}");
                eprintln!("auth platform: {error}");
                Err(rocket)
            }
        }
    }

    /// Runs before Rocket logs the request: keeps secrets of query strings out of it.
    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        if let Some(routes) = request.rocket().state::<SecretQueryRoutes>() {
            routes.redact(request);
        }
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        if let Some(auth) = rocket.state::<Auth>() {
            let keys = auth.keys();
            tracing::info!(store = auth.backend_name(), kid = keys.signing_kid(), "auth platform ready");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_debug_build_on_the_debug_profile_or_an_explicit_setting_is_development() {
        let decide = Deployment::decide;
        assert!(decide(true, true, None).development, "cargo run: a debug build on the debug profile");
        assert!(!decide(true, false, None).development, "any other profile name is production");
        assert!(!decide(false, true, None).development, "a release build is production, whatever its profile");
        assert!(!decide(false, false, None).development);
        assert!(!decide(true, true, Some(Environment::Production)).development, "production written on purpose");
        assert!(decide(false, false, Some(Environment::Development)).development, "development written on purpose");
    }

    #[test]
    fn a_release_build_never_generates_keys_nor_uses_the_outbox() {
        let release = Deployment::decide(false, true, Some(Environment::Development));
        assert!(!release.may_generate_keys());
        let mut config = AuthConfig::default();
        assert!(release.refusals(&config).unwrap_err().contains("signing key"));
        config.tokens.signing_key = Some(KeySpec { kid: "k".into(), ..KeySpec::default() });
        assert!(release.refusals(&config).unwrap_err().contains("outbox"), "the default transport is the outbox");
        config.mail.transport = MailTransport::Memory;
        assert!(release.refusals(&config).is_ok());
        let debug = Deployment::decide(true, true, None);
        assert!(debug.may_generate_keys() && debug.refusals(&AuthConfig::default()).is_ok());
    }
}
