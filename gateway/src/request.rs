//! A WebHDFS request as the gateway understands it: the operation and its parameters, typed
//! and checked before anything is asked of the cluster. Parameter names are case-insensitive,
//! as HDFS's; an unknown operation, an operation under the wrong HTTP method or a parameter
//! that does not parse is an `IllegalArgumentException` (400), as from a NameNode.

use axum::http::Method;

use crate::error::GatewayError;

/// One parsed operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    GetFileStatus,
    ListStatus,
    ListStatusBatch {
        start_after: String,
    },
    GetContentSummary,
    GetFileChecksum,
    GetHomeDirectory,
    Open {
        offset: u64,
        length: Option<u64>,
    },
    Create(Create),
    Append,
    Mkdirs {
        permission: Option<u32>,
    },
    Rename {
        destination: String,
    },
    Delete {
        recursive: bool,
    },
    SetPermission {
        permission: u32,
    },
    SetOwner {
        owner: String,
        group: String,
    },
    SetTimes {
        mtime: Option<u64>,
        atime: Option<u64>,
    },
    GetXattrs {
        names: Vec<String>,
        encoding: Encoding,
    },
    ListXattrs,
    SetXattr {
        name: String,
        value: Vec<u8>,
        flag: XattrFlag,
    },
    RemoveXattr {
        name: String,
    },
    GetEcPolicy,
    SetEcPolicy {
        policy: String,
    },
    UnsetEcPolicy,
    AllowSnapshot,
    DisallowSnapshot,
    CreateSnapshot {
        name: Option<String>,
    },
    DeleteSnapshot {
        name: String,
    },
    RenameSnapshot {
        from: String,
        to: String,
    },
    GetSnapshotDiff {
        from: String,
        to: String,
    },
}

/// `CREATE`'s parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Create {
    pub overwrite: bool,
    pub permission: Option<u32>,
    pub block_size: Option<u64>,
    pub replication: Option<u32>,
}

/// How extended attribute values are written in requests and answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Text,
    Hex,
    Base64,
}

/// `SETXATTR`'s flag: whether the attribute must be new, must exist, or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrFlag {
    Create,
    Replace,
    Either,
}

/// A request: its operation, who makes it, and whether it is the data step of a two-step
/// operation (the one a 307 pointed at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub op: Op,
    /// `user.name` (simple mode), if given.
    pub user: Option<String>,
    /// The second step of `OPEN`, `CREATE` or `APPEND`: stream the bytes.
    pub data_step: bool,
    /// `noredirect=true`: answer 200 with the location instead of a 307.
    pub no_redirect: bool,
}

/// The query's parameters, names lower-cased.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn required(&self, name: &str) -> Result<&str, GatewayError> {
        self.get(name)
            .ok_or_else(|| GatewayError::BadRequest(format!("parameter {name} is required")))
    }

    fn flag(&self, name: &str) -> Result<bool, GatewayError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(GatewayError::BadRequest(format!(
                "invalid value for {name}: {v:?} (true or false)"
            ))),
        }
    }

    fn number(&self, name: &str) -> Result<Option<u64>, GatewayError> {
        self.get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    GatewayError::BadRequest(format!("invalid value for {name}: {v:?}"))
                })
            })
            .transpose()
    }

    /// A time: milliseconds since the epoch; -1 (HDFS's "unchanged") is none.
    fn time(&self, name: &str) -> Result<Option<u64>, GatewayError> {
        match self.get(name) {
            None | Some("-1") => Ok(None),
            Some(_) => self.number(name),
        }
    }

    /// An octal permission, 0 to 1777.
    fn permission(&self) -> Result<Option<u32>, GatewayError> {
        self.get("permission")
            .map(|v| match u32::from_str_radix(v, 8) {
                Ok(p) if p <= 0o1777 => Ok(p),
                _ => Err(GatewayError::BadRequest(format!(
                    "invalid value for permission: {v:?} (octal, at most 1777)"
                ))),
            })
            .transpose()
    }

    fn encoding(&self) -> Result<Encoding, GatewayError> {
        match self.get("encoding").map(str::to_ascii_lowercase).as_deref() {
            None | Some("text") => Ok(Encoding::Text),
            Some("hex") => Ok(Encoding::Hex),
            Some("base64") => Ok(Encoding::Base64),
            Some(v) => Err(GatewayError::BadRequest(format!(
                "invalid value for encoding: {v:?} (text, hex or base64)"
            ))),
        }
    }
}

/// The HTTP method each operation is sent with.
fn method_of(op: &str) -> Option<Method> {
    Some(match op {
        "OPEN" | "GETFILESTATUS" | "LISTSTATUS" | "LISTSTATUS_BATCH" | "GETCONTENTSUMMARY"
        | "GETFILECHECKSUM" | "GETHOMEDIRECTORY" | "GETXATTRS" | "LISTXATTRS" | "GETECPOLICY"
        | "GETSNAPSHOTDIFF" => Method::GET,
        "CREATE" | "MKDIRS" | "RENAME" | "SETPERMISSION" | "SETOWNER" | "SETTIMES" | "SETXATTR"
        | "REMOVEXATTR" | "SETECPOLICY" | "ALLOWSNAPSHOT" | "DISALLOWSNAPSHOT"
        | "CREATESNAPSHOT" | "RENAMESNAPSHOT" => Method::PUT,
        "APPEND" | "UNSETECPOLICY" => Method::POST,
        "DELETE" | "DELETESNAPSHOT" => Method::DELETE,
        _ => return None,
    })
}

/// Parses a request from its method and query parameters.
pub fn parse(method: &Method, query: Vec<(String, String)>) -> Result<Request, GatewayError> {
    let p = Params(
        query
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
    );
    let name = p.required("op")?.to_ascii_uppercase();
    let Some(expected) = method_of(&name) else {
        return Err(GatewayError::BadRequest(format!(
            "invalid value for op: {name:?} is not an operation this gateway serves"
        )));
    };
    if *method != expected {
        return Err(GatewayError::BadRequest(format!(
            "op {name} is sent with {expected}, not {method}"
        )));
    }
    let op = match name.as_str() {
        "GETFILESTATUS" => Op::GetFileStatus,
        "LISTSTATUS" => Op::ListStatus,
        "LISTSTATUS_BATCH" => Op::ListStatusBatch {
            start_after: p.get("startafter").unwrap_or_default().to_owned(),
        },
        "GETCONTENTSUMMARY" => Op::GetContentSummary,
        "GETFILECHECKSUM" => Op::GetFileChecksum,
        "GETHOMEDIRECTORY" => Op::GetHomeDirectory,
        "OPEN" => Op::Open {
            offset: p.number("offset")?.unwrap_or(0),
            length: p.number("length")?,
        },
        "CREATE" => Op::Create(Create {
            overwrite: p.flag("overwrite")?,
            permission: p.permission()?,
            block_size: p.number("blocksize")?,
            replication: p
                .number("replication")?
                .map(|r| {
                    u32::try_from(r).map_err(|_| {
                        GatewayError::BadRequest(format!("invalid value for replication: {r}"))
                    })
                })
                .transpose()?,
        }),
        "APPEND" => Op::Append,
        "MKDIRS" => Op::Mkdirs {
            permission: p.permission()?,
        },
        "RENAME" => Op::Rename {
            destination: p.required("destination")?.to_owned(),
        },
        "DELETE" => Op::Delete {
            recursive: p.flag("recursive")?,
        },
        "SETPERMISSION" => Op::SetPermission {
            permission: p.permission()?.unwrap_or(0o755),
        },
        "SETOWNER" => {
            let (owner, group) = (p.get("owner"), p.get("group"));
            if owner.is_none() && group.is_none() {
                return Err(GatewayError::BadRequest(
                    "SETOWNER needs owner or group".into(),
                ));
            }
            Op::SetOwner {
                owner: owner.unwrap_or_default().to_owned(),
                group: group.unwrap_or_default().to_owned(),
            }
        }
        "SETTIMES" => Op::SetTimes {
            mtime: p.time("modificationtime")?,
            atime: p.time("accesstime")?,
        },
        "GETXATTRS" => Op::GetXattrs {
            names: p.all("xattr.name"),
            encoding: p.encoding()?,
        },
        "LISTXATTRS" => Op::ListXattrs,
        "SETXATTR" => Op::SetXattr {
            name: p.required("xattr.name")?.to_owned(),
            value: decode_value(p.get("xattr.value").unwrap_or_default())?,
            flag: match p.get("flag").map(str::to_ascii_uppercase).as_deref() {
                None => XattrFlag::Either,
                Some("CREATE") => XattrFlag::Create,
                Some("REPLACE") => XattrFlag::Replace,
                Some(v) => {
                    return Err(GatewayError::BadRequest(format!(
                        "invalid value for flag: {v:?} (CREATE or REPLACE)"
                    )));
                }
            },
        },
        "REMOVEXATTR" => Op::RemoveXattr {
            name: p.required("xattr.name")?.to_owned(),
        },
        "GETECPOLICY" => Op::GetEcPolicy,
        "SETECPOLICY" => Op::SetEcPolicy {
            policy: p.required("ecpolicy")?.to_owned(),
        },
        "UNSETECPOLICY" => Op::UnsetEcPolicy,
        "ALLOWSNAPSHOT" => Op::AllowSnapshot,
        "DISALLOWSNAPSHOT" => Op::DisallowSnapshot,
        "CREATESNAPSHOT" => Op::CreateSnapshot {
            name: p.get("snapshotname").map(str::to_owned),
        },
        "DELETESNAPSHOT" => Op::DeleteSnapshot {
            name: p.required("snapshotname")?.to_owned(),
        },
        "RENAMESNAPSHOT" => Op::RenameSnapshot {
            from: p.required("oldsnapshotname")?.to_owned(),
            to: p.required("snapshotname")?.to_owned(),
        },
        "GETSNAPSHOTDIFF" => Op::GetSnapshotDiff {
            from: p.get("oldsnapshotname").unwrap_or_default().to_owned(),
            to: p.get("snapshotname").unwrap_or_default().to_owned(),
        },
        other => {
            return Err(GatewayError::BadRequest(format!(
                "invalid value for op: {other:?}"
            )));
        }
    };
    Ok(Request {
        op,
        user: p.get("user.name").map(str::to_owned),
        data_step: p.flag("data")?,
        no_redirect: p.flag("noredirect")?,
    })
}

/// An attribute value as HDFS writes it: `0x…` hex, `0s…` base64, or text (optionally in
/// double quotes).
pub fn decode_value(v: &str) -> Result<Vec<u8>, GatewayError> {
    let bad = || GatewayError::BadRequest(format!("invalid xattr.value {v:?}"));
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        if !hex.len().is_multiple_of(2) {
            return Err(bad());
        }
        // By bytes: a slice of the text at an odd place could split a character.
        let nibble = |c: u8| char::from(c).to_digit(16).ok_or_else(bad);
        return hex
            .as_bytes()
            .chunks(2)
            .map(|pair| Ok((nibble(pair[0])? << 4 | nibble(pair[1])?) as u8))
            .collect();
    }
    if let Some(b64) = v.strip_prefix("0s").or_else(|| v.strip_prefix("0S")) {
        return base64_decode(b64).ok_or_else(bad);
    }
    let text = v
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(v);
    Ok(text.as_bytes().to_vec())
}

/// A value written the way `encoding` asks, for `GETXATTRS`.
pub fn encode_value(value: &[u8], encoding: Encoding) -> String {
    match encoding {
        Encoding::Text => format!("\"{}\"", String::from_utf8_lossy(value)),
        Encoding::Hex => format!(
            "0x{}",
            value.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        Encoding::Base64 => format!("0s{}", base64_encode(value)),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn operations_parse_with_their_parameters() {
        let r = parse(
            &Method::PUT,
            q(&[
                ("op", "create"),
                ("Overwrite", "true"),
                ("permission", "640"),
                ("replication", "2"),
                ("user.name", "alice"),
            ]),
        )
        .expect("create");
        assert_eq!(
            r.op,
            Op::Create(Create {
                overwrite: true,
                permission: Some(0o640),
                block_size: None,
                replication: Some(2),
            })
        );
        assert_eq!(r.user.as_deref(), Some("alice"));
        assert!(!r.data_step);
        let r = parse(
            &Method::GET,
            q(&[("op", "OPEN"), ("offset", "5"), ("data", "true")]),
        )
        .expect("open");
        assert_eq!(
            r.op,
            Op::Open {
                offset: 5,
                length: None
            }
        );
        assert!(r.data_step);
    }

    #[test]
    fn bad_requests_are_refused_before_anything_is_done() {
        for (method, pairs) in [
            (Method::GET, q(&[])),
            (Method::GET, q(&[("op", "NOSUCHOP")])),
            (Method::GET, q(&[("op", "MKDIRS")])),
            (
                Method::PUT,
                q(&[("op", "SETPERMISSION"), ("permission", "9")]),
            ),
            (
                Method::PUT,
                q(&[("op", "SETPERMISSION"), ("permission", "7777")]),
            ),
            (Method::GET, q(&[("op", "OPEN"), ("offset", "-1")])),
            (Method::DELETE, q(&[("op", "DELETE"), ("recursive", "yes")])),
            (Method::PUT, q(&[("op", "RENAME")])),
            (Method::PUT, q(&[("op", "SETOWNER")])),
            (
                Method::PUT,
                q(&[
                    ("op", "SETXATTR"),
                    ("xattr.name", "user.a"),
                    ("xattr.value", "0xabc"),
                ]),
            ),
        ] {
            let r = parse(&method, pairs.clone());
            assert!(
                matches!(r, Err(GatewayError::BadRequest(_))),
                "{method} {pairs:?}: {r:?}"
            );
        }
    }

    #[test]
    fn attribute_values_round_trip_in_every_encoding() {
        let value = b"\x00\xffhello, world".to_vec();
        for encoding in [Encoding::Text, Encoding::Hex, Encoding::Base64] {
            let text = encode_value(&value, encoding);
            if encoding != Encoding::Text {
                assert_eq!(decode_value(&text).expect("decode"), value, "{text}");
            }
        }
        assert_eq!(decode_value("\"v1\"").expect("text"), b"v1");
        assert_eq!(decode_value("0x00fF").expect("hex"), [0, 255]);
        assert!(decode_value("0xaé1").is_err(), "a character across a pair");
        assert!(decode_value("0xzz").is_err());
        assert!(decode_value("0s*").is_err());
        assert_eq!(decode_value("v1").expect("text"), b"v1");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_decode("YWI=").expect("b64"), b"ab");
    }
}
