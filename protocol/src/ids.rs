//! Typed ids: a task id can never be passed where a function id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| InvalidId {
                    what: $what,
                    value: s.chars().take(80).collect(),
                })
            }
        }
    };
}

typed_id!(
    /// Identifies a registered function.
    FunctionId,
    "function id"
);
typed_id!(
    /// Identifies one execution of a function.
    TaskId,
    "task id"
);

/// A string that is not a uuid where an id was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidId {
    pub what: &'static str,
    pub value: String,
}

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} {:?}: expected a uuid", self.what, self.value)
    }
}

impl std::error::Error for InvalidId {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bare_uuid_strings_on_the_wire() {
        let id: TaskId = "6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10".parse().unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10\""
        );
    }

    #[test]
    fn a_bad_id_names_what_was_expected() {
        let err = "nope".parse::<FunctionId>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid function id \"nope\": expected a uuid"
        );
    }
}
