//! The committed src/bindings.rs is exactly what bindgen produces for the
//! vendored configuration. Run with `LWS_SYS_BLESS=1` to rewrite it
//! (scripts/regen-bindings.sh does that).
//!
//! bindgen loads libclang at run time. Without libclang the check is skipped
//! with a message, unless `LWS_SYS_REQUIRE_BINDGEN=1` (set by CI) makes that a
//! failure.

#[path = "../build/bindings_config.rs"]
mod bindings_config;

use std::path::{Path, PathBuf};

#[test]
fn committed_bindings_are_current() {
    if option_env!("LWS_SYS_COMMITTED_BINDINGS").is_none() {
        eprintln!("skipped: this build generates its bindings; nothing committed to compare");
        return;
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let includes: Vec<PathBuf> = std::env::split_paths(env!("LWS_SYS_INCLUDE_DIRS")).collect();
    let committed_path = manifest.join("src/bindings.rs");

    if let Err(e) = clang_available() {
        let required = std::env::var("LWS_SYS_REQUIRE_BINDGEN").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "LWS_SYS_REQUIRE_BINDGEN=1 but libclang is unusable: {e}"
        );
        eprintln!("skipped: libclang not found ({e}); install libclang-dev to run this check");
        return;
    }
    let fresh = bindings_config::builder(&manifest.join("wrapper.h"), &includes)
        .generate()
        .expect("bindgen over wrapper.h")
        .to_string();

    if std::env::var("LWS_SYS_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&committed_path, &fresh).expect("write src/bindings.rs");
        eprintln!("rewrote {}", committed_path.display());
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).expect("read src/bindings.rs");
    if committed != fresh {
        let line = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .map_or(committed.lines().count().min(fresh.lines().count()), |n| n);
        panic!(
            "src/bindings.rs is stale (first difference near line {}): run scripts/regen-bindings.sh",
            line + 1
        );
    }
}

fn clang_available() -> Result<(), String> {
    // The same search bindgen does (LIBCLANG_PATH, llvm-config, usual dirs).
    std::panic::catch_unwind(bindgen::clang_version)
        .map(|_| ())
        .map_err(|_| "libclang could not be loaded".to_string())
}
