//! Bindings generated at build time, for an lws whose configuration is not
//! the vendored default (external lws, or non-default features).

use std::path::PathBuf;

#[cfg(feature = "bindgen")]
pub fn generate(include_dirs: &[PathBuf]) {
    let manifest = PathBuf::from(crate::env::cargo("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(crate::env::cargo("OUT_DIR")).join("bindings.rs");
    println!("lws-sys: generating bindings into {}", out.display());
    let bindings = crate::bindings_config::builder(&manifest.join("wrapper.h"), include_dirs)
        .generate()
        .unwrap_or_else(|e| {
            let msg = format!("bindgen failed: {e}");
            crate::fail(&[
                &msg,
                "bindgen needs libclang (Debian: apt-get install libclang-dev).",
            ])
        });
    bindings.write_to_file(&out).expect("write bindings.rs");
}

#[cfg(not(feature = "bindgen"))]
pub fn generate(_include_dirs: &[PathBuf]) {
    crate::fail(&[
        "this libwebsockets is not the vendored default build, so the committed bindings",
        "(src/bindings.rs) may not match its struct layouts (they depend on lws_config.h).",
        "Fix: enable the `bindgen` feature of lws-sys (needs libclang: apt-get install",
        "libclang-dev), e.g. `cargo build --features lws-sys/bindgen`.",
    ]);
}
