//! zot's `accessControl`, with zot's meaning (pkg/api/authz.go):
//!
//! - the **longest** repository pattern (in bytes) that matches the repository decides, alone; equal
//!   lengths (undefined in zot) go to the lexically smallest pattern;
//! - within it: a policy naming the user, then one naming one of the user's groups, then `defaultPolicy`
//!   (authenticated callers only), then `anonymousPolicy` (anonymous callers only);
//! - `adminPolicy` is a fallback that grants its actions on every repository, matched or not;
//! - groups come from the principal and from `accessControl.groups`;
//! - patterns match like zot's doublestar: `X/**` also matches `X`, and `**` inside a segment is `*`.
//!
//! Actions map read -> pull, create -> push, update -> overwrite, delete -> delete;
//! `detectManifestCollision` is accepted but not enforced (zot then refuses to delete a manifest that
//! several tags point to; ocigate does not look at that), so such a policy is that much looser here. The catalog is open to every caller zot would let
//! in (authenticated callers, and anonymous ones when some pattern has an `anonymousPolicy`); what it
//! lists is filtered by pull as always.

use std::collections::HashMap;
use std::sync::Arc;

use globset::{GlobSet, GlobSetBuilder};

use crate::action::{Action, ActionSet};
use crate::principal::Principal;
use crate::spec::{AccessControlSpec, ZotPolicySpec};

/// Compiled zot access control.
#[derive(Debug)]
pub(crate) struct Zot {
    patterns: Vec<Pattern>,
    index: GlobSet,
    owner: Vec<usize>,
    admin: Option<Entry>,
    groups_of: HashMap<String, Vec<String>>,
    anonymous_admitted: bool,
    catalog_rule: Arc<str>,
}

#[derive(Debug)]
struct Pattern {
    text: String,
    entries: Vec<Entry>,
    default: ActionSet,
    default_id: Arc<str>,
    anonymous: ActionSet,
    anonymous_id: Arc<str>,
}

#[derive(Debug)]
struct Entry {
    users: Vec<String>,
    groups: Vec<String>,
    actions: ActionSet,
    id: Arc<str>,
}

/// Maps zot action names.
fn actions(names: &[String], errors: &mut Vec<String>, at: &str) -> ActionSet {
    let mut set = ActionSet::EMPTY;
    for n in names {
        match n.as_str() {
            "read" => set.insert(Action::Pull),
            "create" => set.insert(Action::Push),
            "update" => set.insert(Action::Overwrite),
            "delete" => set.insert(Action::Delete),
            "detectManifestCollision" => {}
            other => errors.push(format!(
                "{at}: unknown zot action {other:?} (expected read, create, update or delete)"
            )),
        }
    }
    set
}

/// doublestar's reading of a pattern, as globset globs.
fn doublestar_globs(pattern: &str) -> Vec<String> {
    // `**` that is not a whole segment behaves like `*`.
    let segments: Vec<String> = pattern
        .split('/')
        .map(|seg| if seg != "**" && seg.contains("**") { seg.replace("**", "*") } else { seg.to_owned() })
        .collect();
    let normalized = segments.join("/");
    let mut out = vec![normalized.clone()];
    if let Some(prefix) = normalized.strip_suffix("/**")
        && !prefix.is_empty()
    {
        out.push(prefix.to_owned());
    }
    out
}

impl Zot {
    /// Compiles a zot section; every problem is reported.
    pub(crate) fn compile(spec: &AccessControlSpec) -> Result<Zot, Vec<String>> {
        let mut errors = Vec::new();
        let entry = |p: &ZotPolicySpec, id: String, errors: &mut Vec<String>| {
            if p.conditions.is_some() {
                errors.push(format!(
                    "{id}: zot `conditions` are not supported (their variables are not ocigate's); \
                     write a grant with `when` instead"
                ));
            }
            Entry {
                users: p.users.clone(),
                groups: p.groups.clone(),
                actions: actions(&p.actions, errors, &id),
                id: id.into(),
            }
        };
        let mut patterns = Vec::new();
        let mut builder = GlobSetBuilder::new();
        let mut owner = Vec::new();
        for (text, group) in &spec.repositories {
            let base = format!("zot:repositories[{text:?}]");
            for g in doublestar_globs(text) {
                match crate::glob::compile(&g) {
                    Ok(glob) => {
                        builder.add(glob);
                        owner.push(patterns.len());
                    }
                    Err(e) => errors.push(format!("{base}: bad repository pattern: {}", e.kind())),
                }
            }
            let entries = group
                .policies
                .iter()
                .enumerate()
                .map(|(i, p)| entry(p, format!("{base}.policies[{i}]"), &mut errors))
                .collect();
            patterns.push(Pattern {
                text: text.clone(),
                entries,
                default: actions(&group.default_policy, &mut errors, &format!("{base}.defaultPolicy")),
                default_id: format!("{base}.defaultPolicy").into(),
                anonymous: actions(&group.anonymous_policy, &mut errors, &format!("{base}.anonymousPolicy")),
                anonymous_id: format!("{base}.anonymousPolicy").into(),
            });
        }
        let admin = spec.admin_policy.as_ref().map(|a| entry(a, "zot:adminPolicy".into(), &mut errors));
        let mut groups_of: HashMap<String, Vec<String>> = HashMap::new();
        for (group, members) in &spec.groups {
            for user in &members.users {
                groups_of.entry(user.clone()).or_default().push(group.clone());
            }
        }
        let index = builder.build().map_err(|e| vec![format!("zot repository patterns: {e}")])?;
        if !errors.is_empty() {
            return Err(errors);
        }
        let anonymous_admitted = patterns.iter().any(|p| !p.anonymous.is_empty());
        Ok(Zot {
            patterns,
            index,
            owner,
            admin,
            groups_of,
            anonymous_admitted,
            catalog_rule: "zot:catalog".into(),
        })
    }

    /// The id of the zot policy that grants `action` on `repository`, if any.
    pub(crate) fn allows(
        &self,
        p: &Principal,
        action: Action,
        repository: &str,
        scratch: &mut Vec<usize>,
    ) -> Option<&Arc<str>> {
        let anonymous = p.is_anonymous();
        if action == Action::Catalog {
            return (!anonymous || self.anonymous_admitted).then_some(&self.catalog_rule);
        }
        let config_groups = if anonymous { None } else { self.groups_of.get(p.name()) };
        let in_group = |groups: &[String]| {
            !anonymous
                && groups
                    .iter()
                    .any(|g| p.in_group(g) || config_groups.is_some_and(|cg| cg.iter().any(|c| c == g)))
        };
        if let Some(pattern) = self.governing(repository, scratch) {
            for e in &pattern.entries {
                if e.actions.contains(action) && !anonymous && e.users.iter().any(|u| u == p.name()) {
                    return Some(&e.id);
                }
            }
            for e in &pattern.entries {
                if e.actions.contains(action) && in_group(&e.groups) {
                    return Some(&e.id);
                }
            }
            if !anonymous && pattern.default.contains(action) {
                return Some(&pattern.default_id);
            }
            if anonymous && pattern.anonymous.contains(action) {
                return Some(&pattern.anonymous_id);
            }
        }
        let admin = self.admin.as_ref()?;
        let is_admin = (!anonymous && admin.users.iter().any(|u| u == p.name())) || in_group(&admin.groups);
        (is_admin && admin.actions.contains(action)).then_some(&admin.id)
    }

    /// The longest matching pattern (ties: the lexically smallest).
    fn governing(&self, repository: &str, scratch: &mut Vec<usize>) -> Option<&Pattern> {
        self.index.matches_into(repository, scratch);
        scratch
            .iter()
            .map(|&g| &self.patterns[self.owner[g]])
            .min_by(|a, b| b.text.len().cmp(&a.text.len()).then_with(|| a.text.cmp(&b.text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doublestar_reading() {
        assert_eq!(doublestar_globs("tmp/**"), ["tmp/**", "tmp"]);
        assert_eq!(doublestar_globs("**"), ["**"]);
        assert_eq!(doublestar_globs("abc**/x"), ["abc*/x"]);
        assert_eq!(doublestar_globs("infra/*"), ["infra/*"]);
    }
}
