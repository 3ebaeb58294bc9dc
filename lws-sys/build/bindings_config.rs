//! The one bindgen configuration, used by the build script (feature
//! `bindgen`, for external lws builds) and by tests/bindings_current.rs,
//! which regenerates the committed src/bindings.rs and fails when it differs.

use std::path::{Path, PathBuf};

/// bindgen over wrapper.h with the given include dirs (ours first).
pub fn builder(wrapper: &Path, include_dirs: &[PathBuf]) -> bindgen::Builder {
    let mut b = bindgen::Builder::default()
        .header(wrapper.to_string_lossy())
        .allowlist_function("lws.*|_lws.*|lwsl_.*")
        .allowlist_type("lws.*|_lws.*|LWS.*")
        .allowlist_var("LWS.*|lws.*|LLL_.*|CONTEXT_PORT_.*")
        // va_list differs per ABI and cannot be built from Rust anyway.
        .blocklist_function("_lws_logv|lws_lec_vsprintf")
        .blocklist_type("va_list|__va_list_tag|__builtin_va_list")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(true)
        .generate_comments(false)
        .size_t_is_usize(true)
        .ctypes_prefix("::libc")
        // Deterministic output, with no dependence on an installed rustfmt.
        .formatter(bindgen::Formatter::Prettyplease);
    for dir in include_dirs {
        b = b.clang_arg(format!("-I{}", dir.display()));
    }
    b
}
