//! Validated absolute paths (DESIGN §2). A path is parsed once, where it enters the server;
//! everything below works on [`NsPath`] and can rely on the rules holding.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::NsError;

/// Longest component, in bytes (as HDFS's `dfs.namenode.fs-limits.max-component-length`).
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Deepest path, in components (as HDFS's `dfs.namenode.fs-limits.max-directory-items` sibling
/// limit on depth).
pub const MAX_DEPTH: usize = 1000;

/// An absolute, normalized path: `/` is the empty list of components.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NsPath {
    components: Vec<String>,
}

impl NsPath {
    /// An upper bound of this path's encoded size, in bytes: each component's bytes and
    /// its length prefix.
    pub fn size_bound(&self) -> usize {
        self.components
            .iter()
            .map(|c| c.len().saturating_add(5))
            .fold(5, usize::saturating_add)
    }

    /// The root directory.
    pub fn root() -> Self {
        Self {
            components: Vec::new(),
        }
    }

    /// Parses `s` under the rules of DESIGN §2: absolute, `/`-separated, components of
    /// 1..=255 bytes of UTF-8, none `.` or `..`, none containing NUL, depth <= 1000. A single
    /// trailing `/` is accepted (`/a/` is `/a`), an empty component (`//`) is not.
    pub fn parse(s: &str) -> Result<Self, NsError> {
        let invalid = |why: &str| NsError::InvalidPath {
            path: s.to_owned(),
            reason: why.to_owned(),
        };
        let Some(rest) = s.strip_prefix('/') else {
            return Err(invalid("not absolute"));
        };
        if rest.is_empty() {
            return Ok(Self::root());
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut components = Vec::new();
        for c in rest.split('/') {
            if c.is_empty() {
                return Err(invalid("empty component"));
            }
            if c == "." || c == ".." {
                return Err(invalid("`.` and `..` are not allowed"));
            }
            if c.len() > MAX_COMPONENT_BYTES {
                return Err(invalid("component longer than 255 bytes"));
            }
            if c.contains('\0') {
                return Err(invalid("component contains NUL"));
            }
            components.push(c.to_owned());
            if components.len() > MAX_DEPTH {
                return Err(invalid("deeper than 1000 components"));
            }
        }
        Ok(Self { components })
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The components, outermost first.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// The last component (`None` for the root).
    pub fn name(&self) -> Option<&str> {
        self.components.last().map(String::as_str)
    }

    /// The parent path (`None` for the root).
    pub fn parent(&self) -> Option<NsPath> {
        if self.is_root() {
            return None;
        }
        Some(Self {
            components: self.components[..self.components.len() - 1].to_vec(),
        })
    }

    /// `self` joined with one more (already valid) component.
    pub fn child(&self, name: &str) -> NsPath {
        let mut components = self.components.clone();
        components.push(name.to_owned());
        Self { components }
    }

    /// Whether `self` lies strictly below `ancestor`.
    pub fn is_strictly_under(&self, ancestor: &NsPath) -> bool {
        self.components.len() > ancestor.components.len()
            && self.components[..ancestor.components.len()] == ancestor.components[..]
    }
}

impl fmt::Display for NsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.components.is_empty() {
            return f.write_str("/");
        }
        for c in &self.components {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_paths() {
        assert!(NsPath::parse("/").is_ok_and(|p| p.is_root()));
        let p = NsPath::parse("/a/b c/ü").expect("valid");
        assert_eq!(p.components(), ["a", "b c", "ü"]);
        assert_eq!(p.to_string(), "/a/b c/ü");
        assert_eq!(
            NsPath::parse("/a/").expect("trailing slash").to_string(),
            "/a"
        );
        assert!(NsPath::parse(&format!("/{}", "x".repeat(255))).is_ok());
        assert!(NsPath::parse(&"/d".repeat(1000)).is_ok());
    }

    #[test]
    fn rejects_invalid_paths() {
        for bad in [
            "", "a", "a/b", "//", "/a//b", "/.", "/a/..", "/a/./b", "/a\0b",
        ] {
            assert!(
                matches!(NsPath::parse(bad), Err(NsError::InvalidPath { .. })),
                "{bad:?} should be invalid"
            );
        }
        assert!(NsPath::parse(&format!("/{}", "x".repeat(256))).is_err());
        assert!(NsPath::parse(&"/d".repeat(1001)).is_err());
    }

    #[test]
    fn subtree_relation() {
        let a = NsPath::parse("/a").expect("valid");
        let ab = NsPath::parse("/a/b").expect("valid");
        let abc = NsPath::parse("/abc").expect("valid");
        assert!(ab.is_strictly_under(&a));
        assert!(!a.is_strictly_under(&a));
        assert!(!abc.is_strictly_under(&a));
        assert!(a.is_strictly_under(&NsPath::root()));
        assert_eq!(ab.parent(), Some(a));
    }
}
