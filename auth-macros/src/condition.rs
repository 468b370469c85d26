//! The grammar of `#[requires(...)]`, parsed into typed conditions; every
//! mistake is recorded with the span of the offending tokens.

use proc_macro2::Span;
use syn::{
    Expr, ExprLit, ExprPath, Ident, Lit, LitStr, Meta, Path, Token, parse::Parser, punctuated::Punctuated,
    spanned::Spanned,
};

use crate::errors::Errors;

/// The segment `tenant` compares when not named.
pub const DEFAULT_TENANT_SEGMENT: &str = "tenant_id";

/// What the attribute understands, for error messages.
const GRAMMAR: &str = "authenticated, role = \"...\", permission = \"...\", tenant, tenant = \"segment\", \
                       any_tenant, verified, staff, superuser, mfa, recent_auth = \"10m\", any(...), and roles = YourRoles";

const KEYWORDS: &[&str] = &[
    "authenticated",
    "role",
    "permission",
    "tenant",
    "any_tenant",
    "verified",
    "staff",
    "superuser",
    "any",
    "roles",
    "mfa",
    "recent_auth",
];

/// The longest `recent_auth` window: a sign-in older than a day is no recent one.
const MAX_RECENT_AUTH_SECS: u64 = 24 * 3600;

/// One condition as written.
pub enum Condition {
    Authenticated(Ident),
    Role(LitStr),
    Permission(LitStr),
    /// The keyword, and the segment's name when given.
    Tenant(Ident, Option<LitStr>),
    /// The role or permission is checked in whichever tenant the token is
    /// scoped to, on purpose: the path's tenant is not compared.
    AnyTenant(Ident),
    Verified(Ident),
    Staff(Ident),
    Superuser(Ident),
    /// The whole `any(...)` for spans, and its alternatives.
    Any(Box<Meta>, Vec<Condition>),
    /// The session proved more than one factor.
    Mfa(Ident),
    /// The sign-in is at most this many seconds old; the literal as written.
    RecentAuth(LitStr, u64),
}

/// The parsed attribute.
#[derive(Default)]
pub struct Requires {
    pub conditions: Vec<Condition>,
    /// `roles = Type`: the role set `role` and `permission` are checked against.
    pub roles: Option<Path>,
}

impl Condition {
    /// The order of the normalised list: the order a reader expects.
    fn rank(&self) -> u8 {
        match self {
            Self::Authenticated(_) => 0,
            Self::Role(_) => 1,
            Self::Permission(_) => 2,
            Self::Tenant(..) => 3,
            Self::AnyTenant(_) => 4,
            Self::Verified(_) => 5,
            Self::Staff(_) => 6,
            Self::Superuser(_) => 7,
            Self::Mfa(_) => 8,
            Self::RecentAuth(..) => 9,
            Self::Any(..) => 10,
        }
    }

    pub fn keyword(&self) -> &'static str {
        match self {
            Self::Authenticated(_) => "authenticated",
            Self::Role(_) => "role",
            Self::Permission(_) => "permission",
            Self::Tenant(..) => "tenant",
            Self::AnyTenant(_) => "any_tenant",
            Self::Verified(_) => "verified",
            Self::Staff(_) => "staff",
            Self::Superuser(_) => "superuser",
            Self::Any(..) => "any",
            Self::Mfa(_) => "mfa",
            Self::RecentAuth(..) => "recent_auth",
        }
    }

    /// Where to point at this condition.
    pub fn span(&self) -> Span {
        match self {
            Self::Authenticated(ident)
            | Self::AnyTenant(ident)
            | Self::Verified(ident)
            | Self::Staff(ident)
            | Self::Superuser(ident)
            | Self::Mfa(ident) => ident.span(),
            Self::Role(lit) | Self::Permission(lit) | Self::RecentAuth(lit, _) => lit.span(),
            Self::Tenant(ident, segment) => segment.as_ref().map_or(ident.span(), LitStr::span),
            Self::Any(meta, _) => meta.span(),
        }
    }

    /// The segment a `tenant` condition compares.
    pub fn segment(&self) -> Option<String> {
        match self {
            Self::Tenant(_, segment) => {
                Some(segment.as_ref().map_or_else(|| DEFAULT_TENANT_SEGMENT.to_owned(), LitStr::value))
            }
            _ => None,
        }
    }

    /// As the route listing shows it (the same text as auth-rocket's `Condition` display).
    pub fn describe(&self) -> String {
        match self {
            Self::Role(lit) | Self::Permission(lit) => format!("{} = {:?}", self.keyword(), lit.value()),
            Self::Tenant(_, Some(segment)) if segment.value() != DEFAULT_TENANT_SEGMENT => {
                format!("tenant = {:?}", segment.value())
            }
            Self::Any(_, alternatives) => format!("any({})", describe(alternatives)),
            Self::RecentAuth(_, secs) => format!("recent_auth = {:?}", duration_text(*secs)),
            _ => self.keyword().to_owned(),
        }
    }
}

/// A window in the largest unit that is exact (`90s`, `10m`, `2h`), as
/// auth-rocket's `Condition` writes it.
fn duration_text(secs: u64) -> String {
    match secs {
        _ if secs.is_multiple_of(3600) => format!("{}h", secs / 3600),
        _ if secs.is_multiple_of(60) => format!("{}m", secs / 60),
        _ => format!("{secs}s"),
    }
}

/// The seconds of a `recent_auth` window: a whole number and a unit, `s`,
/// `m` or `h` (`"30s"`, `"10m"`, `"1h"`), more than zero and at most a day.
fn recent_auth_secs(lit: &LitStr) -> Result<u64, String> {
    let text = lit.value();
    let malformed = || {
        format!(
            "`recent_auth` takes a whole number and a unit, s, m or h: recent_auth = \"30s\", \"10m\" or \"1h\", \
             not {text:?}"
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(malformed)?;
    let (number, unit) = text.split_at(split);
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(malformed()),
    };
    if number.is_empty() {
        return Err(malformed());
    }
    let too_long = || {
        format!(
            "`recent_auth = {text:?}` is longer than 24h: a sign-in older than a day is no recent one; \
             to admit any session, leave `recent_auth` out"
        )
    };
    let secs = number.parse::<u64>().map_err(|_| too_long())?.checked_mul(unit_secs).ok_or_else(too_long)?;
    match secs {
        0 => Err(format!("`recent_auth = {text:?}` admits no token: the window must be at least 1s")),
        _ if secs > MAX_RECENT_AUTH_SECS => Err(too_long()),
        _ => Ok(secs),
    }
}

/// The conditions in normalised order, separated by `, `.
pub fn describe(conditions: &[Condition]) -> String {
    conditions.iter().map(Condition::describe).collect::<Vec<_>>().join(", ")
}

/// Sorts into the normalised order (stable: two permissions keep theirs),
/// inside `any(...)` too.
pub fn normalise(conditions: &mut [Condition]) {
    conditions.sort_by_key(Condition::rank);
    for condition in conditions {
        if let Condition::Any(_, alternatives) = condition {
            normalise(alternatives);
        }
    }
}

/// Parses the attribute's arguments, recording every mistake in `errors`.
pub fn parse(args: proc_macro2::TokenStream, errors: &mut Errors) -> Requires {
    let mut requires = Requires::default();
    let Some(metas) = errors.ok(Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)) else {
        return requires;
    };
    for meta in metas {
        if meta.path().is_ident("roles") {
            match roles(&meta) {
                Ok(path) if requires.roles.is_some() => {
                    errors.spanned(path, "`roles` is given twice: a route checks one role set");
                }
                Ok(path) => requires.roles = Some(path),
                Err(error) => errors.push(error),
            }
        } else if let Some(condition) = condition(meta, false, errors) {
            requires.conditions.push(condition);
        }
    }
    requires
}

/// `roles = Path`.
fn roles(meta: &Meta) -> syn::Result<Path> {
    match meta {
        Meta::NameValue(nv) => match &nv.value {
            Expr::Path(ExprPath { path, qself: None, .. }) => Ok(path.clone()),
            other => Err(syn::Error::new_spanned(
                other,
                "`roles` names the type of your role set, not a string: roles = MyRoles \
                 (an enum with #[derive(Roles)])",
            )),
        },
        _ => Err(syn::Error::new_spanned(meta, "`roles` names your role set: roles = MyRoles")),
    }
}

fn condition(meta: Meta, nested: bool, errors: &mut Errors) -> Option<Condition> {
    let Some(keyword) = meta.path().get_ident().cloned() else {
        errors.spanned(meta.path(), format!("unknown condition; #[requires] understands {GRAMMAR}"));
        return None;
    };
    let name = keyword.to_string();
    match (name.as_str(), &meta) {
        ("authenticated", Meta::Path(_)) => Some(Condition::Authenticated(keyword)),
        ("verified", Meta::Path(_)) => Some(Condition::Verified(keyword)),
        ("staff", Meta::Path(_)) => Some(Condition::Staff(keyword)),
        ("superuser", Meta::Path(_)) => Some(Condition::Superuser(keyword)),
        ("mfa", Meta::Path(_)) => Some(Condition::Mfa(keyword)),
        ("tenant", Meta::Path(_)) => Some(Condition::Tenant(keyword, None)),
        ("any_tenant", Meta::Path(_)) if nested => {
            errors.spanned(
                &meta,
                "`any_tenant` is no alternative: it says in which tenant the route's role is checked, \
                 so put it outside any(...)",
            );
            None
        }
        ("any_tenant", Meta::Path(_)) => Some(Condition::AnyTenant(keyword)),
        ("authenticated" | "any_tenant" | "verified" | "staff" | "superuser" | "mfa", _) => {
            errors.spanned(&meta, format!("`{name}` takes no value: write just `{name}`"));
            None
        }
        ("tenant", Meta::NameValue(nv)) => {
            let segment = string(&nv.value, "tenant = \"...\" names a path segment: tenant = \"org_id\"", errors)?;
            let value = segment.value();
            if value.is_empty() || value.contains(['<', '>', '/', '?', ' ']) {
                errors.spanned(&segment, "write the segment's bare name: tenant = \"org_id\" for a path with <org_id>");
                return None;
            }
            Some(Condition::Tenant(keyword, Some(segment)))
        }
        ("role" | "permission", Meta::NameValue(nv)) => {
            let example = if name == "role" { "role = \"admin\"" } else { "permission = \"invoices.read\"" };
            let lit = string(&nv.value, format!("`{name}` takes a string: {example}"), errors)?;
            Some(if name == "role" { Condition::Role(lit) } else { Condition::Permission(lit) })
        }
        ("recent_auth", Meta::NameValue(nv)) => {
            let lit = string(&nv.value, "`recent_auth` takes a duration in a string: recent_auth = \"10m\"", errors)?;
            match recent_auth_secs(&lit) {
                Ok(secs) => Some(Condition::RecentAuth(lit, secs)),
                Err(message) => {
                    errors.spanned(&lit, message);
                    None
                }
            }
        }
        ("recent_auth", _) => {
            errors.spanned(
                &meta,
                "`recent_auth` needs the longest time since the sign-in: recent_auth = \"10m\" (s, m or h)",
            );
            None
        }
        ("role", _) => {
            errors.spanned(&meta, "`role` needs the minimum role's name: role = \"admin\"");
            None
        }
        ("permission", _) => {
            errors.spanned(&meta, "`permission` needs the permission's name: permission = \"invoices.read\"");
            None
        }
        ("tenant", Meta::List(_)) => {
            errors.spanned(&meta, "write `tenant`, or tenant = \"segment\" to compare another path segment");
            None
        }
        ("any", Meta::List(list)) => {
            if nested {
                errors
                    .spanned(&meta, "any(...) inside any(...) is one any(...): list the alternatives in the outer one");
                return None;
            }
            let metas = errors.ok(list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated))?;
            if metas.is_empty() {
                errors.spanned(&meta, "any() needs at least one alternative, e.g. any(staff, role = \"admin\")");
                return None;
            }
            let mut alternatives = Vec::new();
            for alternative in metas {
                if alternative.path().is_ident("roles") {
                    errors.spanned(&alternative, "`roles = ...` is not a condition: put it outside any(...)");
                } else if let Some(condition) = condition(alternative, true, errors) {
                    alternatives.push(condition);
                }
            }
            Some(Condition::Any(Box::new(meta), alternatives))
        }
        ("any", _) => {
            errors.spanned(&meta, "`any` lists alternatives, one of which must hold: any(staff, role = \"admin\")");
            None
        }
        _ => {
            let hint = suggestion(&name).map_or_else(String::new, |k| format!("did you mean `{k}`? "));
            errors.spanned(&keyword, format!("unknown condition `{name}`; {hint}#[requires] understands {GRAMMAR}"));
            None
        }
    }
}

/// The string literal in `value`, or an error saying `message`.
fn string(value: &Expr, message: impl std::fmt::Display, errors: &mut Errors) -> Option<LitStr> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => Some(lit.clone()),
        other => {
            errors.spanned(other, message);
            None
        }
    }
}

/// The keyword `name` is probably a typo of.
fn suggestion(name: &str) -> Option<&'static str> {
    KEYWORDS
        .iter()
        .map(|keyword| (distance(name, keyword), *keyword))
        .filter(|(d, keyword)| *d <= 2.min(keyword.len() / 3 + 1))
        .min()
        .map(|(_, keyword)| keyword)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_auth_windows_are_whole_numbers_with_a_unit() {
        let secs = |text: &str| recent_auth_secs(&LitStr::new(text, Span::call_site()));
        for (text, expected) in [("30s", 30), ("10m", 600), ("1h", 3600), ("90m", 5400), ("24h", 86_400), ("007s", 7)] {
            assert_eq!(secs(text), Ok(expected), "{text}");
        }
        for bad in ["", "10", "m", "1.5h", "10 m", " 10m", "-5m", "+5m", "1h30m", "10M", "1d", "ten minutes"] {
            assert!(secs(bad).unwrap_err().contains("a whole number and a unit"), "{bad:?}");
        }
        for zero in ["0s", "0m", "00h"] {
            assert!(secs(zero).unwrap_err().contains("at least 1s"), "{zero}");
        }
        for long in ["25h", "86401s", "1441m", "99999999999999999999s", "9999999999999999h"] {
            assert!(secs(long).unwrap_err().contains("longer than 24h"), "{long}");
        }
        assert_eq!(
            [duration_text(90), duration_text(600), duration_text(7200), duration_text(5400)],
            ["90s", "10m", "2h", "90m"]
        );
    }

    #[test]
    fn typos_are_suggested() {
        assert_eq!(suggestion("authenticate"), Some("authenticated"));
        assert_eq!(suggestion("verfied"), Some("verified"));
        assert_eq!(suggestion("rol"), Some("role"));
        assert_eq!(suggestion("recent_auht"), Some("recent_auth"));
        assert_eq!(suggestion("mfs"), Some("mfa"));
        assert_eq!(suggestion("admin"), None);
        assert_eq!(suggestion("owner"), None);
    }
}
