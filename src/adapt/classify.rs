//! Classification as configuration (`[adapt]`): which actions are restricted, which
//! principals are humans, CIDR → environment, owner tag keys, ignored tools, lease TTLs.
//! Matching is code; what matches is data with defaults in `config/default.toml`.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::Duration;
use crate::event::Micros;

/// The `[adapt]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptConfig {
    /// Tool names (globs, `*` matches any run) whose calls are `restricted`. A pattern
    /// `GLOB if PARAM` matches only when the request parameter `PARAM` is true (e.g.
    /// `ssm:GetParameter* if withDecryption`).
    pub restricted: Vec<String>,
    /// Tool names (globs) whose calls are `confidential`.
    pub confidential: Vec<String>,
    /// Identity keys (globs) of humans: their records are skipped as `not_nhi`.
    pub humans: Vec<String>,
    /// Tag or annotation keys naming an identity's business owner.
    pub owner_tag_keys: Vec<String>,
    /// Tag or annotation keys naming an identity's technical custodian.
    pub custodian_tag_keys: Vec<String>,
    /// Tool names (globs) that are not tools (agent frameworks' pseudo-tools): skipped.
    pub ignore_tools: Vec<String>,
    /// Source address ranges and the environment their calls run in.
    pub environments: Vec<CidrEnvironment>,
    /// How long a session credential lives when the log does not say (AWS console and
    /// `GetSessionToken` sessions seen only in use).
    pub session_ttl: Duration,
    /// Vault dynamic secrets: the lease TTL per path glob (the audit entry has none).
    pub lease_ttls: Vec<LeaseTtl>,
    /// Lease TTL for Vault dynamic secrets no `lease_ttls` entry matches.
    pub default_lease_ttl: Duration,
    /// Cluster name in Kubernetes and Vault identity keys.
    pub cluster: String,
    /// Kubernetes: also adapt the control plane's own service accounts (`kube-system`).
    pub include_system_service_accounts: bool,
    /// Vault auth mounts whose tokens are JIT tokens.
    pub jit_auth_mounts: Vec<String>,
}

/// One `[[adapt.environments]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CidrEnvironment {
    /// An IPv4 or IPv6 range, `10.0.0.0/8`.
    pub cidr: String,
    /// The environment (`prod`, `staging`, …).
    pub environment: String,
}

/// One `[[adapt.lease_ttls]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseTtl {
    /// Request path glob, e.g. `database/creds/*`.
    pub path: String,
    /// The lease's TTL.
    pub ttl: Duration,
}

impl AdaptConfig {
    /// The sensitivity of a call to `tool` with request parameters `params`, when config
    /// classifies it.
    pub fn sensitivity(&self, tool: &str, params: Option<&Map<String, Value>>) -> Option<&str> {
        let matches = |pattern: &String| {
            let (glob, condition) = match pattern.split_once(" if ") {
                Some((glob, param)) => (glob.trim(), Some(param.trim())),
                None => (pattern.as_str(), None),
            };
            glob_match(glob, tool)
                && condition.is_none_or(|param| {
                    params
                        .and_then(|p| p.get(param))
                        .is_some_and(|v| v == &Value::Bool(true) || v == "true")
                })
        };
        if self.restricted.iter().any(matches) {
            Some("restricted")
        } else if self.confidential.iter().any(matches) {
            Some("confidential")
        } else {
            None
        }
    }

    /// Whether `identity` is a human by config.
    pub fn is_human(&self, identity: &str) -> bool {
        self.humans.iter().any(|g| glob_match(g, identity))
    }

    /// Whether `tool` is ignored.
    pub fn ignores_tool(&self, tool: &str) -> bool {
        self.ignore_tools.iter().any(|g| glob_match(g, tool))
    }

    /// The environment of calls from `ip`, by the first matching range.
    pub fn environment(&self, ip: &str) -> Option<&str> {
        let ip: IpAddr = ip.trim().parse().ok()?;
        self.environments
            .iter()
            .find(|e| cidr_contains(&e.cidr, ip))
            .map(|e| e.environment.as_str())
    }

    /// The lease TTL of a Vault dynamic secret read at `path`.
    pub fn lease_ttl(&self, path: &str) -> Micros {
        self.lease_ttls
            .iter()
            .find(|l| glob_match(&l.path, path))
            .map_or(self.default_lease_ttl.0, |l| l.ttl.0)
    }

    /// The owner and custodian named by `tags` (key → value pairs), by the configured keys.
    pub fn owners<'a>(
        &self,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (Option<String>, Option<String>) {
        let (mut owner, mut custodian) = (None, None);
        for (k, v) in tags {
            if v.is_empty() {
                continue;
            }
            if self
                .owner_tag_keys
                .iter()
                .any(|o| o.eq_ignore_ascii_case(k))
            {
                owner = Some(v.to_owned());
            }
            if self
                .custodian_tag_keys
                .iter()
                .any(|o| o.eq_ignore_ascii_case(k))
            {
                custodian = Some(v.to_owned());
            }
        }
        (owner, custodian)
    }

    /// Checks the values serde cannot: every CIDR parses.
    pub fn validate(&self) -> Result<(), String> {
        for e in &self.environments {
            if parse_cidr(&e.cidr).is_none() {
                return Err(format!(
                    "`adapt.environments`: `{}` is not a CIDR range (e.g. 10.0.0.0/8)",
                    e.cidr
                ));
            }
        }
        Ok(())
    }
}

/// Glob match where `*` matches any run of characters (also none).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

fn parse_cidr(cidr: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = cidr.trim().split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((addr, bits))
}

fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let Some((net, bits)) = parse_cidr(cidr) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn config() -> AdaptConfig {
        crate::config::Config::load_with_env(None, Vec::new())
            .expect("default config")
            .adapt
    }

    #[test]
    fn globs_match_runs() {
        assert!(glob_match("iam:Attach*Policy", "iam:AttachUserPolicy"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "abc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn cidrs_map_to_environments() {
        let mut c = config();
        c.environments = vec![
            CidrEnvironment {
                cidr: "10.0.0.0/8".into(),
                environment: "prod".into(),
            },
            CidrEnvironment {
                cidr: "0.0.0.0/0".into(),
                environment: "internet".into(),
            },
        ];
        assert_eq!(c.environment("10.8.8.10"), Some("prod"));
        assert_eq!(c.environment("1.2.3.4"), Some("internet"));
        assert_eq!(c.environment("AWS Internal"), None);
        assert_eq!(c.environment("::1"), None);
    }

    #[test]
    fn decrypting_parameter_reads_are_restricted_by_default() {
        let c = config();
        let with = serde_json::json!({"withDecryption": true});
        let without = serde_json::json!({"withDecryption": false});
        assert_eq!(
            c.sensitivity("ssm:GetParameter", with.as_object()),
            Some("restricted")
        );
        assert_eq!(c.sensitivity("ssm:GetParameter", without.as_object()), None);
        for tool in [
            "secretsmanager:GetSecretValue",
            "ec2:GetPasswordData",
            "iam:CreateAccessKey",
            "iam:AttachRolePolicy",
            "iam:UpdateAssumeRolePolicy",
            "k8s:get:secrets",
            "k8s:create:pods/exec",
            "vault:read:secret/",
        ] {
            assert_eq!(c.sensitivity(tool, None), Some("restricted"), "{tool}");
        }
        assert_eq!(c.sensitivity("s3:ListBuckets", None), None);
    }
}
