//! Deciding: one request ([`Policy::decide`]), what a token may carry ([`Policy::grantable`]), and which
//! repositories or tags a listing may show ([`Policy::filter_repositories`], [`Policy::filter_tags`]).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::SystemTime;

use crate::action::{Action, ActionSet};
use crate::cel::Activation;
use crate::compile::{Policy, Rule};
use crate::decision::{Decision, Reason};
use crate::principal::Principal;
use crate::request::Request;

thread_local! {
    /// Glob match indices, reused across calls so a decision allocates nothing.
    static SCRATCH: RefCell<Vec<usize>> = RefCell::new(Vec::with_capacity(64));
}

fn with_scratch<T>(f: impl FnOnce(&mut Vec<usize>) -> T) -> T {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => f(&mut v),
        Err(_) => f(&mut Vec::new()),
    })
}

/// A condition's outcome.
enum Outcome {
    True,
    False,
    Error(String),
}

fn check<'a>(
    rule: &Rule,
    activation: &mut Option<Activation<'a>>,
    p: &'a Principal,
    r: &'a Request<'a>,
) -> Outcome {
    let Some(cond) = &rule.condition else { return Outcome::True };
    let act = activation.get_or_insert_with(|| Activation::new(p, r));
    match cond.evaluate(act) {
        Ok(true) => Outcome::True,
        Ok(false) => Outcome::False,
        Err(e) => Outcome::Error(e),
    }
}

fn condition_error(rule: &Rule, error: String) -> Decision {
    let mut d = Decision::deny(Reason::ConditionError, Some(rule.id.clone()), rule.message.clone());
    d.error = Some(error);
    d
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Grant,
    Deny,
}

/// Fills `scratch` with the indices of the rules whose repository globs match, in id order, each once.
/// For the catalog: the grants that include it, and the denies that include it without naming
/// repositories (a deny on some repositories hides them from the listing; it does not close the catalog).
fn candidates(
    rules: &[Rule],
    index: &globset::GlobSet,
    owner: &[usize],
    kind: Kind,
    r: &Request<'_>,
    scratch: &mut Vec<usize>,
) {
    if r.action == Action::Catalog {
        scratch.clear();
        scratch.extend((0..rules.len()).filter(|&i| {
            let rule = &rules[i];
            rule.actions.contains(Action::Catalog) && (kind == Kind::Grant || !rule.names_repositories())
        }));
    } else {
        index.matches_into(r.repository, scratch);
        for m in scratch.iter_mut() {
            *m = owner[*m];
        }
        scratch.dedup();
    }
}

impl Policy {
    /// Decides one request: allowed when some grant (or the zot section) allows it and no deny matches.
    /// Never panics; anything that cannot be evaluated denies.
    pub fn decide(&self, p: &Principal, r: &Request<'_>) -> Decision {
        with_scratch(|scratch| self.decide_with(p, r, scratch))
    }

    fn decide_with(&self, p: &Principal, r: &Request<'_>, scratch: &mut Vec<usize>) -> Decision {
        if r.action != Action::Catalog && r.repository.is_empty() {
            return Decision::deny(Reason::NoMatchingGrant, None, None); // fail closed
        }
        let tag = r.tag();
        let mut activation = None;
        candidates(&self.denies, &self.deny_index, &self.deny_owner, Kind::Deny, r, scratch);
        for &i in scratch.iter() {
            let rule = &self.denies[i];
            if !rule.actions.contains(r.action) || !rule.applies_to(p) || !rule.deny_covers_tag(r.action, tag)
            {
                continue;
            }
            match check(rule, &mut activation, p, r) {
                Outcome::True => {
                    return Decision::deny(Reason::DeniedByRule, Some(rule.id.clone()), rule.message.clone());
                }
                Outcome::False => {}
                Outcome::Error(e) => return condition_error(rule, e),
            }
        }
        let mut unmet: Option<&Rule> = None;
        let mut failed: Option<(&Rule, String)> = None;
        candidates(&self.grants, &self.grant_index, &self.grant_owner, Kind::Grant, r, scratch);
        for &i in scratch.iter() {
            let rule = &self.grants[i];
            if !rule.actions.contains(r.action)
                || !rule.applies_to(p)
                || !rule.grant_covers_tag(r.action, tag)
            {
                continue;
            }
            match check(rule, &mut activation, p, r) {
                Outcome::True => return Decision::allow(rule.id.clone()),
                Outcome::False => {
                    unmet.get_or_insert(rule);
                }
                Outcome::Error(e) => {
                    failed.get_or_insert((rule, e));
                }
            }
        }
        if let Some(zot) = &self.zot
            && let Some(id) = zot.allows(p, r.action, r.repository, scratch)
        {
            return Decision::allow(id.clone());
        }
        if let Some((rule, e)) = failed {
            return condition_error(rule, e);
        }
        if let Some(rule) = unmet {
            return Decision::deny(Reason::ConditionFalse, Some(rule.id.clone()), rule.message.clone());
        }
        Decision::deny(Reason::NoMatchingGrant, None, None)
    }

    /// The actions of `requested` a token for `repository` may carry: an upper bound. A condition that
    /// reads facts known only per request (the tag, the client, the time...) counts as true for a grant
    /// and false for a deny here; the gateway checks every request again.
    pub fn grantable(
        &self,
        p: &Principal,
        repository: &str,
        requested: ActionSet,
        time: SystemTime,
    ) -> ActionSet {
        let mut out = ActionSet::EMPTY;
        with_scratch(|scratch| {
            for action in requested.iter() {
                let mut r = Request::new(action, repository);
                r.time = time;
                if self.may_grant(p, &r, scratch) {
                    out.insert(action);
                }
            }
        });
        out
    }

    fn may_grant(&self, p: &Principal, r: &Request<'_>, scratch: &mut Vec<usize>) -> bool {
        if r.action != Action::Catalog && r.repository.is_empty() {
            return false;
        }
        let mut activation = None;
        let known = |rule: &Rule| rule.condition.as_ref().is_none_or(|c| !c.uses().per_request);
        candidates(&self.denies, &self.deny_index, &self.deny_owner, Kind::Deny, r, scratch);
        for &i in scratch.iter() {
            let rule = &self.denies[i];
            // A deny limited to tags leaves the rest of the repository open.
            if rule.actions.contains(r.action) && rule.applies_to(p) && !rule.has_tags() && known(rule) {
                match check(rule, &mut activation, p, r) {
                    Outcome::True | Outcome::Error(_) => return false,
                    Outcome::False => {}
                }
            }
        }
        candidates(&self.grants, &self.grant_index, &self.grant_owner, Kind::Grant, r, scratch);
        for &i in scratch.iter() {
            let rule = &self.grants[i];
            if !rule.actions.contains(r.action) || !rule.applies_to(p) {
                continue;
            }
            if !known(rule) {
                return true;
            }
            if let Outcome::True = check(rule, &mut activation, p, r) {
                return true;
            }
        }
        self.zot.as_ref().is_some_and(|z| z.allows(p, r.action, r.repository, scratch).is_some())
    }

    /// Keeps exactly the repositories the principal may pull (`base` gives the client, time and the rest;
    /// its action and repository are replaced per item). Conditions are evaluated for each repository.
    pub fn filter_repositories(&self, p: &Principal, base: &Request<'_>, repositories: &mut Vec<String>) {
        let view = self.view(p);
        with_scratch(|scratch| {
            repositories.retain(|repo| {
                let mut r = *base;
                r.action = Action::Pull;
                r.repository = repo;
                r.reference = None;
                self.view_allows(&view, p, &r, scratch)
            })
        });
    }

    /// Keeps exactly the tags of `repository` the principal may pull.
    pub fn filter_tags(&self, p: &Principal, base: &Request<'_>, repository: &str, tags: &mut Vec<String>) {
        let view = self.view(p);
        with_scratch(|scratch| {
            tags.retain(|tag| {
                let mut r = *base;
                r.action = Action::Pull;
                r.repository = repository;
                r.reference = Some(tag);
                self.view_allows(&view, p, &r, scratch)
            })
        });
    }

    /// The pull rules that apply to a principal, when they are few enough to try one by one.
    fn view<'a>(&'a self, p: &Principal) -> Option<View<'a>> {
        const MAX: usize = 64;
        let applicable = |rules: &'a [Rule]| -> Option<Vec<&'a Rule>> {
            let v: Vec<&Rule> =
                rules.iter().filter(|r| r.actions.contains(Action::Pull) && r.applies_to(p)).collect();
            (v.len() <= MAX).then_some(v)
        };
        Some(View { denies: applicable(&self.denies)?, grants: applicable(&self.grants)? })
    }

    fn view_allows(
        &self,
        view: &Option<View<'_>>,
        p: &Principal,
        r: &Request<'_>,
        scratch: &mut Vec<usize>,
    ) -> bool {
        let Some(view) = view else {
            return self.decide_with(p, r, scratch).allowed;
        };
        if r.repository.is_empty() {
            return false;
        }
        let tag = r.tag();
        let mut activation = None;
        for rule in &view.denies {
            if rule.covers_repository(Action::Pull, r.repository) && rule.deny_covers_tag(Action::Pull, tag) {
                match check(rule, &mut activation, p, r) {
                    Outcome::True | Outcome::Error(_) => return false,
                    Outcome::False => {}
                }
            }
        }
        for rule in &view.grants {
            if rule.covers_repository(Action::Pull, r.repository)
                && rule.grant_covers_tag(Action::Pull, tag)
                && matches!(check(rule, &mut activation, p, r), Outcome::True)
            {
                return true;
            }
        }
        self.zot.as_ref().is_some_and(|z| z.allows(p, Action::Pull, r.repository, scratch).is_some())
    }

    /// Can pulling depend on the tag? True when a pull rule is limited to tags or has a condition (which may
    /// read `request.tag`): then tag lists must be filtered per caller with [`Policy::filter_tags`].
    pub fn has_tag_rules(&self) -> bool {
        self.grants
            .iter()
            .chain(&self.denies)
            .any(|r| r.actions.contains(Action::Pull) && (r.has_tags() || r.condition.is_some()))
    }

    /// Number of grants and denies.
    pub fn rule_count(&self) -> usize {
        self.grants.len() + self.denies.len()
    }

    /// Ids of every grant and deny, in decision order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &Arc<str>> {
        self.denies.iter().chain(&self.grants).map(|r| &r.id)
    }
}

struct View<'a> {
    denies: Vec<&'a Rule>,
    grants: Vec<&'a Rule>,
}
