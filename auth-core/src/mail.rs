//! Outgoing mail: SMTP in production, an `.eml` outbox directory in
//! development, memory in tests. Every implementation builds the same RFC 5322
//! message, so header injection is refused the same way everywhere.

use std::{
    fmt,
    io::{self, Write as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use lettre::{
    AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor,
    message::{
        Body, Mailbox,
        header::{ContentTransferEncoding, ContentType},
    },
    transport::smtp::authentication::Credentials,
};
use uuid::Uuid;

use crate::config::{ConfigError, MailSettings, MailTransport, Secret};

/// Bound on connecting to the SMTP server and on each SMTP command.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The implicit-TLS submission port (RFC 8314); other ports use STARTTLS.
const SMTPS_PORT: u16 = 465;

/// One plain-text email. `Debug` leaves the body out: it carries the
/// one-time links.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email").field("to", &self.to).field("subject", &self.subject).finish_non_exhaustive()
    }
}

/// Why an email was not sent. Messages name no address, body or credential.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the recipient is not a valid email address")]
    InvalidRecipient,
    /// A line break (or other control character) in the recipient or subject,
    /// which could otherwise smuggle extra headers into the message.
    #[error("a header of the email contains a line break or control character")]
    HeaderInjection,
    #[error("the email could not be built")]
    Build(#[source] lettre::error::Error),
    #[error("the mail server could not be reached or refused the email")]
    Transport(#[source] lettre::transport::smtp::Error),
    #[error("the email could not be written to the outbox")]
    Outbox(#[source] io::Error),
}

#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}

/// Builds the mailer chosen by `settings.transport`.
///
/// The SMTP mailer must be built inside a Tokio runtime (its connection pool
/// starts a background task); otherwise this returns an error.
pub fn mailer_from_settings(settings: &MailSettings) -> Result<Arc<dyn Mailer>, ConfigError> {
    let from = settings.from.as_str();
    Ok(match &settings.transport {
        MailTransport::Outbox { dir } => Arc::new(FileOutbox::new(from, dir.clone())?),
        MailTransport::Memory => Arc::new(MemoryMailer::new(from)?),
        MailTransport::Smtp { host, port, username, password, insecure } => {
            let login = match (username, password) {
                (Some(username), Some(password)) => Some((username.as_str(), password)),
                (None, None) => None,
                _ => {
                    return Err(ConfigError::single(
                        "mail.transport.username",
                        "set both username and password, or neither",
                    ));
                }
            };
            Arc::new(SmtpMailer::new(from, host, *port, login, *insecure)?)
        }
    })
}

/// Sends through an SMTP server: implicit TLS on port 465, STARTTLS (required,
/// never downgraded) on any other port, plain text only when `insecure`.
pub struct SmtpMailer {
    from: Mailbox,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpMailer {
    /// Must be called inside a Tokio runtime. Does not connect yet.
    pub fn new(
        from: &str,
        host: &str,
        port: u16,
        login: Option<(&str, &Secret)>,
        insecure: bool,
    ) -> Result<Self, ConfigError> {
        let from = parse_from(from)?;
        // lettre's pool spawns its cleanup task on build; outside a runtime that
        // would panic.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::single(
                "mail.transport",
                "the SMTP mailer must be created inside a Tokio runtime",
            ));
        }
        let tls_error = |e: lettre::transport::smtp::Error| {
            ConfigError::single("mail.transport.host", format!("cannot set up TLS for this host: {e}"))
        };
        let mut builder = if insecure {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        } else if port == SMTPS_PORT {
            AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(tls_error)?
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(tls_error)?
        }
        .port(port)
        .timeout(Some(SMTP_TIMEOUT));
        if let Some((username, password)) = login {
            builder = builder.credentials(Credentials::new(username.to_owned(), password.expose().to_owned()));
        }
        Ok(Self { from, transport: builder.build() })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let message = build_message(&self.from, email)?;
        self.transport.send(message).await.map_err(MailError::Transport)?;
        Ok(())
    }
}

/// Writes each email as an RFC 5322 `.eml` file, `<timestamp>-<uuid v7>.eml`,
/// into a directory (development: open the files with any mail client).
#[derive(Debug)]
pub struct FileOutbox {
    from: Mailbox,
    dir: PathBuf,
}

impl FileOutbox {
    /// Creates `dir` if needed.
    pub fn new(from: &str, dir: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let from = parse_from(from)?;
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| {
            ConfigError::single("mail.transport.dir", format!("cannot create the outbox directory: {e}"))
        })?;
        Ok(Self { from, dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for FileOutbox {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let bytes = build_message(&self.from, email)?.formatted();
        let name = format!("{}-{}.eml", chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"), Uuid::now_v7());
        let dir = self.dir.clone();
        // File I/O blocks; keep it off the async workers.
        let path = tokio::task::spawn_blocking(move || write_whole_file(&dir, &name, &bytes))
            .await
            .map_err(|e| MailError::Outbox(io::Error::other(e)))?
            .map_err(MailError::Outbox)?;
        tracing::info!(path = %path.display(), "email written to the outbox");
        Ok(())
    }
}

/// Writes under a hidden temporary name, then renames (atomic within one
/// directory), so a reader never sees half a message.
fn write_whole_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    // Recreated in case someone emptied the outbox by deleting the directory.
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let written = std::fs::File::create_new(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(error) = written.and_then(|()| std::fs::rename(&temporary, &path)) {
        // Best effort: the temporary file is worthless now.
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    Ok(path)
}

/// Keeps every sent email in memory (tests). Clones share the same list, so a
/// test can keep one clone and hand another to the code under test.
#[derive(Debug, Clone)]
pub struct MemoryMailer {
    from: Mailbox,
    sent: Arc<Mutex<Vec<Email>>>,
}

impl MemoryMailer {
    pub fn new(from: &str) -> Result<Self, ConfigError> {
        Ok(Self { from: parse_from(from)?, sent: Arc::default() })
    }

    /// Every email sent so far, oldest first.
    pub fn sent(&self) -> Vec<Email> {
        self.lock().clone()
    }

    /// The latest email sent to `to` (compared case-insensitively).
    pub fn last_to(&self, to: &str) -> Option<Email> {
        self.lock().iter().rev().find(|email| email.to.eq_ignore_ascii_case(to)).cloned()
    }

    // A panic elsewhere cannot leave the list half-updated (push is the only
    // mutation), so a poisoned lock is still safe to use.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Email>> {
        self.sent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        // Built and thrown away so tests reject exactly what SMTP would reject.
        build_message(&self.from, email)?;
        self.lock().push(email.clone());
        Ok(())
    }
}

fn parse_from(from: &str) -> Result<Mailbox, ConfigError> {
    let invalid =
        || ConfigError::single("mail.from", "must be a mailbox such as `Auth Platform <no-reply@example.com>`");
    // lettre's parser ignores trailing input, so refuse control characters first.
    if from.chars().any(char::is_control) {
        return Err(invalid());
    }
    from.parse().map_err(|_| invalid())
}

fn build_message(from: &Mailbox, email: &Email) -> Result<Message, MailError> {
    // Checked here rather than left to lettre: its address parser ignores
    // whatever follows a valid address, and it encodes rather than refuses line
    // breaks in a subject. A line break in either is a bug or an attack.
    if email.to.chars().any(char::is_control) || email.subject.chars().any(char::is_control) {
        return Err(MailError::HeaderInjection);
    }
    let to: Mailbox = email.to.parse().map_err(|_| MailError::InvalidRecipient)?;
    // A Message-ID on the sender's domain, rather than lettre's default on this
    // machine's hostname, which would leak internal names.
    let message_id = format!("<{}@{}>", Uuid::now_v7(), from.email.domain());
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.as_str())
        .message_id(Some(message_id))
        .header(ContentType::TEXT_PLAIN)
        .body(body(&email.text))
        .map_err(MailError::Build)
}

/// Plain ASCII text with lines of at most 998 characters (RFC 5322) goes out
/// as 7bit, untouched: lettre would re-encode any line over 76 characters as
/// quoted-printable, which splits the links of a raw `.eml`. Anything else
/// gets lettre's choice of encoding.
fn body(text: &str) -> Body {
    let plain = text.is_ascii() && !text.contains(['\0', '\r']) && text.lines().all(|line| line.len() <= 998);
    if plain {
        let crlf = text.replace('\n', "\r\n");
        return Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit);
    }
    Body::new(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FROM: &str = "Auth Platform <no-reply@example.com>";

    fn email() -> Email {
        Email {
            to: "jane@example.org".into(),
            subject: "Verify your email".into(),
            text: "Hello Jane,\nopen https://auth.example.com/verify/abc123 to verify your address.\n".into(),
        }
    }

    fn injected() -> [Email; 3] {
        [
            Email { subject: "Hello\r\nBcc: evil@example.net".into(), ..email() },
            Email { subject: "Hello\nBcc: evil@example.net".into(), ..email() },
            Email { to: "jane@example.org\r\nBcc: evil@example.net".into(), ..email() },
        ]
    }

    fn eml_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).collect();
        files.sort();
        files
    }

    #[tokio::test]
    async fn file_outbox_writes_a_parseable_eml() {
        let temp = tempfile::TempDir::new().unwrap();
        let dir = temp.path().join("outbox");
        let outbox = FileOutbox::new(FROM, &dir).unwrap();
        assert!(dir.is_dir(), "the outbox creates its directory");
        outbox.send(&email()).await.unwrap();

        let files = eml_files(&dir);
        assert_eq!(files.len(), 1, "no temporary file is left: {files:?}");
        let name = files[0].file_name().unwrap().to_str().unwrap();
        assert!(name.ends_with(".eml") && name.starts_with("20"), "{name}");
        let content = std::fs::read_to_string(&files[0]).unwrap();

        // RFC 5322: CRLF-terminated header fields, an empty line, then the body.
        let (head, body) = content.split_once("\r\n\r\n").expect("headers end with an empty line");
        let mut headers = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                continue; // a folded continuation line
            }
            let (name, value) = line.split_once(':').unwrap_or_else(|| panic!("not a header: {line}"));
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let header = |wanted: &str| {
            headers
                .iter()
                .find(|(name, _)| name == wanted)
                .map(|(_, value)| value.as_str())
                .unwrap_or_else(|| panic!("no {wanted} header in {head}"))
        };
        assert_eq!(header("to"), "jane@example.org");
        assert!(header("from").contains("no-reply@example.com"));
        assert_eq!(header("subject"), "Verify your email");
        assert!(header("message-id").ends_with("@example.com>"));
        header("date");
        assert!(body.contains("open https://auth.example.com/verify/abc123 to verify"), "{body}");
    }

    #[tokio::test]
    async fn file_outbox_gives_each_email_its_own_file() {
        let temp = tempfile::TempDir::new().unwrap();
        let outbox = FileOutbox::new(FROM, temp.path()).unwrap();
        for _ in 0..3 {
            outbox.send(&email()).await.unwrap();
        }
        assert_eq!(eml_files(temp.path()).len(), 3);
    }

    #[tokio::test]
    async fn memory_mailer_records_sent_emails() {
        let mailer = MemoryMailer::new(FROM).unwrap();
        let shared = mailer.clone();
        let second = Email { subject: "Reset your password".into(), ..email() };
        let other = Email { to: "john@example.org".into(), ..email() };
        for sent in [email(), other.clone(), second.clone()] {
            mailer.send(&sent).await.unwrap();
        }
        assert_eq!(shared.sent(), vec![email(), other.clone(), second.clone()]);
        assert_eq!(shared.last_to("Jane@Example.org"), Some(second));
        assert_eq!(shared.last_to("john@example.org"), Some(other));
        assert_eq!(shared.last_to("nobody@example.org"), None);
    }

    #[tokio::test]
    async fn header_injection_is_refused() {
        let memory = MemoryMailer::new(FROM).unwrap();
        let temp = tempfile::TempDir::new().unwrap();
        let outbox = FileOutbox::new(FROM, temp.path()).unwrap();
        for bad in injected() {
            let error = memory.send(&bad).await.unwrap_err();
            assert!(matches!(error, MailError::HeaderInjection), "{error:?}");
            let error = outbox.send(&bad).await.unwrap_err();
            assert!(matches!(error, MailError::HeaderInjection), "{error:?}");
        }
        assert!(memory.sent().is_empty());
        assert!(eml_files(temp.path()).is_empty());
    }

    #[tokio::test]
    async fn invalid_recipient_is_refused() {
        let memory = MemoryMailer::new(FROM).unwrap();
        for to in ["", "not an address", "jane@"] {
            let bad = Email { to: to.into(), ..email() };
            let error = memory.send(&bad).await.unwrap_err();
            assert!(matches!(error, MailError::InvalidRecipient), "{to}: {error:?}");
        }
    }

    #[tokio::test]
    async fn every_transport_builds_from_settings() {
        let temp = tempfile::TempDir::new().unwrap();
        let smtp = |port, insecure, login: bool| MailTransport::Smtp {
            host: "smtp.example.com".into(),
            port,
            username: login.then(|| "mailer".into()),
            password: login.then(|| Secret::new("hunter2-hunter2")),
            insecure,
        };
        for transport in [
            MailTransport::Outbox { dir: temp.path().join("outbox") },
            MailTransport::Memory,
            smtp(587, false, true),
            smtp(465, false, true),
            smtp(2525, false, false),
            smtp(25, true, false),
        ] {
            let settings = MailSettings { from: FROM.into(), transport: transport.clone() };
            if let Err(error) = mailer_from_settings(&settings) {
                panic!("{transport:?}: {error}");
            }
        }
        // The default settings (an outbox in ./outbox) are not exercised here to
        // avoid creating a directory in the crate.
    }

    #[tokio::test]
    async fn bad_mail_settings_are_config_errors() {
        let bad_from = MailSettings { from: "not a mailbox".into(), transport: MailTransport::Memory };
        let error = mailer_from_settings(&bad_from).err().unwrap();
        assert_eq!(error.0[0].field, "mail.from");

        let injected_from =
            MailSettings { from: "a@example.com\r\nBcc: evil@example.net".into(), transport: MailTransport::Memory };
        assert!(mailer_from_settings(&injected_from).is_err());

        let half_login = MailSettings {
            from: FROM.into(),
            transport: MailTransport::Smtp {
                host: "smtp.example.com".into(),
                port: 587,
                username: Some("mailer".into()),
                password: None,
                insecure: false,
            },
        };
        let error = mailer_from_settings(&half_login).err().unwrap();
        assert_eq!(error.0[0].field, "mail.transport.username");
    }

    #[test]
    fn smtp_mailer_outside_a_runtime_is_an_error_not_a_panic() {
        let error = SmtpMailer::new(FROM, "smtp.example.com", 587, None, false).err().unwrap();
        assert_eq!(error.0[0].field, "mail.transport");
    }
}
