//! The certificates of a local TLS cluster (`metactl local up --tls`, DESIGN §9): a cluster CA
//! in `DIR/tls/`, a certificate per node whose subject names its role and id (organizational
//! unit `raftfs-node`, common name `member-N` or `blockserver-N`), and user certificates
//! (common name the user, organizations its groups) under `DIR/tls/users/`. An operator's
//! cluster would use its own PKI; these follow the same subject rules.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use raftfs_client::ClientTls;
use raftfs_client::discovery::TlsEntry;
use raftfs_core::identity::{NODE_UNIT, ProxyRule, valid_name};
use raftfs_runtime::TlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// The names a node's certificate is valid for: every server of a local cluster listens on
/// loopback.
const LOCAL_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// The file, in `DIR/tls/`, of the users every server lets act for others.
const PROXY_USERS: &str = "proxy-users.json";

/// The CA of a local cluster, loaded from (or created in) `DIR/tls/`.
pub struct LocalCa {
    dir: PathBuf,
    key: KeyPair,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").field("dir", &self.dir).finish()
    }
}

/// The directory of a cluster's TLS files, absolute (the servers' configs and
/// `cluster.json` name the files in it, and are read from other working directories).
pub fn tls_dir(cluster: &Path) -> PathBuf {
    let dir = cluster.join("tls");
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The CA's parameters: the same every time, so that a CA loaded from its key issues
/// certificates that chain to the certificate written when it was created.
fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "raftfs local cluster CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// Writes a private key readable by its owner only.
fn write_key(path: &Path, pem: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // `mode` applies only to a new file: a key written over an older one is made private too.
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(pem.as_bytes())?;
    Ok(())
}

impl LocalCa {
    /// Creates a new CA in `DIR/tls/` (refusing to replace one).
    pub fn create(cluster: &Path) -> Result<Self> {
        let dir = tls_dir(cluster);
        if dir.join("ca.key").exists() {
            bail!("{} already holds a CA", dir.display());
        }
        fs::create_dir_all(dir.join("users"))?;
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        // The key first: `load` goes by it, and a CA certificate without its key is useless.
        write_key(&dir.join("ca.key"), &key.serialize_pem())?;
        fs::write(dir.join("ca.pem"), cert.pem())?;
        Ok(Self { dir, key })
    }

    /// The CA of the cluster in `DIR`, if it has one.
    pub fn load(cluster: &Path) -> Result<Option<Self>> {
        let dir = tls_dir(cluster);
        let path = dir.join("ca.key");
        if !path.exists() {
            return Ok(None);
        }
        let pem =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Some(Self {
            key: KeyPair::from_pem(&pem)?,
            dir,
        }))
    }

    /// The CA certificate's path.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn issue(&self, name: &Path, subject: DistinguishedName, names: &[&str]) -> Result<TlsFiles> {
        let mut params =
            CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name = subject;
        // ECDSA keys sign; they encipher nothing.
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let issuer = Issuer::new(ca_params()?, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        let files = TlsFiles {
            ca: self.ca_path(),
            cert: name.with_extension("pem"),
            key: name.with_extension("key"),
        };
        fs::write(&files.cert, cert.pem())?;
        write_key(&files.key, &key.serialize_pem())?;
        Ok(files)
    }

    /// The certificate of metaserver member `id` (issued once; later calls return it).
    pub fn member(&self, id: u64) -> Result<TlsFiles> {
        self.node(&format!("member-{id}"))
    }

    /// The certificate of blockserver `id`.
    pub fn blockserver(&self, id: u64) -> Result<TlsFiles> {
        self.node(&format!("blockserver-{id}"))
    }

    fn node(&self, cn: &str) -> Result<TlsFiles> {
        let base = self.dir.join(cn);
        if base.with_extension("pem").exists() && base.with_extension("key").exists() {
            return Ok(TlsFiles {
                ca: self.ca_path(),
                cert: base.with_extension("pem"),
                key: base.with_extension("key"),
            });
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationalUnitName, NODE_UNIT);
        self.issue(&base, dn, &LOCAL_NAMES)
    }

    /// A certificate for user `name` in `groups`, as `DIR/tls/users/NAME.{pem,key}`
    /// (replacing any earlier one).
    pub fn user(&self, name: &str, groups: &[String]) -> Result<TlsFiles> {
        self.user_for_hosts(name, groups, &[])
    }

    /// [`LocalCa::user`], also valid as a server's certificate for `hosts` (a gateway that
    /// serves HTTPS as the user it acts with).
    pub fn user_for_hosts(
        &self,
        name: &str,
        groups: &[String],
        hosts: &[String],
    ) -> Result<TlsFiles> {
        valid_name(name)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        for g in groups {
            valid_name(g)?;
            dn.push(DnType::OrganizationName, g.as_str());
        }
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        self.issue(&user_base(&self.dir, name), dn, &hosts)
    }

    /// The users every server lets act for others (`local up --proxy-user`).
    pub fn proxy_users(&self) -> Result<Vec<ProxyRule>> {
        let path = self.dir.join(PROXY_USERS);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Replaces the proxy rules servers are configured with from now on.
    pub fn set_proxy_users(&self, rules: &[ProxyRule]) -> Result<()> {
        fs::write(
            self.dir.join(PROXY_USERS),
            serde_json::to_vec_pretty(rules)?,
        )?;
        Ok(())
    }
}

fn user_base(tls: &Path, name: &str) -> PathBuf {
    tls.join("users").join(name)
}

/// The cluster-file entry of a certificate.
pub fn entry(files: &TlsFiles) -> TlsEntry {
    TlsEntry {
        ca: files.ca.display().to_string(),
        cert: files.cert.display().to_string(),
        key: files.key.display().to_string(),
    }
}

/// The client settings of user `name` of the local TLS cluster in `DIR`, when it has a
/// certificate there.
pub fn user_tls(cluster: &Path, name: &str) -> Result<Option<ClientTls>> {
    let tls = tls_dir(cluster);
    let base = user_base(&tls, name);
    if valid_name(name).is_err() || !base.with_extension("pem").exists() {
        return Ok(None);
    }
    Ok(Some(ClientTls::from_files(
        &tls.join("ca.pem"),
        Some(&base.with_extension("pem")),
        Some(&base.with_extension("key")),
    )?))
}
