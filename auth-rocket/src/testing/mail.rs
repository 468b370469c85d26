//! The mail the platform sent, read from a memory mailer or a file outbox,
//! and the link tokens in it.

use std::path::PathBuf;

use auth_core::mail::MemoryMailer;

/// Where the app's emails can be read.
pub(super) enum Mailbox {
    Memory(MemoryMailer),
    Outbox(PathBuf),
}

/// One email, as far as the checks need it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub subject: String,
    pub text: String,
}

impl Mail {
    /// The one-time token of the email: the value of `token=` in its link.
    pub fn token(&self) -> String {
        token_in(&self.text)
            .unwrap_or_else(|| panic!("no `token=` link in the email {:?}:\n{}", self.subject, self.text))
    }
}

impl Mail {
    /// The first link of the email that carries a token: what a user opens.
    pub fn link(&self) -> String {
        let start = self.text.find("http").unwrap_or_else(|| panic!("no link in the email {:?}", self.subject));
        self.text[start..].split_whitespace().next().unwrap_or_default().to_owned()
    }
}

/// The value of the first `token=` in `text` (URL-safe base64 characters).
fn token_in(text: &str) -> Option<String> {
    let start = text.find("token=")? + "token=".len();
    let token: String =
        text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
    (!token.is_empty()).then_some(token)
}

impl Mailbox {
    /// Every email sent to `to` so far, oldest first.
    pub(super) fn to(&self, to: &str) -> Vec<Mail> {
        match self {
            Self::Memory(mailer) => mailer
                .sent()
                .into_iter()
                .filter(|email| email.to.eq_ignore_ascii_case(to))
                .map(|email| Mail { subject: email.subject, text: email.text })
                .collect(),
            Self::Outbox(dir) => outbox_mail(dir, to),
        }
    }
}

/// Every email of a file outbox sent to `to`, oldest first (the `.eml` files
/// are named so that they sort by time).
pub fn outbox_mail(dir: &std::path::Path, to: &str) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            name.ends_with(".eml") && !name.starts_with('.')
        })
        .collect();
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let Ok(content) = std::fs::read_to_string(&file) else { continue };
        let (head, body) = content.split_once("\r\n\r\n").unwrap_or((content.as_str(), ""));
        let header = |name: &str| {
            head.split("\r\n").find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
            })
        };
        let recipient = header("to").unwrap_or_default();
        let recipient = recipient.rsplit('<').next().unwrap_or_default().trim_end_matches('>');
        if recipient.eq_ignore_ascii_case(to) {
            let text = body.replace("\r\n", "\n");
            found.push(Mail { subject: header("subject").unwrap_or_default(), text });
        }
    }
    found
}
