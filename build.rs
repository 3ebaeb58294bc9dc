//! Builds the plain-C reference programs in c/ against the libwebsockets
//! lws-sys links (its `links = "websockets"` metadata), so benchmarks and
//! tests compare our Rust layer with C on the very same library.
//!
//! Each program lands in OUT_DIR and, for scripts, in the profile dir
//! (`target/release/lws-c-echo-server`, `lws-c-latency`); tests find it through
//! `env!("LWS_C_ECHO_SERVER")`.

use std::env;
use std::path::{Path, PathBuf};

/// (source under c/, executable name, env var naming its path)
const PROGRAMS: &[(&str, &str, &str)] = &[
    ("echo_server.c", "lws-c-echo-server", "LWS_C_ECHO_SERVER"),
    ("latency_client.c", "lws-c-latency", "LWS_C_LATENCY"),
];

fn main() {
    println!("cargo:rerun-if-changed=c");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let includes = env::var("DEP_WEBSOCKETS_INCLUDE").expect("lws-sys gives its include dirs");
    let root = PathBuf::from(env::var("DEP_WEBSOCKETS_ROOT").expect("lws-sys gives its root"));
    let vendored = env::var("DEP_WEBSOCKETS_VENDORED").is_ok();
    // target/<profile>/build/lws-rs-<hash>/out -> target/<profile>
    let profile_dir = out.ancestors().nth(3).map(Path::to_path_buf);

    let compiler = cc::Build::new().opt_level(2).get_compiler();
    for (source, name, var) in PROGRAMS {
        let exe = out.join(name);
        let mut cmd = compiler.to_command();
        cmd.args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&exe)
            .arg(Path::new("c").join(source));
        for dir in env::split_paths(&includes) {
            cmd.arg("-I").arg(dir);
        }
        if vendored {
            cmd.arg(root.join("libwebsockets.a"));
        } else {
            cmd.arg("-L").arg(&root).arg("-lwebsockets");
            cmd.arg(format!("-Wl,-rpath,{}", root.display()));
        }
        cmd.args(["-lssl", "-lcrypto", "-lz", "-lpthread"]);
        let result = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        if !result.status.success() {
            panic!(
                "building the C reference program c/{source} failed:\n{cmd:?}\n{}",
                String::from_utf8_lossy(&result.stderr)
            );
        }
        if let Some(dir) = &profile_dir {
            // Best effort: scripts use this copy, tests the OUT_DIR one.
            let _ = std::fs::copy(&exe, dir.join(name));
        }
        println!("cargo:rustc-env={var}={}", exe.display());
    }
    embed_service(&includes, &root, vendored);
}

/// The C example service with Rust protocols (c/embed/): its `main` is C,
/// linked into the `#![no_main]` binary src/bin/lws-c-embed-service.rs,
/// which supplies the Rust protocols and, through lws-sys, the same lws.
fn embed_service(includes: &str, root: &Path, vendored: bool) {
    let mut build = cc::Build::new();
    build
        .file("c/embed/embed_service.c")
        .flag("-std=gnu11")
        .flag("-Wall")
        .flag("-Wextra")
        .flag("-Werror")
        .cargo_metadata(false);
    for dir in env::split_paths(includes) {
        build.include(dir);
    }
    let bin = "lws-c-embed-service";
    for object in build.compile_intermediates() {
        println!("cargo:rustc-link-arg-bin={bin}={}", object.display());
    }
    // The C object comes after the Rust crates on the link line: name lws
    // and its libraries again for the symbols only the C side uses.
    if vendored {
        let lib = root.join("libwebsockets.a");
        println!("cargo:rustc-link-arg-bin={bin}={}", lib.display());
    } else {
        println!("cargo:rustc-link-arg-bin={bin}=-L{}", root.display());
        println!("cargo:rustc-link-arg-bin={bin}=-lwebsockets");
        println!(
            "cargo:rustc-link-arg-bin={bin}=-Wl,-rpath,{}",
            root.display()
        );
    }
    for lib in ["-lssl", "-lcrypto", "-lz", "-lpthread"] {
        println!("cargo:rustc-link-arg-bin={bin}={lib}");
    }
}
