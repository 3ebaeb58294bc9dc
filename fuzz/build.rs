//! libFuzzer defines `__sanitizer_cov_trace_pc` as a stub that refuses
//! gcc's trace-pc instrumentation; src/c_coverage.rs defines the real one.
//! Ours comes first on the link line (the lws_fuzz rlib precedes
//! libfuzzer-sys), so with multiple definitions allowed the linker keeps it.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_LWS_C_COVERAGE").is_ok() {
        println!("cargo:rustc-link-arg-bins=-Wl,--allow-multiple-definition");
    }
}
