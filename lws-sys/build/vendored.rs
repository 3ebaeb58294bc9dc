//! The vendored build: libwebsockets 4.3.5 with Debian's patches, compiled
//! with `cc` from an explicit source list and our generated config headers.

use crate::lws_config::{self, Features};
use crate::{env, fail, Library};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Always compiled: core, networking, client and server, h1/ws/raw roles,
/// lws's own poll loop (used by C programs on the same library), unix platform.
const CORE: &[&str] = &[
    "lib/core/alloc.c",
    "lib/core/buflist.c",
    "lib/core/context.c",
    "lib/core/libwebsockets.c",
    "lib/core/logs.c",
    "lib/core/lws_dll2.c",
    "lib/core/lws_map.c",
    "lib/core/vfs.c",
    "lib/core-net/adopt.c",
    "lib/core-net/close.c",
    "lib/core-net/dummy-callback.c",
    "lib/core-net/network.c",
    "lib/core-net/output.c",
    "lib/core-net/pollfd.c",
    "lib/core-net/service.c",
    "lib/core-net/sorted-usec-list.c",
    "lib/core-net/state.c",
    "lib/core-net/vhost.c",
    "lib/core-net/wsi-timeout.c",
    "lib/core-net/wsi.c",
    "lib/core-net/client/client.c",
    "lib/core-net/client/conmon.c",
    "lib/core-net/client/connect.c",
    "lib/core-net/client/connect2.c",
    "lib/core-net/client/connect3.c",
    "lib/core-net/client/connect4.c",
    "lib/core-net/client/sort-dns.c",
    "lib/event-libs/poll/poll.c",
    "lib/misc/base64-decode.c",
    "lib/misc/cache-ttl/heap.c",
    "lib/misc/cache-ttl/lws-cache-ttl.c",
    "lib/misc/dir.c",
    "lib/misc/lejp.c",
    "lib/misc/lws-ring.c",
    "lib/misc/lwsac/cached-file.c",
    "lib/misc/lwsac/lwsac.c",
    "lib/misc/prng.c",
    "lib/misc/sha-1.c",
    "lib/plat/unix/unix-caps.c",
    "lib/plat/unix/unix-fds.c",
    "lib/plat/unix/unix-file.c",
    "lib/plat/unix/unix-init.c",
    "lib/plat/unix/unix-misc.c",
    "lib/plat/unix/unix-pipe.c",
    "lib/plat/unix/unix-service.c",
    "lib/plat/unix/unix-sockets.c",
    "lib/roles/h1/ops-h1.c",
    "lib/roles/http/client/client-http.c",
    "lib/roles/http/date.c",
    "lib/roles/http/header.c",
    "lib/roles/http/parsers.c",
    "lib/roles/http/server/lejp-conf.c",
    "lib/roles/http/server/lws-spa.c",
    "lib/roles/http/server/server.c",
    "lib/roles/listen/ops-listen.c",
    "lib/roles/pipe/ops-pipe.c",
    "lib/roles/raw-file/ops-raw-file.c",
    "lib/roles/raw-skt/ops-raw-skt.c",
    "lib/roles/ws/client-parser-ws.c",
    "lib/roles/ws/client-ws.c",
    "lib/roles/ws/ops-ws.c",
    "lib/roles/ws/server-ws.c",
    "lib/system/system.c",
];

/// Feature `tls`: TLS through OpenSSL.
const TLS: &[&str] = &[
    "lib/tls/tls.c",
    "lib/tls/tls-client.c",
    "lib/tls/tls-network.c",
    "lib/tls/tls-server.c",
    "lib/tls/tls-sessions.c",
    "lib/tls/openssl/openssl-client.c",
    "lib/tls/openssl/openssl-server.c",
    "lib/tls/openssl/openssl-session.c",
    "lib/tls/openssl/openssl-ssl.c",
    "lib/tls/openssl/openssl-tls.c",
    "lib/tls/openssl/openssl-x509.c",
];

/// Feature `deflate`: the ws extension framework and permessage-deflate.
const DEFLATE: &[&str] = &[
    "lib/roles/ws/ext/extension.c",
    "lib/roles/ws/ext/extension-permessage-deflate.c",
];

/// lws's private include dirs (as its cmake sets them), relative to the tree.
const PRIVATE_INCLUDES: &[&str] = &[
    "lib",
    "lib/plat/unix",
    "lib/tls",
    "lib/core",
    "lib/misc",
    "lib/system/async-dns",
    "lib/system/metrics",
    "lib/core-net",
    "lib/roles",
    "lib/roles/http",
    "lib/roles/http/compression",
    "lib/roles/h1",
    "lib/roles/ws",
    "lib/roles/raw-skt",
    "lib/roles/raw-file",
    "lib/roles/listen",
    "lib/event-libs",
    "lib/event-libs/poll",
];

/// True when the enabled features are the defaults the committed bindings
/// were generated for.
pub fn default_features() -> bool {
    cfg!(feature = "tls") && cfg!(feature = "deflate")
}

pub fn build() -> Library {
    let src = source_dir();
    check_tree_version(&src);
    let out = PathBuf::from(env::cargo("OUT_DIR"));

    let features = Features {
        tls: cfg!(feature = "tls"),
        deflate: cfg!(feature = "deflate"),
        openssl_version: openssl_version(),
    };

    // Public headers plus our lws_config.h in OUT_DIR/include, exported to
    // dependents; the private header stays out of it.
    let include = out.join("include");
    let _ = fs::remove_dir_all(&include);
    copy_dir(&src.join("include"), &include);
    fs::write(
        include.join("lws_config.h"),
        lws_config::public_header(&features),
    )
    .expect("write lws_config.h");
    let private = out.join("private");
    fs::create_dir_all(&private).expect("create OUT_DIR/private");
    fs::write(
        private.join("lws_config_private.h"),
        lws_config::private_header(&features),
    )
    .expect("write lws_config_private.h");

    let mut files: Vec<&str> = CORE.to_vec();
    if features.tls {
        files.extend_from_slice(TLS);
    }
    if features.deflate {
        files.extend_from_slice(DEFLATE);
    }

    let mut cc = cc::Build::new();
    // Our dirs come first, so an installed lws (e.g. libwebsockets-dev in
    // /usr/include) can never be picked up instead.
    cc.include(&include).include(&private);
    for dir in PRIVATE_INCLUDES {
        cc.include(src.join(dir));
    }
    for dep in ["DEP_OPENSSL_INCLUDE", "DEP_Z_INCLUDE"] {
        if let Some(dirs) = env::var(dep) {
            for dir in std::env::split_paths(&dirs) {
                cc.include(dir);
            }
        }
    }
    cc.define("LWS_BUILDING_STATIC", None)
        .define("NDEBUG", None)
        .flag("-pthread")
        .flag_if_supported("-fvisibility=hidden")
        .flag_if_supported("-Wno-deprecated-declarations")
        .warnings(false);
    for file in &files {
        cc.file(src.join(file));
    }
    println!(
        "lws-sys: compiling {} C files of {}",
        files.len(),
        src.display()
    );
    cc.compile("websockets");

    // openssl-sys and libz-sys already link ssl/crypto and z for us.
    println!("cargo:rustc-link-lib=pthread");
    Library {
        include_dirs: vec![include],
        root: out,
        vendored: true,
    }
}

/// LWS_SOURCE_DIR, else vendor/libwebsockets-4.3.5 (fetched when missing).
fn source_dir() -> PathBuf {
    if let Some(dir) = env::var("LWS_SOURCE_DIR") {
        let dir = PathBuf::from(dir);
        if !dir.join("include/libwebsockets.h").exists() {
            let msg = format!(
                "LWS_SOURCE_DIR={} has no include/libwebsockets.h",
                dir.display()
            );
            fail(&[&msg, "Point it at an unpacked libwebsockets 4.3.5 tree."]);
        }
        println!(
            "lws-sys: building the libwebsockets tree in {}",
            dir.display()
        );
        return dir;
    }
    let manifest = PathBuf::from(env::cargo("CARGO_MANIFEST_DIR"));
    let vendor = manifest.join("../vendor");
    let (major, minor, patch) = lws_config::VERSION;
    let dir = vendor.join(format!("libwebsockets-{major}.{minor}.{patch}"));
    let script = vendor.join("fetch-lws.sh");
    println!(
        "cargo:rerun-if-changed={}",
        dir.join(".lws-rs-source").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        vendor.join("SHA256SUMS").display()
    );
    // Our own lws patches (applied by the script after Debian's) and the
    // script that names them in the tree's stamp.
    println!(
        "cargo:rerun-if-changed={}",
        vendor.join("patches").display()
    );
    println!("cargo:rerun-if-changed={}", script.display());
    // The script is idempotent: it returns at once when the stamp matches,
    // and re-makes the tree when SHA256SUMS moved to a new Debian revision
    // or a patch under vendor/patches was added or changed.
    if !script.exists() {
        if dir.join(".lws-rs-source").exists() {
            return dir;
        }
        fail(&[
            "no libwebsockets source and no vendor/fetch-lws.sh to fetch it",
            "Set LWS_SOURCE_DIR=/path/to/libwebsockets-4.3.5, or link an existing lws",
            "with LWS_LIB_DIR + LWS_INCLUDE_DIR (or LWS_SYS_SYSTEM=1 for pkg-config).",
        ]);
    }
    println!("lws-sys: running {} {}", script.display(), dir.display());
    let status = Command::new("bash").arg(&script).arg(&dir).status();
    match status {
        Ok(s) if s.success() => dir,
        other => {
            let why = match other {
                Ok(s) => format!("vendor/fetch-lws.sh failed ({s}); its messages are above"),
                Err(e) => format!("could not run vendor/fetch-lws.sh: {e}"),
            };
            fail(&[
                &why,
                "The vendored build gets libwebsockets 4.3.5 from Debian's source package",
                "(apt-get source with a private sources list; needs apt-get, patch, xz).",
                "Ways out: set LWS_SOURCE_DIR=/path/to/an/unpacked/libwebsockets-4.3.5, or",
                "link an existing lws >= 4.3 with LWS_LIB_DIR + LWS_INCLUDE_DIR or LWS_SYS_SYSTEM=1.",
            ])
        }
    }
}

/// The tree must be the release our source list and config describe.
fn check_tree_version(src: &Path) {
    let cmake = fs::read_to_string(src.join("CMakeLists.txt")).unwrap_or_default();
    let field = |name: &str| -> Option<u32> {
        let key = format!("set(CPACK_PACKAGE_VERSION_{name} \"");
        let rest = &cmake[cmake.find(&key)? + key.len()..];
        rest[..rest.find('"')?].parse().ok()
    };
    let found = (field("MAJOR"), field("MINOR"), field("PATCH_NUMBER"));
    let (major, minor, patch) = lws_config::VERSION;
    if found != (Some(major), Some(minor), Some(patch)) {
        let msg = format!(
            "{} is not libwebsockets {major}.{minor}.{patch} (CMakeLists.txt says {found:?})",
            src.display()
        );
        fail(&[
            &msg,
            "The vendored source list and config describe exactly that release.",
        ]);
    }
}

/// OPENSSL_VERSION_NUMBER from openssl-sys's metadata (hex), 0 without TLS.
fn openssl_version() -> u64 {
    if !cfg!(feature = "tls") {
        return 0;
    }
    let Some(hex) = env::var("DEP_OPENSSL_VERSION_NUMBER") else {
        fail(&["openssl-sys did not report DEP_OPENSSL_VERSION_NUMBER"])
    };
    let version = u64::from_str_radix(&hex, 16).unwrap_or(0);
    if version < 0x1010_1000 {
        let msg = format!("OpenSSL {hex} is older than 1.1.1, which lws 4.3 needs");
        fail(&[
            &msg,
            "Install OpenSSL >= 1.1.1 development files (libssl-dev).",
        ]);
    }
    version
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create include dir");
    for entry in fs::read_dir(from).expect("read include dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy header");
        }
    }
}
