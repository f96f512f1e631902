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

    fn bit(self) -> u8 {
        1 << (self as u8)
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
        write!(f, "unknown action {:?}: expected one of pull, push, delete, overwrite, catalog, *", self.0)
    }
}

impl std::error::Error for UnknownAction {}

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

/// A set of actions.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ActionSet(u8);

impl ActionSet {
    /// No action.
    pub const EMPTY: ActionSet = ActionSet(0);
    /// Every action (`*`).
    pub const ALL: ActionSet = ActionSet(0b1_1111);

    /// Does the set hold `a`?
    pub fn contains(self, a: Action) -> bool {
        self.0 & a.bit() != 0
    }

    /// Adds `a`.
    pub fn insert(&mut self, a: Action) {
        self.0 |= a.bit();
    }

    /// Both sets together.
    pub fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }

    /// What both sets hold.
    pub fn intersection(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 & other.0)
    }

    /// True when the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions, in [`Action::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }

    /// Parses action names (`*` is every action).
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<ActionSet, UnknownAction> {
        let mut set = ActionSet::EMPTY;
        for name in names {
            if name == "*" {
                set = ActionSet::ALL;
            } else {
                set.insert(name.parse()?);
            }
        }
        Ok(set)
    }
}

impl From<Action> for ActionSet {
    fn from(a: Action) -> Self {
        ActionSet(a.bit())
    }
}

impl FromIterator<Action> for ActionSet {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> Self {
        let mut set = ActionSet::EMPTY;
        for a in iter {
            set.insert(a);
        }
        set
    }
}

impl fmt::Display for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(a.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActionSet({self})")
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

    #[test]
    fn sets() {
        let s = ActionSet::parse(["pull", "push"]).unwrap();
        assert!(s.contains(Action::Pull) && s.contains(Action::Push) && !s.contains(Action::Delete));
        assert_eq!(s.to_string(), "pull,push");
        assert_eq!(ActionSet::parse(["*"]).unwrap(), ActionSet::ALL);
        assert_eq!(ActionSet::ALL.iter().count(), 5);
        assert!(ActionSet::parse(["pull", "nope"]).is_err());
        assert_eq!(s.intersection(Action::Push.into()), ActionSet::from(Action::Push));
    }
}
