//! The shape of a synthetic namespace and the paths in it, from the shape alone: shared by
//! the generator (`metactl local generate`, which writes the tree straight into RocksDB) and
//! by `loadgen meta --generated`, which stats random files of a generated tree.
//!
//! `/gen` holds a tree of directories with at most `fanout` subdirectories each; its leaves
//! hold `files_per_dir` files each (the last one the rest). Directories are named `dNNNN` and
//! files `fNNNNNN`, by position in their parent.

/// The shape of a generated namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Files in the tree.
    pub files: u64,
    /// Files per leaf directory.
    pub files_per_dir: u64,
    /// Most subdirectories of an inner directory.
    pub fanout: u64,
    /// Bytes per file (0: files without block groups).
    pub file_length: u64,
    /// Bytes per block group (the namespace's default block size of a replicated file).
    pub block_size: u64,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            files: 1_000_000,
            files_per_dir: 1_000,
            fanout: 100,
            file_length: 1 << 20,
            block_size: 128 << 20,
        }
    }
}

/// Directory counts per level, `/gen` first, the leaves last.
pub fn levels(shape: &Shape) -> Vec<u64> {
    let mut levels = vec![shape.files.div_ceil(shape.files_per_dir.max(1)).max(1)];
    while levels.last().is_some_and(|n| *n > 1) {
        let above = levels.last().map_or(1, |n| n.div_ceil(shape.fanout.max(2)));
        levels.push(above);
    }
    levels.reverse();
    levels
}

/// The name of the entry at `position` in its directory.
pub fn dir_name(position: u64) -> String {
    format!("d{position:04}")
}

/// The name of the file at `position` in its directory.
pub fn file_name(position: u64) -> String {
    format!("f{position:06}")
}

/// The path of directory `j` of level `level` (level 0 is `/gen`).
pub fn dir_path(shape: &Shape, level: usize, j: u64) -> String {
    let fanout = shape.fanout.max(2);
    let mut names = Vec::with_capacity(level);
    let mut at = j;
    for _ in 0..level {
        names.push(dir_name(at % fanout));
        at /= fanout;
    }
    let mut path = String::from("/gen");
    for n in names.iter().rev() {
        path.push('/');
        path.push_str(n);
    }
    path
}

/// The path of file `i` of the tree (0-based); none past the last.
pub fn file_path(shape: &Shape, i: u64) -> Option<String> {
    if i >= shape.files {
        return None;
    }
    let per = shape.files_per_dir.max(1);
    let leaf = levels(shape).len() - 1;
    Some(format!(
        "{}/{}",
        dir_path(shape, leaf, i / per),
        file_name(i % per)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Shape {
        Shape {
            files: 1_150,
            files_per_dir: 50,
            fanout: 4,
            ..Shape::default()
        }
    }

    #[test]
    fn levels_fit_the_fanout() {
        // 23 leaves, 6 above them, 2, then /gen.
        assert_eq!(levels(&small()), vec![1, 2, 6, 23]);
        let one = Shape {
            files: 5,
            ..small()
        };
        assert_eq!(levels(&one), vec![1]);
    }

    #[test]
    fn paths_follow_the_tree() {
        let s = small();
        assert_eq!(
            file_path(&s, 0).as_deref(),
            Some("/gen/d0000/d0000/d0000/f000000")
        );
        // File 1149: leaf 22 (= 1*16 + 1*4 + 2), position 49.
        assert_eq!(
            file_path(&s, 1_149).as_deref(),
            Some("/gen/d0001/d0001/d0002/f000049")
        );
        assert_eq!(file_path(&s, 1_150), None);
        let flat = Shape { files: 3, ..s };
        assert_eq!(file_path(&flat, 2).as_deref(), Some("/gen/f000002"));
    }
}
