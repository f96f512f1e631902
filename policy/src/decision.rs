//! The answer to a request.

use std::fmt;
use std::sync::Arc;

/// Why a decision came out as it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A grant matched (and no deny did).
    Granted,
    /// No grant matches the principal, repository, tag and action.
    NoMatchingGrant,
    /// A deny rule matched.
    DeniedByRule,
    /// A grant matched everything but its condition, which was false.
    ConditionFalse,
    /// A condition could not be evaluated (or was not a bool); fail closed.
    ConditionError,
}

impl Reason {
    /// The reason code in logs, metrics and `ocigate policy eval`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Granted => "granted",
            Reason::NoMatchingGrant => "no_matching_grant",
            Reason::DeniedByRule => "denied_by_rule",
            Reason::ConditionFalse => "condition_false",
            Reason::ConditionError => "condition_error",
        }
    }

    /// Parses a reason code.
    pub fn parse(s: &str) -> Option<Reason> {
        [
            Reason::Granted,
            Reason::NoMatchingGrant,
            Reason::DeniedByRule,
            Reason::ConditionFalse,
            Reason::ConditionError,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Allow or deny, the rule that decided, why, and the operator's message for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allowed?
    pub allowed: bool,
    /// Id of the rule that decided (none when nothing matched).
    pub rule: Option<Arc<str>>,
    /// Why.
    pub reason: Reason,
    /// The deciding rule's `message`, for the client on a denial.
    pub message: Option<Arc<str>>,
    /// For `condition_error`: what went wrong (for operators' logs, not for clients).
    pub error: Option<String>,
}

impl Decision {
    pub(crate) fn allow(rule: Arc<str>) -> Decision {
        Decision { allowed: true, rule: Some(rule), reason: Reason::Granted, message: None, error: None }
    }

    pub(crate) fn deny(reason: Reason, rule: Option<Arc<str>>, message: Option<Arc<str>>) -> Decision {
        Decision { allowed: false, rule, reason, message, error: None }
    }

    /// The rule id, or `-`.
    pub fn rule_str(&self) -> &str {
        self.rule.as_deref().unwrap_or("-")
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rule={} reason={}",
            if self.allowed { "allow" } else { "deny" },
            self.rule_str(),
            self.reason
        )?;
        if let Some(m) = &self.message {
            write!(f, " message={m:?}")?;
        }
        if let Some(e) = &self.error {
            write!(f, " error={e:?}")?;
        }
        Ok(())
    }
}
