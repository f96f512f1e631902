//! Policy documents -> an immutable [`Policy`], with every error and its position.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use globset::{GlobSet, GlobSetBuilder};
use serde_saphyr::Spanned;

use crate::action::{Action, ActionSet};
use crate::cel::Condition;
use crate::error::{PolicyError, PolicyErrors};
use crate::principal::Principal;
use crate::spec::{PolicyFile, RuleSpec};
use crate::zot::Zot;

/// One policy document: a name for messages (usually the file path) and its text.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// Shown in errors.
    pub name: &'a str,
    /// YAML.
    pub text: &'a str,
}

/// A compiled policy: immutable, shareable between threads, cheap to query.
#[derive(Debug)]
pub struct Policy {
    pub(crate) grants: Vec<Rule>,
    pub(crate) denies: Vec<Rule>,
    /// Every grant's repository globs in one automaton; `grant_owner[glob] = rule`.
    pub(crate) grant_index: GlobSet,
    pub(crate) grant_owner: Vec<usize>,
    pub(crate) deny_index: GlobSet,
    pub(crate) deny_owner: Vec<usize>,
    pub(crate) zot: Option<Zot>,
}

/// A compiled grant or deny.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) id: Arc<str>,
    users: Vec<String>,
    groups: Vec<String>,
    anonymous: bool,
    authenticated: bool,
    pub(crate) actions: ActionSet,
    patterns: Vec<String>,
    pub(crate) repositories: GlobSet,
    tags: Option<GlobSet>,
    pub(crate) condition: Option<Condition>,
    pub(crate) message: Option<Arc<str>>,
}

impl Rule {
    pub(crate) fn applies_to(&self, p: &Principal) -> bool {
        if p.is_anonymous() {
            return self.anonymous;
        }
        self.authenticated
            || self.users.iter().any(|u| u == p.name())
            || self.groups.iter().any(|g| p.in_group(g))
    }

    /// Is the rule limited to some tags?
    pub(crate) fn has_tags(&self) -> bool {
        self.tags.is_some()
    }

    /// Does the rule name repositories (rather than speak only about the catalog)?
    pub(crate) fn names_repositories(&self) -> bool {
        !self.patterns.is_empty()
    }

    /// A grant limited to some tags still covers requests that name no tag (blob uploads, pulls and pushes
    /// by digest), except deletes: deleting by digest can remove a manifest behind any tag.
    pub(crate) fn grant_covers_tag(&self, action: Action, tag: Option<&str>) -> bool {
        match (&self.tags, tag) {
            (None, _) => true,
            (Some(_), None) => action != Action::Delete,
            (Some(globs), Some(t)) => globs.is_match(t),
        }
    }

    /// A deny limited to some tags speaks about requests naming one of them, and (failing closed) about
    /// deletes that name no tag, since deleting by digest can remove a manifest behind those tags.
    pub(crate) fn deny_covers_tag(&self, action: Action, tag: Option<&str>) -> bool {
        match (&self.tags, tag) {
            (None, _) => true,
            (Some(_), None) => action == Action::Delete,
            (Some(globs), Some(t)) => globs.is_match(t),
        }
    }

    /// Does the rule speak about requests on `repository` (the catalog speaks about none)?
    pub(crate) fn covers_repository(&self, action: Action, repository: &str) -> bool {
        action == Action::Catalog || self.repositories.is_match(repository)
    }
}

/// Compiles policy documents. Several documents merge (order does not matter); rule ids must be unique.
/// Every problem is reported with its file, rule and position.
pub fn compile(sources: &[Source<'_>]) -> Result<Policy, PolicyErrors> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for src in sources {
        match serde_saphyr::from_str::<Option<PolicyFile>>(src.text) {
            Ok(doc) => files.push((src.name, doc.unwrap_or_default())),
            Err(e) => {
                let (line, column) = e.location().map_or((0, 0), |l| (to_u32(l.line()), to_u32(l.column())));
                let mut message = first_line(&e.to_string());
                if message.contains("unknown field") && message.contains("expected one of `repositories`") {
                    message
                        .push_str(" (zot < 2.0 format? move the repository patterns under `repositories:`)");
                }
                errors.push(PolicyError { file: src.name.to_owned(), rule: None, line, column, message });
            }
        }
    }

    // Roles, merged across files.
    let mut roles: BTreeMap<&str, (ActionSet, &str)> = BTreeMap::new();
    for (file, doc) in &files {
        for (name, names) in &doc.roles {
            let set = match ActionSet::parse(names.iter().map(String::as_str)) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(err(file, None, 0, 0, format!("role {name:?}: {e}")));
                    continue;
                }
            };
            if let Some((other, other_file)) = roles.get(name.as_str())
                && *other != set
            {
                errors.push(err(
                    file,
                    None,
                    0,
                    0,
                    format!("role {name:?} is also defined, differently, in {other_file}"),
                ));
                continue;
            }
            roles.insert(name, (set, file));
        }
    }

    let mut grants = Vec::new();
    let mut denies = Vec::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    for (file, doc) in &files {
        for (kind, specs, out) in [("grants", &doc.grants, &mut grants), ("denies", &doc.denies, &mut denies)]
        {
            for (i, spec) in specs.iter().enumerate() {
                let id = spec.value.id.clone().unwrap_or_else(|| format!("{file}:{kind}[{i}]"));
                let line = to_u32(spec.referenced.line());
                let column = to_u32(spec.referenced.column());
                if let Some(first) = ids.insert(id.clone(), (*file).to_owned()) {
                    errors.push(err(
                        file,
                        Some(&id),
                        line,
                        column,
                        format!("duplicate rule id (also in {first})"),
                    ));
                }
                match compile_rule(&id, spec, &roles) {
                    Ok(rule) => out.push(rule),
                    Err(problems) => errors.extend(problems.into_iter().map(|(l, c, m)| {
                        err(
                            file,
                            Some(&id),
                            if l == 0 { line } else { l },
                            if l == 0 { column } else { c },
                            m,
                        )
                    })),
                }
            }
        }
    }

    let mut zot = None;
    let mut zot_file: Option<&str> = None;
    for (file, doc) in &files {
        let Some(ac) = &doc.access_control else { continue };
        let (line, column) = (to_u32(ac.referenced.line()), to_u32(ac.referenced.column()));
        if let Some(first) = zot_file {
            errors.push(err(
                file,
                None,
                line,
                column,
                format!("accessControl is also in {first}; keep zot's section in one file"),
            ));
            continue;
        }
        zot_file = Some(file);
        match Zot::compile(&ac.value) {
            Ok(z) => zot = Some(z),
            Err(problems) => errors.extend(problems.into_iter().map(|m| err(file, None, line, column, m))),
        }
    }

    if !errors.is_empty() {
        return Err(PolicyErrors(errors));
    }
    // Deterministic whatever the file order: the first matching rule in id order decides.
    grants.sort_by(|a, b| a.id.cmp(&b.id));
    denies.sort_by(|a, b| a.id.cmp(&b.id));
    let (grant_index, grant_owner) = index(&grants, sources, "grants")?;
    let (deny_index, deny_owner) = index(&denies, sources, "denies")?;
    Ok(Policy { grants, denies, grant_index, grant_owner, deny_index, deny_owner, zot })
}

type Problems = Vec<(u32, u32, String)>;

fn compile_rule(
    id: &str,
    spec: &Spanned<RuleSpec>,
    roles: &BTreeMap<&str, (ActionSet, &str)>,
) -> Result<Rule, Problems> {
    let s = &spec.value;
    let mut problems = Vec::new();
    if s.users.is_empty() && s.groups.is_empty() && !s.anonymous && !s.authenticated {
        problems.push((
            0,
            0,
            "names no subject: add users, groups, `anonymous: true` or `authenticated: true`".into(),
        ));
    }
    if s.users.iter().chain(&s.groups).any(String::is_empty) {
        problems.push((0, 0, "an empty user or group name matches nobody: remove it".into()));
    }
    let mut actions = match ActionSet::parse(s.actions.iter().map(String::as_str)) {
        Ok(a) => a,
        Err(e) => {
            problems.push((0, 0, e.to_string()));
            ActionSet::EMPTY
        }
    };
    if let Some(role) = &s.role {
        match roles.get(role.as_str()) {
            Some((set, _)) => actions = actions.union(*set),
            None => problems.push((0, 0, format!("unknown role {role:?} (define it under `roles:`)"))),
        }
    }
    if actions.is_empty() && problems.is_empty() {
        problems.push((0, 0, "grants or denies no action: add `actions` or a `role`".into()));
    }
    let only_catalog = actions == ActionSet::from(Action::Catalog);
    if s.repositories.is_empty() && !only_catalog && !actions.is_empty() {
        problems.push((0, 0, "names no repository: add `repositories` (\"**\" is every repository)".into()));
    }
    let repositories = globs(&s.repositories, "repository", &mut problems);
    let tags = (!s.tags.is_empty()).then(|| globs(&s.tags, "tag", &mut problems));
    let condition = s.when.as_ref().and_then(|w| match Condition::compile(&w.value) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push((
                to_u32(w.referenced.line()),
                to_u32(w.referenced.column()),
                format!("condition, at line {} column {} of the expression: {}", e.line, e.column, e.message),
            ));
            None
        }
    });
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Rule {
        id: id.into(),
        users: s.users.clone(),
        groups: s.groups.clone(),
        anonymous: s.anonymous,
        authenticated: s.authenticated,
        actions,
        patterns: s.repositories.clone(),
        repositories,
        tags,
        condition,
        message: s.message.as_deref().map(Arc::from),
    })
}

fn globs(patterns: &[String], what: &str, problems: &mut Problems) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        if p.is_empty() {
            problems.push((0, 0, format!("empty {what} glob")));
            continue;
        }
        match crate::glob::compile(p) {
            Ok(g) => {
                b.add(g);
            }
            Err(e) => problems.push((0, 0, format!("bad {what} glob {p:?}: {}", e.kind()))),
        }
    }
    b.build().unwrap_or_else(|e| {
        problems.push((0, 0, format!("{what} globs: {e}")));
        GlobSet::empty()
    })
}

/// One automaton over the repository globs of all rules, and the rule each glob belongs to.
fn index(rules: &[Rule], sources: &[Source<'_>], kind: &str) -> Result<(GlobSet, Vec<usize>), PolicyErrors> {
    let mut b = GlobSetBuilder::new();
    let mut owner = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        for p in &rule.patterns {
            // Each glob compiled once already when its rule was compiled.
            if let Ok(g) = crate::glob::compile(p) {
                b.add(g);
                owner.push(i);
            }
        }
    }
    b.build().map(|set| (set, owner)).map_err(|e| {
        let file = sources.first().map_or("", |s| s.name).to_owned();
        PolicyErrors(vec![err(&file, None, 0, 0, format!("cannot index the {kind}: {e}"))])
    })
}

fn err(file: &str, rule: Option<&str>, line: u32, column: u32, message: String) -> PolicyError {
    PolicyError { file: file.to_owned(), rule: rule.map(str::to_owned), line, column, message }
}

fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The first line of a YAML error, without its own `error: line L column C:` prefix (the position is
/// reported separately).
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((pos, rest)) if pos.contains("column") => rest.to_owned(),
        _ => line.to_owned(),
    }
}
