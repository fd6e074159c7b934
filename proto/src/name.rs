//! Namespace and container names become path components and cgroup names,
//! so they are checked before anything is created.

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {name:?}: must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}")]
pub struct NameError {
    /// "name" or "namespace".
    pub what: &'static str,
    /// The refused input.
    pub name: String,
}

/// Checks `name` against `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`.
///
/// # Errors
/// A [`NameError`] naming `what` and the input.
pub fn validate_name(what: &'static str, name: &str) -> Result<(), NameError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(NameError {
            what,
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses() {
        for good in ["a", "web-1", "A.b_c", &"x".repeat(64)] {
            assert!(validate_name("name", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "..",
            ".a",
            "-a",
            "a/b",
            "a\0",
            "é",
            &"x".repeat(65),
            "a b",
        ] {
            assert!(validate_name("name", bad).is_err(), "{bad:?}");
        }
    }
}
