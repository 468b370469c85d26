//! The documentation in `docs/` stays true to the code (issue #15): every
//! test it cites (`path/to/file.rs::test_name`) is a function of that file,
//! every setting it cites (`tokens.access_ttl_secs`) is a field of the
//! configuration, every file it names is there, and every launch check in a
//! table's "launch check" column is one the operators' `checklist` reports.

mod common;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use auth_core::{AuthConfig, config::MailTransport};
use common::{RSA_KEY, release_figment};
use serde_json::Value;

/// A citation in a document, with where it is for the failure message.
struct Cited {
    doc: PathBuf,
    line: usize,
    text: String,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn docs() -> Vec<(PathBuf, String)> {
    let mut docs: Vec<_> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect();
    docs.sort();
    assert!(docs.len() >= 4, "docs/ lost its pages: {:?}", docs.iter().map(|(p, _)| p).collect::<Vec<_>>());
    docs
}

/// The inline code spans of `text` outside fenced blocks, with the line
/// each starts on. A span may run over a line break, as Markdown allows; a
/// backtick left open at the end of a paragraph is a literal one.
fn code_spans(text: &str) -> Vec<(usize, String)> {
    let mut spans = Vec::new();
    let mut fenced = false;
    let mut open: Option<(usize, String)> = None;
    for (number, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || line.trim().is_empty() {
            open = None;
            continue;
        }
        if let Some((_, span)) = &mut open {
            span.push(' ');
        }
        for c in line.chars() {
            match (c, &mut open) {
                ('`', Some(_)) => spans.extend(open.take()),
                ('`', None) => open = Some((number + 1, String::new())),
                (c, Some((_, span))) => span.push(c),
                (_, None) => {}
            }
        }
    }
    spans.into_iter().map(|(line, span)| (line, span.split_whitespace().collect::<Vec<_>>().join(" "))).collect()
}

fn cited(filter: impl Fn(&str) -> bool) -> Vec<Cited> {
    let mut all = Vec::new();
    for (doc, text) in docs() {
        for (line, span) in code_spans(&text) {
            if filter(&span) {
                all.push(Cited { doc: doc.clone(), line, text: span });
            }
        }
    }
    all
}

fn dangling(what: &str, citations: &[Cited], exists: impl Fn(&str) -> bool) {
    let missing: Vec<String> = citations
        .iter()
        .filter(|cited| !exists(&cited.text))
        .map(|cited| format!("{}:{}: `{}`", cited.doc.strip_prefix(root()).unwrap().display(), cited.line, cited.text))
        .collect();
    assert!(missing.is_empty(), "{} dangling {what}:\n{}", missing.len(), missing.join("\n"));
}

/// `path/file.rs::name`: a test function of that file.
fn test_reference(span: &str) -> Option<(&str, &str)> {
    let (file, name) = span.split_once("::")?;
    let is_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    (file.ends_with(".rs") && is_name).then_some((file, name))
}

#[test]
fn every_cited_test_exists() {
    let citations = cited(|span| test_reference(span).is_some());
    assert!(citations.len() >= 40, "the docs cite only {} tests", citations.len());
    dangling("tests", &citations, |span| {
        let (file, name) = test_reference(span).unwrap();
        std::fs::read_to_string(root().join(file))
            .is_ok_and(|source| [format!("fn {name}("), format!("fn {name}<")].iter().any(|f| source.contains(f)))
    });
}

/// `crate/…/file.ext` from the workspace's root (a trybuild case, a
/// migration); paths relative to a crate's `src/` in the architecture's
/// tables are not checked.
fn file_reference(span: &str) -> bool {
    let roots = ["auth-core/", "auth-rocket/", "auth-macros/", "tests/", "examples/", "bench/", "docs/"];
    let extensions = [".rs", ".sql", ".toml", ".md", ".lua", ".js", ".html"];
    roots.iter().any(|root| span.starts_with(root))
        && !span.contains("::")
        && !span.contains(char::is_whitespace)
        && extensions.iter().any(|ext| span.ends_with(ext))
}

#[test]
fn every_cited_file_exists() {
    let citations = cited(file_reference);
    dangling("files", &citations, |span| root().join(span).is_file());
}

/// Every dotted path of `value`'s objects.
fn paths(prefix: &str, value: &Value, into: &mut BTreeSet<String>) {
    if let Value::Object(fields) = value {
        for (key, field) in fields {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            paths(&path, field, into);
            into.insert(path);
        }
    }
}

/// The settings a deployment can write: the default configuration's fields,
/// the SMTP transport's, and those of a provider named `<name>`.
fn settings() -> BTreeSet<String> {
    let mut config = AuthConfig::default();
    config.tokens.signing_key = Some(RSA_KEY.clone());
    config.mail.transport =
        MailTransport::Smtp { host: "smtp".into(), port: 587, username: None, password: None, insecure: false };
    let mut value = serde_json::to_value(&config).unwrap();
    value["oauth"]["<name>"] = serde_json::to_value(auth_core::config::OAuthProvider::default()).unwrap();
    let mut all = BTreeSet::new();
    paths("", &value, &mut all);
    all
}

/// A lowercase dotted path under a section of the configuration
/// (`tokens.access_ttl_secs`, `oauth.<name>.trust_email`), not a file
/// (`tokens.rs`).
fn looks_like_setting(span: &str, sections: &BTreeSet<String>) -> bool {
    let files = [".rs", ".md", ".toml", ".sql", ".json"];
    span.split_once('.').is_some_and(|(section, _)| sections.contains(section))
        && !files.iter().any(|ext| span.ends_with(ext))
        && span.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.<>".contains(&b))
}

#[test]
fn every_cited_setting_exists() {
    let known = settings();
    let sections: BTreeSet<String> = known.iter().filter(|path| !path.contains('.')).cloned().collect();
    let citations = cited(|span| looks_like_setting(span, &sections));
    assert!(citations.len() >= 20, "the docs cite only {} settings", citations.len());
    dangling("settings", &citations, |span| known.contains(span));
}

/// The launch checks of the "launch check" column of every table.
fn cited_launch_checks() -> Vec<Cited> {
    let mut all = Vec::new();
    for (doc, text) in docs() {
        let mut column = None;
        for (number, line) in text.lines().enumerate() {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
            if !line.trim_start().starts_with('|') {
                column = None;
            } else if let Some(at) = cells.iter().position(|cell| cell.eq_ignore_ascii_case("launch check")) {
                column = Some(at);
            } else if let Some(cell) = column.and_then(|at| cells.get(at)) {
                let names = cell.split('`').skip(1).step_by(2);
                all.extend(names.map(|name| Cited { doc: doc.clone(), line: number + 1, text: name.to_owned() }));
            }
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cited_launch_check_is_one_the_checklist_reports() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(&format!("sqlite://{}", dir.path().join("unused.db").display()));
    let provider = auth_core::config::OAuthProvider {
        issuer_url: "https://idp.example.com".into(),
        client_id: "client".into(),
        client_secret: auth_core::config::Secret::new("secret"),
        redirect_url: "https://app.example.com/api/auth/oauth/idp/callback".into(),
        ..Default::default()
    };
    config.oauth.insert("idp".into(), provider);
    let rocket = auth_demo::rocket(release_figment(&config));
    let report = auth_rocket::cli::execute(["demo", "checklist"], rocket).await.expect_err("test settings fail it");
    let reported: BTreeSet<&str> = report
        .lines()
        .filter(|line| line.starts_with("ok ") || line.starts_with("FAIL "))
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    let citations = cited_launch_checks();
    assert!(citations.len() >= 10, "docs/deployment.md names only {} launch checks", citations.len());
    dangling("launch checks", &citations, |name| reported.contains(name));
}
