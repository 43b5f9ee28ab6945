//! The stack under test, from the environment. Read once per process (nextest runs each test
//! in a process of its own); a missing variable fails the test with what to set, never a
//! silent pass.

use std::sync::OnceLock;

/// One service as the tests reach it, named the way a failure message names it.
#[derive(Clone, Debug)]
pub struct Service {
    /// `AC`, `GC`, `MC`.
    pub name: &'static str,
    /// The variable the URL came from.
    pub var: &'static str,
    /// Base URL without a trailing slash.
    pub url: String,
}

impl Service {
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `GC at http://127.0.0.1:8080 (CONVENE_GC_URL)`.
    pub fn describe(&self) -> String {
        format!("{} at {} ({})", self.name, self.url, self.var)
    }
}

pub struct Stack {
    pub ac: Service,
    pub gc: Service,
    /// Every meeting controller: `CONVENE_MC_URLS` (comma-separated) when set, else
    /// `CONVENE_MC_URL` alone.
    pub mcs: Vec<Service>,
    pub admin_client_id: String,
    pub admin_client_secret: String,
    /// The `iss` of every token (`CONVENE_JWT_ISSUER`, default `convene-ac` as in AC).
    pub issuer: String,
}

const REQUIRED: [&str; 5] = [
    "CONVENE_AC_URL",
    "CONVENE_GC_URL",
    "CONVENE_MC_URL",
    "CONVENE_ADMIN_CLIENT_ID",
    "CONVENE_ADMIN_CLIENT_SECRET",
];

/// The stack named by the environment.
pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| match Stack::from_env() {
        Ok(stack) => stack,
        Err(message) => panic!("{message}"),
    })
}

/// rustls' crypto provider: reqwest and the WebSocket client are built without one, as the
/// services are, so TLS (a staging stack) needs it installed once per process.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Stack {
    fn from_env() -> Result<Stack, String> {
        let value = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
        let missing: Vec<&str> = REQUIRED
            .into_iter()
            .filter(|var| value(var).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the env-tests run against a deployed Convene stack named by environment \
                 variables, and {} not set.\n\
                 - To start a local stack and run the tests against it: scripts/env-tests.sh\n\
                 - Against the dev stack of scripts/dev.sh: set -a; source .dev/tokens.env; set +a\n\
                 - Against kind or staging: set CONVENE_AC_URL, CONVENE_GC_URL, CONVENE_MC_URL \
                 and the admin client CONVENE_ADMIN_CLIENT_ID / CONVENE_ADMIN_CLIENT_SECRET \
                 (env-tests/README.md)",
                match missing.as_slice() {
                    [one] => format!("{one} is"),
                    many => format!("{} are", many.join(", ")),
                }
            ));
        }
        let service = |name, var: &'static str| -> Result<Service, String> {
            let url = value(var).unwrap_or_default();
            let url = url.trim().trim_end_matches('/').to_owned();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "{var} must be an http:// or https:// base URL, not {url:?}"
                ));
            }
            Ok(Service { name, var, url })
        };
        let mc = service("MC", "CONVENE_MC_URL")?;
        let mcs = match value("CONVENE_MC_URLS") {
            None => vec![mc],
            Some(list) => list
                .split(',')
                .filter(|url| !url.trim().is_empty())
                .map(|url| {
                    let url = url.trim().trim_end_matches('/').to_owned();
                    if url.starts_with("http://") || url.starts_with("https://") {
                        Ok(Service {
                            name: "MC",
                            var: "CONVENE_MC_URLS",
                            url,
                        })
                    } else {
                        Err(format!(
                            "CONVENE_MC_URLS must list http:// or https:// base URLs, not {url:?}"
                        ))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Stack {
            ac: service("AC", "CONVENE_AC_URL")?,
            gc: service("GC", "CONVENE_GC_URL")?,
            mcs,
            admin_client_id: value("CONVENE_ADMIN_CLIENT_ID").unwrap_or_default(),
            admin_client_secret: value("CONVENE_ADMIN_CLIENT_SECRET").unwrap_or_default(),
            issuer: value("CONVENE_JWT_ISSUER").unwrap_or_else(|| "convene-ac".to_owned()),
        })
    }
}
