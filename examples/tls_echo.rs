//! wss:// echo server, with the certificate you give or one made at start.
//!
//! Run me with: `cargo run --release --example tls_echo -- [--port 9443] [--tls-cert FILE --tls-key FILE]`
//! Without a certificate it makes a self-signed one for localhost,
//! 127.0.0.1 and ::1 and says on stderr where it is, so a client can trust
//! it (for example `--cacert` to curl or `ClientTls::ca_file`). The first
//! line on stdout is `listening on wss://HOST:PORT/`.

mod common;

use lws::{ListenOptions, ServerTls};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509NameBuilder, X509};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "[--host ADDR] [--port N] [--tls-cert FILE --tls-key FILE]";

fn main() -> ExitCode {
    let mut options = ListenOptions::new(9443);
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(value) = args.next() else {
            return common::usage("tls_echo", USAGE, &format!("{arg} needs a value"));
        };
        match arg.as_str() {
            "--host" => options.host = value,
            "--port" => match value.parse() {
                Ok(p) => options.port = p,
                Err(_) => return common::usage("tls_echo", USAGE, &format!("bad port {value:?}")),
            },
            "--tls-cert" => cert = Some(PathBuf::from(value)),
            "--tls-key" => key = Some(PathBuf::from(value)),
            _ => return common::usage("tls_echo", USAGE, &format!("unexpected argument {arg:?}")),
        }
    }
    let (cert, key) = match (cert, key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => match self_signed() {
            Ok(pair) => {
                eprintln!(
                    "tls_echo: self-signed certificate (trust it as a CA): {}",
                    pair.0.display()
                );
                pair
            }
            Err(e) => {
                eprintln!("tls_echo: cannot make a certificate: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => return common::usage("tls_echo", USAGE, "--tls-cert and --tls-key go together"),
    };
    options.tls = Some(ServerTls::new(cert, key));
    common::serve_echo("tls_echo", options, 1)
}

/// A P-256 key and a self-signed certificate for localhost, 127.0.0.1 and
/// ::1, valid 30 days, written to a fresh folder; returns (cert, key).
fn self_signed() -> Result<(PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, "localhost")?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::ONE, false)?;
    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    let serial = serial.to_asn1_integer()?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(&key)?;
    let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(30)?);
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .ip("::1")
        .build(&builder.x509v3_context(None, None))?;
    builder.append_extension(san)?;
    builder.sign(&key, MessageDigest::sha256())?;
    let dir = std::env::temp_dir().join(format!("lws-rs-tls-echo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, builder.build().to_pem()?)?;
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8()?)?;
    Ok((cert_path, key_path))
}
