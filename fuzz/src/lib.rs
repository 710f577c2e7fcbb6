//! What raftfs's fuzz targets (`fuzz_targets/`) share: a heap with a limit, and small
//! `arbitrary` vocabularies (names, paths, policies) that make structured inputs meet the
//! same few namespace entries often enough to build real trees.
//!
//! Each target says in its own doc comment what property it checks and why.

use std::alloc::System;

use arbitrary::{Arbitrary, Unstructured};
use cap::Cap;

/// The most heap a target may hold. The targets are built without a sanitizer (the code
/// under test forbids `unsafe`), so libFuzzer's `-malloc_limit_mb` has no hook; this cap
/// makes any input that reserves more (a length prefix trusted for an allocation, a plan of
/// buffers sized by a peer) fail the allocation, abort, and be reported as a crash.
pub const HEAP_LIMIT: usize = 256 << 20;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, HEAP_LIMIT);

/// Bytes allocated now (for targets that bound what an operation may allocate).
pub fn allocated() -> usize {
    ALLOCATOR.allocated()
}

/// A path component: one of a few names (so that operations meet), or anything.
#[derive(Debug, Clone)]
pub struct Name(pub String);

impl<'a> Arbitrary<'a> for Name {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "ü"];
        Ok(Name(match u.int_in_range(0u8..=15)? {
            0 => String::arbitrary(u)?,
            i => NAMES[usize::from(i) % NAMES.len()].to_owned(),
        }))
    }
}

/// A path as a client would send it: usually `/` and a few names, sometimes any string
/// (which the conversion must refuse or accept under the path rules).
#[derive(Debug, Clone)]
pub struct WirePath(pub String);

impl<'a> Arbitrary<'a> for WirePath {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        if u.ratio(1u8, 16)? {
            return Ok(WirePath(String::arbitrary(u)?));
        }
        let depth = u.int_in_range(0u8..=4)?;
        let mut s = String::new();
        for _ in 0..depth {
            s.push('/');
            s.push_str(&Name::arbitrary(u)?.0);
        }
        if s.is_empty() {
            s.push('/');
        }
        Ok(WirePath(s))
    }
}

/// A user or group name: a few known ones, or anything.
#[derive(Debug, Clone)]
pub struct Principal(pub String);

impl<'a> Arbitrary<'a> for Principal {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        const USERS: [&str; 5] = ["", "root", "alice", "bob", "supergroup"];
        Ok(Principal(match u.int_in_range(0u8..=7)? {
            0 => String::arbitrary(u)?,
            i => USERS[usize::from(i) % USERS.len()].to_owned(),
        }))
    }
}

/// A storage-policy name: the enabled ones, others within and past the caps, or anything.
#[derive(Debug, Clone)]
pub struct PolicyName(pub String);

impl<'a> Arbitrary<'a> for PolicyName {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        const POLICIES: [&str; 10] = [
            "",
            "REPLICATED-1",
            "REPLICATED-3",
            "RS-6-3-1024k",
            "RS-3-2-1024k",
            "RS-10-4-1024k",
            "XOR-2-1-1024k",
            "RS-3-2-1k",
            "RS-30-2-4096k",
            "XOR-31-1-1k",
        ];
        Ok(PolicyName(match u.int_in_range(0u8..=15)? {
            0 => String::arbitrary(u)?,
            1 => {
                let codec = if bool::arbitrary(u)? { "RS" } else { "XOR" };
                let k = u.int_in_range(0u8..=33)?;
                let m = u.int_in_range(0u8..=33)?;
                let cell = u.int_in_range(0u32..=4097)?;
                format!("{codec}-{k}-{m}-{cell}k")
            }
            i => POLICIES[usize::from(i) % POLICIES.len()].to_owned(),
        }))
    }
}

/// A number that is usually small or at an edge, sometimes anything.
#[derive(Debug, Clone, Copy)]
pub struct Num(pub u64);

impl<'a> Arbitrary<'a> for Num {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        const EDGES: [u64; 10] = [
            0,
            1,
            1 << 10,
            1 << 16,
            1 << 20,
            6 << 20,
            128 << 20,
            2 << 30,
            u64::MAX - 1,
            u64::MAX,
        ];
        Ok(Num(match u.int_in_range(0u8..=3)? {
            0 => u64::arbitrary(u)?,
            1 => u64::from(u16::arbitrary(u)?),
            _ => EDGES[usize::from(u8::arbitrary(u)?) % EDGES.len()],
        }))
    }
}
