//! What a request does to a repository.

use std::fmt;
use std::str::FromStr;

/// An action a policy grants or denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read manifests, blobs, tags and referrers.
    Pull,
    /// Upload blobs and manifests.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
    /// Move an existing tag to other content.
    Overwrite,
    /// List repositories.
    Catalog,
}

impl Action {
    /// Every action, in a stable order.
    pub const ALL: [Action; 5] =
        [Action::Pull, Action::Push, Action::Delete, Action::Overwrite, Action::Catalog];

    /// The action's name in policies, logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::Overwrite => "overwrite",
            Action::Catalog => "catalog",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAction(pub String);

impl fmt::Display for UnknownAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown action {:?}: expected one of pull, push, delete, overwrite, catalog", self.0)
    }
}

impl std::error::Error for UnknownAction {}

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
        }
        assert!("read".parse::<Action>().is_err());
    }
}
