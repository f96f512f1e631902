//! Policy documents as operators write them (YAML). [`crate::compile`] turns them into a [`crate::Policy`].
//!
//! ```yaml
//! roles:
//!   publisher: [pull, push]
//! grants:
//!   - id: team-a-ci
//!     groups: [ci]
//!     repositories: ["team-a/**"]
//!     role: publisher
//!     when: 'principal.claims.env == "ci"'
//!     message: "only CI may push team-a images"
//! denies:
//!   - id: latest-is-immutable
//!     authenticated: true
//!     repositories: ["**"]
//!     tags: [latest]
//!     actions: [overwrite]
//! accessControl:          # a zot accessControl section, as is
//!   repositories:
//!     "**": { defaultPolicy: [read] }
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

/// One policy file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Named sets of actions.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Allow rules.
    #[serde(default)]
    pub grants: Vec<Spanned<RuleSpec>>,
    /// Deny rules; they override grants.
    #[serde(default)]
    pub denies: Vec<Spanned<RuleSpec>>,
    /// A zot `accessControl` section, with zot's meaning.
    #[serde(default, rename = "accessControl")]
    pub access_control: Option<Spanned<AccessControlSpec>>,
}

/// A grant or deny rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Shown in logs and decisions; defaults to `<file>:grants[<i>]` or `<file>:denies[<i>]`.
    pub id: Option<String>,
    /// User names it applies to.
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups it applies to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Applies to anonymous callers.
    #[serde(default)]
    pub anonymous: bool,
    /// Applies to every authenticated caller.
    #[serde(default)]
    pub authenticated: bool,
    /// Repository globs: `*` within one path segment, `**` across segments.
    #[serde(default)]
    pub repositories: Vec<String>,
    /// Tag globs; the rule then only speaks about those tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Actions (`pull`, `push`, `delete`, `overwrite`, `catalog`, `*`).
    #[serde(default)]
    pub actions: Vec<String>,
    /// A role from `roles`, adding its actions.
    pub role: Option<String>,
    /// A CEL condition that must be true for the rule to apply.
    pub when: Option<Spanned<String>>,
    /// Shown to the client when this rule denies.
    pub message: Option<String>,
}

/// zot's `accessControl` (v2 format, zot >= 2.0).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessControlSpec {
    /// Repository glob -> policies.
    #[serde(default)]
    pub repositories: BTreeMap<String, PolicyGroupSpec>,
    /// Global admin policy: a fallback that grants its actions on every repository.
    #[serde(default)]
    pub admin_policy: Option<ZotPolicySpec>,
    /// Group name -> members.
    #[serde(default)]
    pub groups: BTreeMap<String, ZotGroupSpec>,
    /// zot's `/metrics` access: accepted and ignored (the gateway's metrics are on its admin listener).
    #[serde(default)]
    pub metrics: Option<IgnoredAny>,
}

/// The policies of one repository pattern.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyGroupSpec {
    /// Per-user and per-group policies.
    #[serde(default)]
    pub policies: Vec<ZotPolicySpec>,
    /// Actions for any authenticated user.
    #[serde(default)]
    pub default_policy: Vec<String>,
    /// Actions for anonymous users.
    #[serde(default)]
    pub anonymous_policy: Vec<String>,
}

/// One zot policy entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZotPolicySpec {
    /// User names.
    #[serde(default)]
    pub users: Vec<String>,
    /// Group names.
    #[serde(default)]
    pub groups: Vec<String>,
    /// zot actions: `read`, `create`, `update`, `delete`. `detectManifestCollision` is accepted but not
    /// enforced (zot refuses to delete a manifest several tags point to; ocigate does not check that).
    #[serde(default)]
    pub actions: Vec<String>,
    /// zot's CEL conditions: refused (their variables are not ocigate's); use a grant with `when`.
    pub conditions: Option<IgnoredAny>,
}

/// A zot group.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZotGroupSpec {
    /// Members.
    #[serde(default)]
    pub users: Vec<String>,
}
