//! Linking an lws that someone else built: explicit dirs or pkg-config.

use crate::{env, fail, Library};
use std::path::PathBuf;

/// `LWS_LIB_DIR` + `LWS_INCLUDE_DIR`, both or neither.
pub fn from_dirs() -> Option<Library> {
    let lib_dir = env::var("LWS_LIB_DIR");
    let include_dir = env::var("LWS_INCLUDE_DIR");
    let (lib_dir, include_dir) = match (lib_dir, include_dir) {
        (None, None) => return None,
        (Some(l), Some(i)) => (PathBuf::from(l), PathBuf::from(i)),
        _ => fail(&[
            "LWS_LIB_DIR and LWS_INCLUDE_DIR go together: set both to link an existing lws",
            "(the folder with libwebsockets.so/.a, and the one with libwebsockets.h).",
        ]),
    };
    println!(
        "lws-sys: linking the libwebsockets in {}",
        lib_dir.display()
    );
    if !include_dir.join("libwebsockets.h").exists() {
        let msg = format!("{}/libwebsockets.h does not exist", include_dir.display());
        fail(&[
            &msg,
            "LWS_INCLUDE_DIR must be the folder that holds libwebsockets.h.",
        ]);
    }
    let kind = match env::var("LWS_STATIC").as_deref() {
        Some("1") => "static",
        _ => "dylib",
    };
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    println!("cargo:rustc-link-lib={kind}=websockets");
    Some(Library {
        include_dirs: vec![include_dir],
        root: lib_dir,
        vendored: false,
    })
}

/// The system lws through pkg-config, probed silently first so a missing or
/// too old library is reported in our words, not pkg-config's.
pub fn from_pkg_config() -> Library {
    let mut cfg = pkg_config::Config::new();
    cfg.cargo_metadata(false);
    let found = match cfg.probe("libwebsockets") {
        Ok(found) => found,
        Err(e) => fail(&[
            "the system libwebsockets was requested (feature `system` or LWS_SYS_SYSTEM=1)",
            "but pkg-config cannot find it:",
            &e.to_string(),
            "Fix: install lws >= 4.3 with its .pc file, set LWS_LIB_DIR + LWS_INCLUDE_DIR,",
            "or drop the request to build the vendored 4.3.5.",
        ]),
    };
    let mut include_dirs = found.include_paths.clone();
    if include_dirs.is_empty() {
        include_dirs.push(PathBuf::from("/usr/include"));
    }
    // Check the version before emitting any link flags.
    crate::probe::read_config(&include_dirs).require_usable(false);
    cfg.cargo_metadata(true)
        .probe("libwebsockets")
        .expect("pkg-config answered once");
    let root = found
        .link_paths
        .first()
        .cloned()
        .unwrap_or_else(|| "/usr/lib".into());
    Library {
        include_dirs,
        root,
        vendored: false,
    }
}
