//! Directory listings, a page at a time. The kernel reads a directory in pieces and names
//! where to go on by the offset of the last entry it took; raftfs lists by name after a
//! name. A cursor holds one page of entries and the offset of its first, so that a
//! directory of millions of entries is listed holding one page, and reading on from the
//! page's end fetches the next page after its last name. Offsets: 1 is `.`, 2 is `..`, and
//! the n-th entry (from 0) is n + 3.

use raftfs_client::{Client, ClientError, FileStatus};

/// Entries before the children: `.` and `..`.
pub const DOTS: u64 = 2;

/// One open directory's place in its listing.
#[derive(Debug)]
pub struct Cursor {
    path: String,
    /// The page held, and the index (from 0) of its first entry among the children.
    page: Vec<FileStatus>,
    base: u64,
    has_more: bool,
    /// Whether `page` was fetched at all.
    fetched: bool,
}

impl Cursor {
    pub fn new(path: String) -> Self {
        Self {
            path,
            page: Vec::new(),
            base: 0,
            has_more: true,
            fetched: false,
        }
    }

    /// The children from index `from` on that the held page has, fetching the page that
    /// holds `from` first: each with its offset (what the kernel passes to go on after it).
    pub async fn from(
        &mut self,
        client: &Client,
        from: u64,
    ) -> Result<Vec<(u64, FileStatus)>, ClientError> {
        // From the start (a new listing, or `rewinddir`): the directory as it is now.
        if from == 0 || from < self.base || !self.fetched {
            self.fetch(client, "", 0).await?;
        }
        while from >= self.base + self.page.len() as u64 && self.has_more {
            let after = match self.page.last() {
                Some(last) => last.name.clone(),
                None => break,
            };
            let base = self.base + self.page.len() as u64;
            self.fetch(client, &after, base).await?;
        }
        let skip = usize::try_from(from.saturating_sub(self.base)).unwrap_or(usize::MAX);
        Ok(self
            .page
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, s)| (self.base + i as u64 + DOTS + 1, s.clone()))
            .collect())
    }

    async fn fetch(&mut self, client: &Client, after: &str, base: u64) -> Result<(), ClientError> {
        let page = client.list_page(&self.path, after, 0).await?;
        self.page = page.entries;
        self.has_more = page.has_more;
        self.base = base;
        self.fetched = true;
        Ok(())
    }
}
