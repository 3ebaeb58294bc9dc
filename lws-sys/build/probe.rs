//! Reads an lws build's configuration with the C preprocessor: the version
//! macros and the LWS_* switches in its lws_config.h become markers in the
//! expanded output (as openssl-sys's expando.c does).

use std::fmt;
use std::path::PathBuf;

/// The switches we report (cargo:conf) and check.
const FLAGS: &[&str] = &[
    "LWS_ROLE_H1",
    "LWS_ROLE_WS",
    "LWS_ROLE_RAW",
    "LWS_WITH_CLIENT",
    "LWS_WITH_SERVER",
    "LWS_WITH_NETWORK",
    "LWS_WITH_TLS",
    "LWS_WITH_IPV6",
    "LWS_WITH_UNIX_SOCK",
    "LWS_WITH_CUSTOM_HEADERS",
    "LWS_CLIENT_HTTP_PROXYING",
    "LWS_WITHOUT_EXTENSIONS",
    "LWS_WITH_HTTP2",
    "LWS_WITH_PLUGINS",
    "LWS_WITH_EXTERNAL_POLL",
    "LWS_WITH_FILE_OPS",
    "LWS_WITH_POLL",
];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// The same number as LWS_LIBRARY_VERSION_NUMBER.
    pub fn number(self) -> u32 {
        self.0 * 1_000_000 + self.1 * 1000 + self.2
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

pub struct Config {
    pub version: Version,
    /// The FLAGS that are defined.
    pub flags: Vec<String>,
}

impl Config {
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// Refuses an lws this crate cannot drive, saying why and what to do.
    pub fn require_usable(&self, vendored: bool) {
        let what = if vendored {
            "the vendored build"
        } else {
            "the libwebsockets found"
        };
        if self.version < Version(4, 3, 0) {
            let found = format!("{what} is version {}", self.version);
            crate::fail(&[
                &found,
                "lws-sys needs libwebsockets >= 4.3: the custom event-loop API",
                "(lws_context_creation_info.event_lib_custom) that lws-rs drives with mio",
                "first appeared in 4.3. Debian bookworm's libwebsockets-dev is 4.1.6.",
                "Fix: drop LWS_SYS_SYSTEM / the `system` feature / LWS_LIB_DIR to build the",
                "vendored 4.3.5, or point LWS_LIB_DIR + LWS_INCLUDE_DIR at an lws >= 4.3 build.",
            ]);
        }
        for needed in ["LWS_ROLE_WS", "LWS_WITH_NETWORK"] {
            if !self.has(needed) {
                let found = format!("{what} ({}) was built without {needed}", self.version);
                crate::fail(&[
                    &found,
                    "lws-rs needs the WebSocket role and networking.",
                    "Fix: rebuild it with -DLWS_ROLE_WS=ON, or use the vendored build.",
                ]);
            }
        }
    }
}

pub fn read_config(include_dirs: &[PathBuf]) -> Config {
    let out = PathBuf::from(crate::env::cargo("OUT_DIR"));
    let mut src = String::from("#include <lws_config.h>\n");
    // One pasted token: gcc may break the line after a macro expanded from
    // a system header dir (/usr/include), which would split three numbers.
    src.push_str(
        "#define RUST_LWS_V2(a, b, c) RUST_LWS_VERSION_##a##_##b##_##c\n\
         #define RUST_LWS_V(a, b, c) RUST_LWS_V2(a, b, c)\n\
         RUST_LWS_V(LWS_LIBRARY_VERSION_MAJOR, LWS_LIBRARY_VERSION_MINOR, LWS_LIBRARY_VERSION_PATCH)\n",
    );
    for flag in FLAGS {
        src.push_str(&format!("#ifdef {flag}\nRUST_LWS_CONF_{flag}\n#endif\n"));
    }
    let expando = out.join("expando.c");
    std::fs::write(&expando, src).expect("write expando.c");

    let mut build = cc::Build::new();
    build.cargo_metadata(false).file(&expando);
    for dir in include_dirs {
        build.include(dir);
    }
    let expanded = match build.try_expand() {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            let msg = format!("could not preprocess lws_config.h from {include_dirs:?}: {e}");
            crate::fail(&[
                &msg,
                "Is LWS_INCLUDE_DIR (or the pkg-config include dir) right?",
            ])
        }
    };

    let mut version = None;
    let mut flags = Vec::new();
    for line in expanded.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("RUST_LWS_VERSION_") {
            let parts: Vec<u32> = rest.split('_').filter_map(|p| p.parse().ok()).collect();
            if let [major, minor, patch] = parts[..] {
                version = Some(Version(major, minor, patch));
            }
        } else if let Some(flag) = line.strip_prefix("RUST_LWS_CONF_") {
            flags.push(flag.to_string());
        }
    }
    let Some(version) = version else {
        crate::fail(&["lws_config.h does not define LWS_LIBRARY_VERSION_MAJOR/MINOR/PATCH"])
    };
    Config { version, flags }
}
