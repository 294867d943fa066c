//! Which firewall is active on a Linux node. Front-ends are asked first because they own the
//! rules when they are on: ufw (its config file), firewalld (its process); then the kernel
//! rule sets through `nft list ruleset` and `iptables-save`/`ip6tables-save`. A firewall
//! counts as enabled when it has at least one rule or a chain whose policy drops.

use std::collections::BTreeSet;
use std::time::Duration;

use capstan_proto::inventory::Firewall;

use crate::command;
use crate::root::Root;

pub(crate) async fn detect(
    root: &Root,
    processes: &BTreeSet<String>,
    timeout: Duration,
) -> Firewall {
    let mut present: Option<&str> = None;
    if let Ok(conf) = root.read("/etc/ufw/ufw.conf") {
        if ufw_enabled(&conf) {
            let rules = ["/etc/ufw/user.rules", "/etc/ufw/user6.rules"]
                .iter()
                .filter_map(|p| root.read(p).ok())
                .map(|t| ufw_rule_count(&t))
                .sum();
            return Firewall {
                backend: Some("ufw".into()),
                enabled: true,
                rule_count: Some(rules),
                detail: Some("ufw.conf ENABLED=yes".into()),
            };
        }
        present = Some("ufw");
    }
    if processes.contains("firewalld") {
        return Firewall {
            backend: Some("firewalld".into()),
            enabled: true,
            rule_count: None,
            detail: Some("firewalld is running".into()),
        };
    }
    if present.is_none()
        && (root.exists("/usr/sbin/firewalld") || root.exists("/usr/bin/firewalld"))
    {
        present = Some("firewalld");
    }
    let mut counted: Option<(&str, RuleCount)> = None;
    if root.is_live() {
        if let Some(Ok(out)) = command::run_named("nft", &["list", "ruleset"], timeout).await
            && out.success()
        {
            let c = count_nft(&out.stdout);
            if c.active() {
                return c.into_firewall("nftables", "nft list ruleset");
            }
            counted = Some(("nftables", c));
        }
        let mut c = RuleCount::default();
        let mut ran = false;
        for tool in ["iptables-save", "ip6tables-save"] {
            if let Some(Ok(out)) = command::run_named(tool, &[], timeout).await
                && out.success()
            {
                ran = true;
                c.add(count_iptables_save(&out.stdout));
            }
        }
        if c.active() {
            return c.into_firewall("iptables", "iptables-save");
        }
        if ran && counted.is_none() {
            counted = Some(("iptables", c));
        }
    }
    let detail = match (present, &counted) {
        (Some(p), _) => format!("{p} is installed but not active"),
        (None, Some((b, _))) => format!("{b}: no rules"),
        (None, None) => "no firewall tooling found (ufw, firewalld, nft, iptables)".into(),
    };
    Firewall {
        backend: present
            .or(counted.as_ref().map(|(b, _)| *b))
            .map(str::to_string),
        enabled: false,
        rule_count: counted.map(|(_, c)| c.rules),
        detail: Some(detail),
    }
}

/// `ENABLED=yes` in /etc/ufw/ufw.conf.
pub(crate) fn ufw_enabled(conf: &str) -> bool {
    conf.lines().any(|l| {
        l.trim().strip_prefix("ENABLED=").is_some_and(|v| {
            v.trim()
                .trim_matches(['"', '\''])
                .eq_ignore_ascii_case("yes")
        })
    })
}

/// ufw marks each user rule in user.rules with a `### tuple ###` comment.
pub(crate) fn ufw_rule_count(rules: &str) -> u32 {
    rules
        .lines()
        .filter(|l| l.starts_with("### tuple ###"))
        .count() as u32
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RuleCount {
    pub rules: u32,
    pub dropping_chains: u32,
}

impl RuleCount {
    fn active(&self) -> bool {
        self.rules > 0 || self.dropping_chains > 0
    }

    fn add(&mut self, other: RuleCount) {
        self.rules += other.rules;
        self.dropping_chains += other.dropping_chains;
    }

    fn into_firewall(self, backend: &str, source: &str) -> Firewall {
        Firewall {
            backend: Some(backend.into()),
            enabled: true,
            rule_count: Some(self.rules),
            detail: Some(format!(
                "{source}: {} rules, {} chains with a drop policy",
                self.rules, self.dropping_chains
            )),
        }
    }
}

/// Counts the rules in `nft list ruleset` output: the statements inside `chain … { }` blocks
/// other than the chain's own `type … hook …; policy …;` line.
pub(crate) fn count_nft(ruleset: &str) -> RuleCount {
    let mut c = RuleCount::default();
    let mut depth: i32 = 0;
    let mut chain_depth: Option<i32> = None;
    for raw in ruleset.lines() {
        let line = raw.trim();
        let opens = line.matches('{').count() as i32;
        let closes = line.matches('}').count() as i32;
        match chain_depth {
            None if line.starts_with("chain ") && line.ends_with('{') => {
                chain_depth = Some(depth + opens - closes)
            }
            Some(d) if depth == d && line == "}" => chain_depth = None,
            Some(d) if depth == d && !line.is_empty() && !line.starts_with('#') => {
                if line.starts_with("type ") || line.starts_with("policy ") {
                    if line.contains("policy drop") {
                        c.dropping_chains += 1;
                    }
                } else if !line.starts_with("comment ") {
                    c.rules += 1;
                }
            }
            _ => {}
        }
        depth += opens - closes;
    }
    c
}

/// Counts `-A` lines of `iptables-save` output and built-in chains whose policy is DROP.
pub(crate) fn count_iptables_save(save: &str) -> RuleCount {
    let mut c = RuleCount::default();
    for line in save.lines() {
        if line.starts_with("-A ") {
            c.rules += 1;
        } else if let Some(chain) = line.strip_prefix(':')
            && chain.split_whitespace().nth(1) == Some("DROP")
        {
            c.dropping_chains += 1;
        }
    }
    c
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::root::testing::Tree;

    const NFT: &str = r#"table inet filter {
	set blocked {
		type ipv4_addr
		elements = { 192.0.2.1, 192.0.2.2 }
	}

	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iif "lo" accept
		tcp dport { 22, 443 } accept comment "ssh and https"
		ip saddr @blocked drop
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
	}
}
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth0" masquerade
	}
}
"#;

    #[test]
    fn nft_rules_are_counted_inside_chains_only() {
        assert_eq!(
            count_nft(NFT),
            RuleCount {
                rules: 5,
                dropping_chains: 1
            }
        );
        let empty = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n";
        assert_eq!(count_nft(empty), RuleCount::default());
    }

    #[test]
    fn iptables_save_rules_and_policies() {
        let save = "# Generated by iptables-save v1.8.9\n*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n\
                    :OUTPUT ACCEPT [0:0]\n:f2b-sshd - [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n";
        assert_eq!(
            count_iptables_save(save),
            RuleCount {
                rules: 2,
                dropping_chains: 1
            }
        );
    }

    #[test]
    fn ufw_config_and_rules() {
        assert!(ufw_enabled("# comment\nENABLED=yes\nLOGLEVEL=low\n"));
        assert!(!ufw_enabled("ENABLED=no\n"));
        let rules = "*filter\n### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in\n-A ufw-user-input -p tcp --dport 22 -j ACCEPT\n\
                     ### tuple ### allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in\n";
        assert_eq!(ufw_rule_count(rules), 2);
    }

    #[tokio::test]
    async fn ufw_wins_when_enabled_and_disabled_ufw_is_reported() {
        let tree = Tree::new()
            .file("/etc/ufw/ufw.conf", "ENABLED=yes\n")
            .file(
                "/etc/ufw/user.rules",
                "### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in\n",
            )
            .file(
                "/etc/ufw/user6.rules",
                "### tuple ### allow tcp 22 ::/0 any ::/0 in\n",
            );
        let fw = detect(&tree.root(), &BTreeSet::new(), Duration::from_secs(1)).await;
        assert_eq!(
            (fw.backend.as_deref(), fw.enabled, fw.rule_count),
            (Some("ufw"), true, Some(2))
        );

        let tree = Tree::new().file("/etc/ufw/ufw.conf", "ENABLED=no\n");
        let fw = detect(&tree.root(), &BTreeSet::new(), Duration::from_secs(1)).await;
        assert_eq!((fw.backend.as_deref(), fw.enabled), (Some("ufw"), false));

        let procs: BTreeSet<String> = ["systemd".to_string(), "firewalld".to_string()].into();
        let fw = detect(&tree.root(), &procs, Duration::from_secs(1)).await;
        assert_eq!(
            (fw.backend.as_deref(), fw.enabled),
            (Some("firewalld"), true)
        );
    }
}
