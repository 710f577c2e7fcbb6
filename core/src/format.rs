//! Versioned binary formats: the one envelope of every record raftfs replicates or persists
//! (namespace records, retry-cache results, Raft entries and their batches, the log store's
//! vote and log ids, the state machine's applied state, snapshot metadata, the payloads of
//! the Raft RPCs between metaservers).
//!
//! # The envelope
//!
//! A record is `[version][body]`:
//!
//! - `version`: the schema version of this record family, a `u16` as a LEB128 varint (one
//!   byte, `0x01`..`0x7f`, for versions 1 to 127). Versions start at 1; each family counts
//!   its own.
//! - `body`: the postcard encoding of that version's type, and nothing after it (trailing
//!   bytes are corruption).
//!
//! There is no kind tag: where a record is stored (a column family and key, a file name) or
//! which RPC carries it says what it is, and the namespace records written before this
//! module existed (`0x01` + postcard) are version 1 of this envelope byte for byte.
//!
//! postcard is not self-describing: it writes no field names, and an enum variant as its
//! index. Any change to a type a body reaches (a field added, removed or reordered, a variant
//! inserted, a type widened) changes what the bytes mean, and an old record would be misread
//! or refused as garbage. Hence the version, and these rules:
//!
//! - A decoder reads every version from 1 to [`Schema::CURRENT`] and upgrades old ones to
//!   the current type. A record of a version above `CURRENT` is refused with
//!   [`FormatError::UnknownVersion`] (a newer binary wrote it), never decoded as if it were
//!   an older one; truncated or garbage bytes give [`FormatError::Corrupt`]. Decoding never
//!   panics on any input.
//! - A family's version covers everything its body reaches. A family may nest another as an
//!   opaque byte string ([`serialize_nested`] / [`deserialize_nested`]: a Raft entry carries
//!   its batch of operations so), and then the outer version does not cover the inner one.
//! - [`encode`] writes the version [`Schema::version_for`] picks (`CURRENT` unless the
//!   family says otherwise); [`encode_as`] writes a given one (see "Adding a version").
//! - A body's types use no serde attribute that makes the layout depend on the value
//!   (`skip_serializing_if`, `flatten`, `untagged`): postcard cannot read those back.
//! - Golden fixtures (`core/tests/golden/`, `metaserver/tests/golden/`) hold a record of
//!   every family at every version, and tests check that each decodes to the value the test
//!   builds and that encoding that value gives the same bytes. An existing fixture is never
//!   regenerated or edited: it stands for records already on disks and in flight, which a
//!   new binary must keep reading. New fixtures (a new family, a new version) are written by
//!   running the golden tests with `RAFTFS_WRITE_GOLDEN=1`, which creates missing files and
//!   never overwrites one.
//!
//! Values that are not postcard carry no version: fixed-width big-endian integers (a
//! dentry's child id, a `file_blocks` group id, the id counters, a group's generation and
//! the retry count in `meta`), the retry cache's eviction cursor (a `retry_order` key), empty marker values,
//! xattr values (the user's bytes), and every key (keys must sort by their bytes). Their
//! layout cannot drift with a Rust type; changing one means a new key or column family.
//!
//! # Adding a version
//!
//! Say `Op::Create` gains a field. Find every family whose body reaches `Op` (the table of
//! families sits beside each set of schemas: `namespace::inode` for namespace records,
//! `raftfs_metaserver::journal::format` for the journal's); here only the batch. For each:
//!
//! 1. Freeze the old layout: copy, into a `mod v1` beside the schema, every type of ours the
//!    old body reaches (`Batch`, `Proposal`, `Op` and what `Op` holds: `NsPath`,
//!    `StoragePolicy`, ...), exactly as they are before your change, with their serde
//!    derives. Do not reuse a current type in `v1` unless it is frozen by construction
//!    (`std` types); the v1 golden fixtures fail if a reused type changes later.
//! 2. Write the upgrade, `impl From<v1::Batch> for Batch` (the new field gets the value that
//!    means what old records meant).
//! 3. Make your change to the current type, bump `CURRENT` to 2, and add the arm
//!    `1 => body::<v1::Batch>(Self::RECORD, bytes).map(Batch::from)` to
//!    [`Schema::decode_body`] (the arm for `CURRENT` decodes the current type).
//! 4. Add golden fixtures of version 2 beside the version 1 ones (`*-v2.bin`, written with
//!    `RAFTFS_WRITE_GOLDEN=1`), and a test that each v1 fixture decodes to the upgraded
//!    value. Leave every v1 fixture and the v1 decoding tests as they are.
//! 5. Rolling upgrade (DESIGN §11): while older binaries are still members, nodes must keep
//!    writing what the oldest member reads, until the operator finalizes the upgrade.
//!    Override [`Schema::encode_body`] to also write version 1 (from a borrowed view of the
//!    current value, refusing values v1 cannot express with [`FormatError::Unwritable`]) and
//!    [`Schema::version_for`] to pick the oldest version that holds each value; then set
//!    what needs version 2 only once the cluster's format level (`crate::level`) is one
//!    every member reads. The inode, the journal's batch and the retry results do so.
//!
//! The `versions` test in this module shows steps 1 to 5 on a toy record.
//!
//! # Appending an enum variant
//!
//! A variant added *at the end* of an enum (`Op::Reclaim` was) leaves every existing
//! record's bytes and meaning as they were: the old variants keep their indices. It needs no
//! new version. A binary that predates it refuses a record that uses it as
//! [`FormatError::Corrupt`] (an unknown variant index), never misreads it; so, during a
//! rolling upgrade, nothing may propose the new variant before the upgrade is finalized.
//! Add a golden fixture that uses the new variant, at the family's current version.

use std::cell::RefCell;

use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserializer, Serialize, Serializer};

/// Why a record could not be decoded (or, rarely, encoded).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The record was written by a binary that knows a newer version of its family.
    #[error("{record} record of version {version}: this binary reads versions up to {newest}")]
    UnknownVersion {
        record: &'static str,
        version: u16,
        newest: u16,
    },
    /// The bytes are not a record of this family: truncated, garbage, version 0, or bytes
    /// after the body.
    #[error("corrupt {record} record: {reason}")]
    Corrupt {
        record: &'static str,
        reason: String,
    },
    /// [`encode_as`] was asked for a version this binary does not write, or the value cannot
    /// be expressed in it.
    #[error("cannot write a {record} record as version {version}: {reason}")]
    Unwritable {
        record: &'static str,
        version: u16,
        reason: String,
    },
}

/// One record family: what its versions are and how each decodes.
///
/// Implemented on the value type itself when it is ours (`Inode`), or on an uninhabited
/// marker type naming the family when the value is another crate's (`openraft::Vote`) or
/// when two families share a Rust type (the committed and the applied log id).
pub trait Schema {
    /// What a record of this family decodes to: the current version's type.
    type Value: Serialize;
    /// The family's name in errors: `"inode"`, `"raft entry"`.
    const RECORD: &'static str;
    /// The newest version: what [`encode`] writes, and the highest [`decode`] reads.
    const CURRENT: u16;

    /// Decodes the body of a record of `version` (1..=`CURRENT`: [`decode`] has refused the
    /// rest), upgrading an older version to the current type. One arm per version; the arms
    /// of old versions are never removed.
    fn decode_body(version: u16, body: &[u8]) -> Result<Self::Value, FormatError>;

    /// The version [`encode`] writes `value` as: by default `CURRENT`. A family with a
    /// version that only some binaries read (a rolling upgrade's new version, DESIGN §11)
    /// writes the oldest version that holds the value, so that a value without anything new
    /// stays readable by every member; what is new is only set once the cluster's format
    /// level says every member reads it.
    fn version_for(_value: &Self::Value) -> u16 {
        Self::CURRENT
    }

    /// Appends the body of `value` as `version` to `out`. The default writes `CURRENT` only;
    /// a family that must also write an older version during a rolling upgrade overrides it.
    fn encode_body(
        value: &Self::Value,
        version: u16,
        out: Vec<u8>,
    ) -> Result<Vec<u8>, FormatError> {
        if version != Self::CURRENT {
            return Err(FormatError::Unwritable {
                record: Self::RECORD,
                version,
                reason: format!("this binary writes only version {}", Self::CURRENT),
            });
        }
        postcard::to_extend(value, out).map_err(|e| FormatError::Unwritable {
            record: Self::RECORD,
            version,
            reason: e.to_string(),
        })
    }
}

/// Encodes `value` as a record of the version its family writes it as
/// ([`Schema::version_for`]: the current one, unless the family says otherwise).
pub fn encode<S: Schema>(value: &S::Value) -> Result<Vec<u8>, FormatError> {
    encode_as::<S>(value, S::version_for(value))
}

/// Encodes `value` as a record of `version` (for a rolling upgrade: what the oldest member
/// reads). Fails with [`FormatError::Unwritable`] for a version the family does not write.
pub fn encode_as<S: Schema>(value: &S::Value, version: u16) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(64);
    write_varint(&mut out, version);
    S::encode_body(value, version, out)
}

/// Decodes a record of family `S`, of any version this binary knows.
pub fn decode<S: Schema>(bytes: &[u8]) -> Result<S::Value, FormatError> {
    NESTED_ERROR.with(|e| e.borrow_mut().take());
    decode_record::<S>(bytes).map_err(innermost)
}

/// A nested record's own error (e.g. the newer version of a batch inside an entry) reaches
/// the record around it through serde as an untyped message, and that record's decoder sees
/// it as corruption of its own: report the nested, typed error instead.
fn innermost(e: FormatError) -> FormatError {
    match e {
        FormatError::Corrupt { .. } => NESTED_ERROR.with(|n| n.borrow_mut().take()).unwrap_or(e),
        e => e,
    }
}

/// The version of a record, without decoding its body.
pub fn version_of(record: &'static str, bytes: &[u8]) -> Result<u16, FormatError> {
    read_varint(bytes)
        .map(|(v, _)| v)
        .ok_or_else(|| corrupt(record, "no version"))
}

fn decode_record<S: Schema>(bytes: &[u8]) -> Result<S::Value, FormatError> {
    let Some((version, body)) = read_varint(bytes) else {
        return Err(corrupt(
            S::RECORD,
            if bytes.is_empty() {
                "empty record"
            } else {
                "bad version"
            },
        ));
    };
    if version == 0 {
        return Err(corrupt(S::RECORD, "version 0"));
    }
    if version > S::CURRENT {
        return Err(unknown_version::<S>(version));
    }
    S::decode_body(version, body)
}

/// The error of a version the family's decoder has no arm for.
pub fn unknown_version<S: Schema>(version: u16) -> FormatError {
    FormatError::UnknownVersion {
        record: S::RECORD,
        version,
        newest: S::CURRENT,
    }
}

fn corrupt(record: &'static str, reason: impl Into<String>) -> FormatError {
    FormatError::Corrupt {
        record,
        reason: reason.into(),
    }
}

/// Decodes a whole body as `T`'s postcard encoding (for [`Schema::decode_body`]).
pub fn body<T: DeserializeOwned>(record: &'static str, bytes: &[u8]) -> Result<T, FormatError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(corrupt(
            record,
            format!("{} bytes after the body", rest.len()),
        )),
        Err(e) => Err(corrupt(record, e.to_string())),
    }
}

fn write_varint(out: &mut Vec<u8>, mut v: u16) {
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// A `u16` varint (at most 3 bytes, no overflow, no redundant trailing zero group) and the
/// bytes after it.
fn read_varint(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let mut value: u32 = 0;
    for (i, &b) in bytes.iter().enumerate().take(3) {
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return None;
            }
            let value = u16::try_from(value).ok()?;
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

thread_local! {
    /// The error of the last nested record that failed to decode on this thread, so that
    /// [`decode`] can report it typed (serde carries only a message, which postcard drops).
    static NESTED_ERROR: RefCell<Option<FormatError>> = const { RefCell::new(None) };
}

/// serde `serialize` of a field (or a whole type's `Serialize`) that is a record of its own:
/// written as a byte string holding `S`'s envelope, so that it keeps its own version inside
/// a container whose layout another version (or another crate, openraft) fixes.
///
/// When a type's own `Serialize` is this, its [`Schema`] must override
/// [`Schema::encode_body`] and decode a body type of its own (as the journal's `Batch`
/// does): the default body is the type's serde encoding, which would be this again.
pub fn serialize_nested<S: Schema, Ser: Serializer>(
    value: &S::Value,
    serializer: Ser,
) -> Result<Ser::Ok, Ser::Error> {
    let bytes = encode::<S>(value).map_err(serde::ser::Error::custom)?;
    serializer.serialize_bytes(&bytes)
}

/// serde `deserialize` counterpart of [`serialize_nested`]. A nested record that does not
/// decode fails the outer [`decode`] with the nested record's own typed error.
pub fn deserialize_nested<'de, S: Schema, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<S::Value, D::Error> {
    struct Nested<S>(std::marker::PhantomData<S>);

    impl<S: Schema> Visitor<'_> for Nested<S> {
        type Value = S::Value;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a {} record as a byte string", S::RECORD)
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<S::Value, E> {
            decode_record::<S>(v).map_err(|e| {
                let e = innermost(e);
                let message = E::custom(&e);
                NESTED_ERROR.with(|n| *n.borrow_mut() = Some(e));
                message
            })
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<S::Value, E> {
            self.visit_bytes(&v)
        }
    }

    deserializer.deserialize_bytes(Nested::<S>(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::*;

    /// A record family at its first version.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    struct Point {
        x: u32,
        y: u32,
    }

    impl Schema for Point {
        type Value = Self;
        const RECORD: &'static str = "point";
        const CURRENT: u16 = 1;

        fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
            match version {
                1 => body(Self::RECORD, bytes),
                v => Err(unknown_version::<Self>(v)),
            }
        }
    }

    /// The same family after "Adding a version" (module doc): a label was added.
    mod versions {
        use super::*;

        /// Step 1: version 1's layout, frozen.
        mod v1 {
            use serde::{Deserialize, Serialize};

            #[derive(Serialize, Deserialize)]
            pub struct Point {
                pub x: u32,
                pub y: u32,
            }
        }

        /// Step 3: the current type, changed.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Point {
            pub x: u32,
            pub y: u32,
            pub label: String,
        }

        /// Step 2: the upgrade.
        impl From<v1::Point> for Point {
            fn from(p: v1::Point) -> Self {
                Point {
                    x: p.x,
                    y: p.y,
                    label: String::new(),
                }
            }
        }

        impl Schema for Point {
            type Value = Self;
            const RECORD: &'static str = "point";
            const CURRENT: u16 = 2;

            fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
                match version {
                    1 => body::<v1::Point>(Self::RECORD, bytes).map(Point::from),
                    2 => body(Self::RECORD, bytes),
                    v => Err(unknown_version::<Self>(v)),
                }
            }

            /// Step 5: version 1 is still written until the upgrade is finalized.
            fn encode_body(p: &Self, version: u16, out: Vec<u8>) -> Result<Vec<u8>, FormatError> {
                let unwritable = |reason: String| FormatError::Unwritable {
                    record: Self::RECORD,
                    version,
                    reason,
                };
                match version {
                    1 if p.label.is_empty() => {
                        postcard::to_extend(&v1::Point { x: p.x, y: p.y }, out)
                            .map_err(|e| unwritable(e.to_string()))
                    }
                    1 => Err(unwritable("version 1 has no label".into())),
                    2 => postcard::to_extend(p, out).map_err(|e| unwritable(e.to_string())),
                    _ => Err(unwritable("unknown version".into())),
                }
            }
        }

        #[test]
        fn an_old_record_is_upgraded_and_an_old_version_can_still_be_written() {
            let old = encode::<super::Point>(&super::Point { x: 3, y: 4 }).expect("encode");
            assert_eq!(old, [1, 3, 4]);
            let p = decode::<Point>(&old).expect("a v1 record decodes");
            assert_eq!(
                p,
                Point {
                    x: 3,
                    y: 4,
                    label: String::new()
                }
            );
            assert_eq!(encode_as::<Point>(&p, 1).expect("v1"), old);
            assert_eq!(encode::<Point>(&p).expect("v2"), [2, 3, 4, 0]);
            let labelled = Point {
                label: "a".into(),
                ..p
            };
            assert!(matches!(
                encode_as::<Point>(&labelled, 1),
                Err(FormatError::Unwritable { version: 1, .. })
            ));
            // The older binary refuses the newer record instead of misreading it.
            let new = encode::<Point>(&labelled).expect("v2");
            assert_eq!(
                decode::<super::Point>(&new),
                Err(FormatError::UnknownVersion {
                    record: "point",
                    version: 2,
                    newest: 1
                })
            );
        }
    }

    #[test]
    fn refuses_unknown_versions_and_corrupt_bytes() {
        let bytes = encode::<Point>(&Point { x: 1, y: 300 }).expect("encode");
        assert_eq!(bytes, [1, 1, 0xac, 0x02]);
        assert_eq!(
            decode::<Point>(&bytes).expect("decode"),
            Point { x: 1, y: 300 }
        );
        let corrupt = |b: &[u8]| matches!(decode::<Point>(b), Err(FormatError::Corrupt { .. }));
        assert!(corrupt(&[]), "empty");
        assert!(corrupt(&[0, 1, 1]), "version 0");
        assert!(corrupt(&[1, 1]), "truncated body");
        assert!(corrupt(&[1, 1, 1, 9]), "trailing bytes");
        assert!(corrupt(&[0x81]), "truncated version");
        assert!(corrupt(&[0x81, 0x00, 1, 1]), "redundant varint");
        assert!(corrupt(&[0xff, 0xff, 0xff, 1, 1]), "varint overflow");
        assert_eq!(
            decode::<Point>(&[0x80, 0x01, 1, 1]),
            Err(FormatError::UnknownVersion {
                record: "point",
                version: 128,
                newest: 1
            })
        );
        assert!(matches!(
            encode_as::<Point>(&Point { x: 0, y: 0 }, 2),
            Err(FormatError::Unwritable { .. })
        ));
        assert_eq!(version_of("point", &bytes), Ok(1));
    }

    /// A container whose `inner` is a record of its own.
    #[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
    struct Outer {
        n: u8,
        #[serde(
            serialize_with = "serialize_nested::<Point, _>",
            deserialize_with = "deserialize_nested::<Point, _>"
        )]
        inner: Point,
    }

    impl Schema for Outer {
        type Value = Self;
        const RECORD: &'static str = "outer";
        const CURRENT: u16 = 1;

        fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
            match version {
                1 => body(Self::RECORD, bytes),
                v => Err(unknown_version::<Self>(v)),
            }
        }
    }

    /// A record nesting a record that nests one.
    #[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
    struct Twice {
        #[serde(
            serialize_with = "serialize_nested::<Outer, _>",
            deserialize_with = "deserialize_nested::<Outer, _>"
        )]
        outer: Outer,
    }

    impl Schema for Twice {
        type Value = Self;
        const RECORD: &'static str = "twice";
        const CURRENT: u16 = 1;

        fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
            match version {
                1 => body(Self::RECORD, bytes),
                v => Err(unknown_version::<Self>(v)),
            }
        }
    }

    #[test]
    fn a_nested_record_keeps_its_version_and_its_typed_error() {
        let outer = Outer {
            n: 7,
            inner: Point { x: 1, y: 2 },
        };
        let bytes = encode::<Outer>(&outer).expect("encode");
        assert_eq!(bytes, [1, 7, 3, 1, 1, 2]);
        assert_eq!(decode::<Outer>(&bytes).expect("decode"), outer);
        let mut newer = bytes.clone();
        newer[3] = 2;
        assert_eq!(
            decode::<Outer>(&newer),
            Err(FormatError::UnknownVersion {
                record: "point",
                version: 2,
                newest: 1
            })
        );
        // Two levels down, still the innermost record's error.
        let twice = Twice {
            outer: Outer {
                n: 7,
                inner: Point { x: 1, y: 2 },
            },
        };
        let bytes = encode::<Twice>(&twice).expect("encode");
        assert_eq!(decode::<Twice>(&bytes).expect("decode"), twice);
        let at = bytes.len() - 3;
        assert_eq!(bytes[at..], [1, 1, 2], "the point's record ends the bytes");
        let mut newer = bytes.clone();
        newer[at] = 2;
        assert_eq!(
            decode::<Twice>(&newer),
            Err(FormatError::UnknownVersion {
                record: "point",
                version: 2,
                newest: 1
            })
        );
        // A later, unrelated failure does not report the stale nested error.
        assert!(matches!(
            decode::<Outer>(&[1, 7]),
            Err(FormatError::Corrupt {
                record: "outer",
                ..
            })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn varints_round_trip(v in any::<u16>()) {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            prop_assert_eq!(read_varint(&out), Some((v, &[][..])));
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<Outer>(&bytes);
            let _ = decode::<Point>(&bytes);
        }
    }
}

/// Serde for a `Vec<u8>` field as bytes (`#[serde(with = "crate::format::raw_bytes")]`).
/// serde writes a plain `Vec<u8>` element by element; postcard encodes both the same way
/// (a varint length, then the bytes), so a field moved to this module keeps its encoding
/// byte for byte, while it is written and read as one slice: a 16 KiB extended attribute
/// took 16,384 calls each way before, which dominated the metaserver's CPU under a load of
/// large attributes in debug builds.
pub mod raw_bytes {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::ser::Serializer;

    /// Writes `bytes` as one byte string.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    /// Reads a byte string (or, from a self-describing format, a sequence of bytes).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // The hint comes from the input: never trusted for an allocation.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod raw_bytes_tests {
    /// A field read and written through `raw_bytes` has the bytes a plain `Vec<u8>` has.
    #[test]
    fn raw_bytes_keep_the_plain_vec_encoding() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Plain(Vec<u8>);
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Raw(#[serde(with = "super::raw_bytes")] Vec<u8>);
        for len in [0usize, 1, 127, 128, 16_384, 70_000] {
            let v: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let plain = postcard::to_allocvec(&Plain(v.clone())).expect("plain");
            let raw = postcard::to_allocvec(&Raw(v.clone())).expect("raw");
            assert_eq!(plain, raw, "len {len}");
            assert_eq!(postcard::from_bytes::<Raw>(&plain).expect("read"), Raw(v));
        }
    }
}
