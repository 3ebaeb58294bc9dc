//! Throwaway certificates for TLS tests: two unrelated CAs, a server
//! certificate for `localhost` and client certificates, written as PEM files
//! into a temporary directory that is removed on drop.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Makes directory names unique between `generate` calls of one process.
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A set of PEM files for TLS tests. Keys are EC P-256 in PKCS#8 PEM
/// (`BEGIN PRIVATE KEY`), which `SSL_CTX_use_PrivateKey_file(.., PEM)`
/// accepts. Certificates hold only themselves (no chain): trust the CA file.
/// The directory and everything in it is removed on drop.
pub struct TestPki {
    /// The directory holding every file below.
    pub dir: PathBuf,
    /// Self-signed CA that issued the server and client certificates.
    pub ca_cert: PathBuf,
    /// CN `localhost`; SAN `DNS:localhost`, `IP:127.0.0.1`, `IP:::1`;
    /// extended key usage serverAuth.
    pub server_cert: PathBuf,
    /// Private key of `server_cert`.
    pub server_key: PathBuf,
    /// CN `lws-rs test client`, extended key usage clientAuth, issued by
    /// `ca_cert`.
    pub client_cert: PathBuf,
    /// Private key of `client_cert`.
    pub client_key: PathBuf,
    /// A second self-signed CA, unrelated to `ca_cert`.
    pub other_ca_cert: PathBuf,
    /// A clientAuth certificate issued by `other_ca_cert`: a server trusting
    /// only `ca_cert` must reject it.
    pub other_client_cert: PathBuf,
    /// Private key of `other_client_cert`.
    pub other_client_key: PathBuf,
}

/// What a certificate is for; picks its extensions.
#[derive(Clone, Copy)]
enum Role {
    Ca,
    Server,
    Client,
}

/// A certificate with the key it certifies.
struct Issued {
    cert: X509,
    key: PKey<Private>,
}

impl TestPki {
    /// Generates fresh keys and certificates into a new directory
    /// `lws-rs-pki-{name}-{pid}-{counter}` under [`std::env::temp_dir`].
    /// Panics on any failure: this is test setup.
    pub fn generate(name: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!(
            "lws-rs-pki-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover from an earlier process that had the same pid.
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create PKI directory");

        let ca = issue("lws-rs test CA", Role::Ca, None);
        let server = issue("localhost", Role::Server, Some(&ca));
        let client = issue("lws-rs test client", Role::Client, Some(&ca));
        let other_ca = issue("lws-rs other test CA", Role::Ca, None);
        let other_client = issue("lws-rs other test client", Role::Client, Some(&other_ca));

        let pki = TestPki {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            other_ca_cert: dir.join("other-ca.pem"),
            other_client_cert: dir.join("other-client.pem"),
            other_client_key: dir.join("other-client.key"),
            dir,
        };
        write_cert(&pki.ca_cert, &ca);
        write_cert(&pki.server_cert, &server);
        write_key(&pki.server_key, &server);
        write_cert(&pki.client_cert, &client);
        write_key(&pki.client_key, &client);
        write_cert(&pki.other_ca_cert, &other_ca);
        write_cert(&pki.other_client_cert, &other_client);
        write_key(&pki.other_client_key, &other_client);
        pki
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        // Best effort: a leftover temp dir must not turn a pass into a panic.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn write_cert(path: &Path, issued: &Issued) {
    let pem = issued.cert.to_pem().expect("certificate to PEM");
    fs::write(path, pem).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn write_key(path: &Path, issued: &Issued) {
    let pem = issued
        .key
        .private_key_to_pem_pkcs8()
        .expect("key to PKCS#8 PEM");
    fs::write(path, pem).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Creates a new P-256 key and a certificate for it, signed by `issuer` or,
/// without one, self-signed.
fn issue(common_name: &str, role: Role, issuer: Option<&Issued>) -> Issued {
    // P-256 rather than RSA: key generation is near-instant.
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256 group");
    let key = PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("PKey");

    let mut name = X509NameBuilder::new().expect("name builder");
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)
        .expect("CN");
    let name = name.build();

    let mut b = X509Builder::new().expect("X509 builder");
    b.set_version(2).expect("X.509 v3"); // zero-based: 2 means v3
    b.set_serial_number(&random_serial().to_asn1_integer().expect("serial"))
        .expect("set serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(issuer.map_or(&*name, |i| i.cert.subject_name()))
        .expect("issuer");
    b.set_pubkey(&key).expect("public key");

    // Back-dated a day so clock skew between processes cannot make a fresh
    // certificate "not yet valid".
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let not_before = (now - 86_400).try_into().expect("time_t");
    b.set_not_before(&Asn1Time::from_unix(not_before).expect("notBefore"))
        .expect("set notBefore");
    b.set_not_after(&Asn1Time::days_from_now(30).expect("notAfter"))
        .expect("set notAfter");

    match role {
        Role::Ca => {
            let bc = BasicConstraints::new().critical().ca().build();
            let ku = KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build();
            b.append_extension(bc.expect("basicConstraints"))
                .expect("add basicConstraints");
            b.append_extension(ku.expect("keyUsage"))
                .expect("add keyUsage");
        }
        Role::Server | Role::Client => {
            let bc = BasicConstraints::new().critical().build();
            // ECDSA keys only ever sign in TLS (no key encipherment).
            let ku = KeyUsage::new().critical().digital_signature().build();
            let eku = match role {
                Role::Server => ExtendedKeyUsage::new().server_auth().build(),
                _ => ExtendedKeyUsage::new().client_auth().build(),
            };
            b.append_extension(bc.expect("basicConstraints"))
                .expect("add basicConstraints");
            b.append_extension(ku.expect("keyUsage"))
                .expect("add keyUsage");
            b.append_extension(eku.expect("extendedKeyUsage"))
                .expect("add extendedKeyUsage");
        }
    }
    if let Role::Server = role {
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .ip("::1")
            .build(&b.x509v3_context(issuer.map(|i| &*i.cert), None));
        b.append_extension(san.expect("subjectAltName"))
            .expect("add subjectAltName");
    }

    // The subject key identifier goes in first: for a self-signed
    // certificate the authority key identifier is copied from it.
    let skid = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None));
    b.append_extension(skid.expect("subjectKeyIdentifier"))
        .expect("add subjectKeyIdentifier");
    let akid = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&b.x509v3_context(issuer.map(|i| &*i.cert), None));
    b.append_extension(akid.expect("authorityKeyIdentifier"))
        .expect("add authorityKeyIdentifier");

    let signer = issuer.map_or(&key, |i| &i.key);
    b.sign(signer, MessageDigest::sha256()).expect("sign");
    Issued {
        cert: b.build(),
        key,
    }
}

/// A random positive serial that fits the 20-octet limit of RFC 5280.
fn random_serial() -> BigNum {
    let mut serial = BigNum::new().expect("BigNum");
    // Top bit set: never zero; 127 bits stay well inside 20 octets.
    serial
        .rand(127, MsbOption::ONE, false)
        .expect("random serial");
    serial
}
