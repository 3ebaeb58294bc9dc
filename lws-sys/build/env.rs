//! Environment variables, read in one place so each is tracked and logged.

/// Reads `NAME` (or `<TARGET>_NAME` first, for cross builds), tells cargo to
/// rerun when either changes, and logs what was found.
pub fn var(name: &str) -> Option<String> {
    let target = std::env::var("TARGET").unwrap_or_default();
    let prefixed = format!("{}_{}", target.to_uppercase().replace('-', "_"), name);
    for key in [prefixed.as_str(), name] {
        println!("cargo:rerun-if-env-changed={key}");
        if let Ok(value) = std::env::var(key) {
            println!("lws-sys: {key}={value}");
            return Some(value);
        }
    }
    None
}

/// A variable cargo always sets for build scripts.
pub fn cargo(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo did not set {name}"))
}
