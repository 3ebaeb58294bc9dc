//! Build script of lws-sys: find or build libwebsockets, then provide bindings.
//!
//! Sources are tried in a fixed order, and every choice is printed (see
//! `cargo build -vv`):
//! 1. `LWS_LIB_DIR` + `LWS_INCLUDE_DIR`: an lws build given explicitly (the
//!    C-service case: link exactly the library the service ships);
//! 2. feature `system` or `LWS_SYS_SYSTEM=1`: the system lws via pkg-config;
//! 3. otherwise the vendored build of 4.3.5 from Debian's source package
//!    (`LWS_SOURCE_DIR`, or fetched by `vendor/fetch-lws.sh`).
//!
//! An external lws is read through the preprocessor (its lws_config.h) and
//! refused unless it is >= 4.3 with the ws role. Its struct layouts depend on
//! its configuration, so it always gets bindings generated at build time.

mod bindgen_run;
#[cfg(feature = "bindgen")]
mod bindings_config;
mod env;
mod external;
mod lws_config;
mod probe;
mod vendored;

use std::path::PathBuf;

/// What the rest of the build needs to know about the lws we link.
pub struct Library {
    /// Include dirs holding libwebsockets.h and lws_config.h, first wins.
    pub include_dirs: Vec<PathBuf>,
    /// Where the library lives (the vendored build's OUT_DIR, or the lib dir).
    pub root: PathBuf,
    /// True for our own build of the vendored source.
    pub vendored: bool,
}

fn main() {
    println!("cargo:rerun-if-changed=build");
    println!("cargo:rerun-if-changed=wrapper.h");
    for cfg in ["lws_sys_generated_bindings", "lws_vendored"] {
        println!("cargo:rustc-check-cfg=cfg({cfg})");
    }

    let lib = if let Some(lib) = external::from_dirs() {
        lib
    } else if system_requested() {
        external::from_pkg_config()
    } else {
        vendored::build()
    };

    let conf = probe::read_config(&lib.include_dirs);
    conf.require_usable(lib.vendored);
    println!(
        "lws-sys: libwebsockets {} found, config: {}",
        conf.version,
        conf.flags.join(" ")
    );

    // links = "websockets" metadata for dependents' build scripts
    // (DEP_WEBSOCKETS_INCLUDE, _ROOT, _VERSION_NUMBER, _CONF, _VENDORED).
    let includes = std::env::join_paths(&lib.include_dirs).expect("include dirs are joinable");
    println!("cargo:include={}", includes.to_string_lossy());
    // For tests/bindings_current.rs, which regenerates the bindings.
    println!(
        "cargo:rustc-env=LWS_SYS_INCLUDE_DIRS={}",
        includes.to_string_lossy()
    );
    println!("cargo:root={}", lib.root.display());
    println!("cargo:version_number={}", conf.version.number());
    println!("cargo:version={}", conf.version);
    println!("cargo:conf={}", conf.flags.join(","));
    if lib.vendored {
        println!("cargo:vendored=1");
        println!("cargo:rustc-cfg=lws_vendored");
    }

    // The committed bindings describe the vendored default configuration only.
    let committed_fit = lib.vendored && vendored::default_features();
    if committed_fit {
        println!("lws-sys: using the committed bindings (src/bindings.rs)");
        println!("cargo:rustc-env=LWS_SYS_COMMITTED_BINDINGS=1");
    } else {
        bindgen_run::generate(&lib.include_dirs);
        println!("cargo:rustc-cfg=lws_sys_generated_bindings");
    }
}

/// `system` feature, or `LWS_SYS_SYSTEM` set to anything but `0`.
fn system_requested() -> bool {
    if cfg!(feature = "system") {
        println!("lws-sys: feature `system` is on: linking the system libwebsockets");
        return true;
    }
    match env::var("LWS_SYS_SYSTEM") {
        Some(v) if v != "0" => {
            println!("lws-sys: LWS_SYS_SYSTEM={v}: linking the system libwebsockets");
            true
        }
        _ => false,
    }
}

/// Stops the build with a message that says what to do; no panic backtrace.
pub fn fail(lines: &[&str]) -> ! {
    eprintln!();
    for line in lines {
        eprintln!("lws-sys: {line}");
    }
    eprintln!();
    std::process::exit(1);
}
