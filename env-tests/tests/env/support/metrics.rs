//! `/metrics` of every service: scraped over HTTP, checked by the Prometheus project's own
//! parser (`promtool check metrics`), and read for single sample values.
//!
//! promtool, not a parser of ours: a metric text that Prometheus would refuse to ingest must
//! fail here even when a lenient reader of our own would accept it. It parses the whole
//! exposition (a parse error is exit code 1, "error while linting") and then lints it (exit
//! code 3 with one line per finding: a missing HELP, a counter without `_total`, a
//! non-base unit, …). Both fail the tests: our catalogs (docs/observability/metrics/) promise
//! that every metric follows the naming conventions, and a lint finding is exactly a metric
//! that does not. A finding that is a deliberate exception goes into `ALLOWED_LINT`, with why.
//! A parse error is never allowed.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use reqwest::{Client, Method};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::time::timeout;

use super::config::Service;
use super::http::{request, send};

/// Lint findings accepted on purpose (substrings of promtool's line).
///
/// - `no help text`: the services register no descriptions with their metrics recorder, so no
///   family has a `# HELP` line; the descriptions live in the catalogs
///   (docs/observability/metrics/). Prometheus ingests such families unchanged (HELP is
///   metadata only). Remove this entry once the services describe their metrics, and every
///   family must then have its help text.
const ALLOWED_LINT: &[&str] = &["no help text"];

pub async fn scrape(http: &Client, service: &Service) -> anyhow::Result<String> {
    let reply = send(
        service,
        request(http, Method::GET, service, "/metrics", None),
    )
    .await?;
    if reply.status != 200 {
        return Err(reply.unexpected("expected 200"));
    }
    Ok(reply.text)
}

/// `promtool check metrics` over `text`: an error for a parse error or any lint finding that
/// is not allowed. `PROMTOOL` names another binary than the one on `PATH`.
pub async fn promtool_check(what: &str, text: &str) -> anyhow::Result<()> {
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {promtool}: install it (Debian's `prometheus` package; \
                 scripts/env-tests.sh installs it) or set PROMTOOL"
            )
        })?;
    let mut stdin = child.stdin.take().context("promtool's stdin")?;
    stdin
        .write_all(text.as_bytes())
        .await
        .context("writing the metrics to promtool")?;
    drop(stdin);
    let output = timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| anyhow!("promtool check metrics took over 30 s"))?
        .context("running promtool check metrics")?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match output.status.code() {
        Some(0) => Ok(()),
        Some(3) => {
            let findings: Vec<&str> = said
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .filter(|line| !ALLOWED_LINT.iter().any(|allowed| line.contains(allowed)))
                .collect();
            if findings.is_empty() {
                return Ok(());
            }
            bail!(
                "promtool check metrics found problems in {what}:\n  {}",
                findings.join("\n  ")
            )
        }
        _ => bail!(
            "promtool check metrics could not parse {what} ({}): {}",
            output.status,
            said.trim()
        ),
    }
}

/// The value of the sample `name` whose labels are exactly `labels` (in any order), if the
/// text has it. Enough for our own expositions, whose label values hold no `"`, `,` or `}`;
/// their validity is promtool's business.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    wanted.sort();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, found) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let mut found: Vec<String> = found
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(str::to_owned)
                .collect();
            found.sort();
            (found == wanted).then(|| value.parse().ok()).flatten()
        })
}

/// True when the exposition declares the metric family `name`.
pub fn has_family(text: &str, name: &str) -> bool {
    text.lines().any(|line| {
        line.strip_prefix("# TYPE ")
            .and_then(|rest| rest.split_whitespace().next())
            == Some(name)
    })
}
