//! Domain membership of a Linux node (E1-04), from the first source that knows: `realm list`
//! (realmd), sssd.conf, Samba's smb.conf (winbind), krb5.conf. A node with none of them is
//! reported as kind `none` so that "not joined" is a fact rather than a missing value.

use std::time::Duration;

use capstan_proto::inventory::DomainMembership;

use crate::root::Root;

pub(crate) async fn detect(root: &Root, timeout: Duration) -> DomainMembership {
    if root.is_live()
        && let Some(Ok(out)) =
            crate::command::run_named("realm", &["list"], timeout.min(Duration::from_secs(10)))
                .await
        && out.success()
        && let Some(d) = parse_realm_list(&out.stdout)
    {
        return d;
    }
    let from_file = |path: &str, parse: fn(&str) -> Option<DomainMembership>| {
        root.read(path).ok().and_then(|t| parse(&t))
    };
    from_file("/etc/sssd/sssd.conf", parse_sssd_conf)
        .or_else(|| from_file("/etc/samba/smb.conf", parse_smb_conf))
        .or_else(|| from_file("/etc/krb5.conf", parse_krb5_conf))
        .unwrap_or_else(|| DomainMembership {
            kind: "none".into(),
            ..Default::default()
        })
}

fn membership(kind: &str, name: Option<String>, source: &str) -> DomainMembership {
    DomainMembership {
        kind: kind.into(),
        name,
        source: Some(source.into()),
        ou: None,
    }
}

/// `realm list`: one block per configured realm, a header line with the realm name and
/// indented `key: value` lines.
pub(crate) fn parse_realm_list(out: &str) -> Option<DomainMembership> {
    let mut blocks: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in out.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            blocks.push((line.trim().to_string(), Vec::new()));
        } else if let (Some(block), Some((k, v))) = (blocks.last_mut(), line.split_once(':')) {
            block.1.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    blocks.into_iter().find_map(|(header, kv)| {
        let get = |key: &str| kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        if get("configured").as_deref() == Some("no") {
            return None;
        }
        let kind = match get("server-software").as_deref() {
            Some("active-directory") => "active_directory",
            _ => "kerberos",
        };
        let name = get("domain-name")
            .or_else(|| get("realm-name"))
            .or(Some(header));
        Some(membership(kind, name, "realmd"))
    })
}

/// A minimal INI reader: `[section]`, `key = value`, `#`/`;` comments; keys lower-cased.
fn ini(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.trim().to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((
                section.clone(),
                k.trim().to_ascii_lowercase(),
                v.trim().to_string(),
            ));
        }
    }
    out
}

fn ini_get<'a>(
    entries: &'a [(String, String, String)],
    section: &str,
    key: &str,
) -> Option<&'a str> {
    entries
        .iter()
        .find(|(s, k, _)| s.eq_ignore_ascii_case(section) && k == key)
        .map(|(_, _, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// sssd.conf: the first domain listed in `[sssd] domains` with an AD, IPA or Kerberos
/// provider. Pure LDAP domains are directory lookups, not domain membership.
pub(crate) fn parse_sssd_conf(text: &str) -> Option<DomainMembership> {
    let e = ini(text);
    let domains = ini_get(&e, "sssd", "domains")?;
    domains
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .find_map(|d| {
            let section = format!("domain/{d}");
            let get = |k: &str| ini_get(&e, &section, k).map(str::to_string);
            let id = get("id_provider").unwrap_or_default().to_ascii_lowercase();
            let auth = get("auth_provider")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let kind = match (id.as_str(), auth.as_str()) {
                ("ad", _) => "active_directory",
                ("ipa", _) | (_, "krb5") | (_, "ipa") => "kerberos",
                _ => return None,
            };
            let name = get("ad_domain")
                .or_else(|| get("ipa_domain"))
                .or_else(|| get("krb5_realm"))
                .or_else(|| Some(d.to_string()));
            Some(membership(kind, name, "sssd"))
        })
}

/// smb.conf `[global]`: `security = ads` means an AD member (winbind) named by `realm`;
/// otherwise the `workgroup` is the node's workgroup.
pub(crate) fn parse_smb_conf(text: &str) -> Option<DomainMembership> {
    let e = ini(text);
    let security = ini_get(&e, "global", "security").map(str::to_ascii_lowercase);
    let workgroup = ini_get(&e, "global", "workgroup").map(str::to_string);
    if security.as_deref() == Some("ads") {
        let name = ini_get(&e, "global", "realm")
            .map(str::to_string)
            .or(workgroup);
        return Some(membership("active_directory", name, "samba"));
    }
    workgroup.map(|w| membership("workgroup", Some(w), "samba"))
}

/// krb5.conf `[libdefaults] default_realm`. MIT's example realm, which distributions ship as
/// the default, is not a membership.
pub(crate) fn parse_krb5_conf(text: &str) -> Option<DomainMembership> {
    let e = ini(text);
    let realm = ini_get(&e, "libdefaults", "default_realm")?;
    (realm != "ATHENA.MIT.EDU")
        .then(|| membership("kerberos", Some(realm.to_string()), "krb5.conf"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_list_active_directory() {
        let out = "corp.example.com\n  type: kerberos\n  realm-name: CORP.EXAMPLE.COM\n  domain-name: corp.example.com\n  \
                   configured: kerberos-member\n  server-software: active-directory\n  client-software: sssd\n";
        let d = parse_realm_list(out).unwrap();
        assert_eq!(
            (d.kind.as_str(), d.name.as_deref(), d.source.as_deref()),
            ("active_directory", Some("corp.example.com"), Some("realmd"))
        );
    }

    #[test]
    fn realm_list_skips_unconfigured_and_handles_ipa() {
        let out = "other.test\n  configured: no\n  server-software: active-directory\n\
                   ipa.example.org\n  realm-name: IPA.EXAMPLE.ORG\n  configured: kerberos-member\n  server-software: ipa\n";
        let d = parse_realm_list(out).unwrap();
        assert_eq!(
            (d.kind.as_str(), d.name.as_deref()),
            ("kerberos", Some("IPA.EXAMPLE.ORG"))
        );
        assert_eq!(parse_realm_list(""), None);
    }

    #[test]
    fn sssd_ad_domain() {
        let conf = "[sssd]\ndomains = corp.example.com\nservices = nss, pam\n\n[domain/corp.example.com]\n\
                    id_provider = ad\nad_domain = corp.example.com\nkrb5_realm = CORP.EXAMPLE.COM\n";
        let d = parse_sssd_conf(conf).unwrap();
        assert_eq!(
            (d.kind.as_str(), d.name.as_deref(), d.source.as_deref()),
            ("active_directory", Some("corp.example.com"), Some("sssd"))
        );
        let ldap =
            "[sssd]\ndomains = LDAP\n[domain/LDAP]\nid_provider = ldap\nauth_provider = ldap\n";
        assert_eq!(parse_sssd_conf(ldap), None);
        let krb = "[sssd]\ndomains = X\n[domain/X]\nid_provider = ldap\nauth_provider = krb5\nkrb5_realm = X.ORG\n";
        assert_eq!(parse_sssd_conf(krb).unwrap().name.as_deref(), Some("X.ORG"));
    }

    #[test]
    fn samba_ads_and_workgroup() {
        let ads = "[global]\n   workgroup = CORP\n   security = ADS\n   realm = CORP.EXAMPLE.COM\n[homes]\n   browseable = no\n";
        let d = parse_smb_conf(ads).unwrap();
        assert_eq!(
            (d.kind.as_str(), d.name.as_deref()),
            ("active_directory", Some("CORP.EXAMPLE.COM"))
        );
        let wg = "# sample\n[global]\n; comment\n   workgroup = WORKGROUP\n   security = user\n";
        let d = parse_smb_conf(wg).unwrap();
        assert_eq!(
            (d.kind.as_str(), d.name.as_deref()),
            ("workgroup", Some("WORKGROUP"))
        );
    }

    #[test]
    fn krb5_default_realm() {
        let conf = "[libdefaults]\n\tdefault_realm = EXAMPLE.ORG\n[realms]\n\tEXAMPLE.ORG = {\n\t\tkdc = kdc.example.org\n\t}\n";
        assert_eq!(
            parse_krb5_conf(conf).unwrap().name.as_deref(),
            Some("EXAMPLE.ORG")
        );
        assert_eq!(
            parse_krb5_conf("[libdefaults]\ndefault_realm = ATHENA.MIT.EDU\n"),
            None
        );
    }
}
