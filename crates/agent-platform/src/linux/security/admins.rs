//! Local administrators of a Linux node: uid-0 accounts and members of the groups that
//! sudo/polkit treat as administrators by default on the major distributions.

use capstan_proto::inventory::LocalAdmin;

/// Groups whose members can become root: `sudo` (Debian/Ubuntu), `wheel` (RHEL, Arch,
/// SUSE), `admin` (Ubuntu before 12.04, still honoured by its sudoers).
pub(crate) const ADMIN_GROUPS: &[&str] = &["sudo", "wheel", "admin"];

/// Computes administrators from /etc/passwd and /etc/group. A user is listed once per
/// reason (`uid0`, `group:sudo`, …); membership counts whether it is listed in the group
/// line or the group is the user's primary group.
pub(crate) fn local_admins(passwd: &str, group: &str) -> Vec<LocalAdmin> {
    let users: Vec<(&str, &str, &str)> = passwd
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('+') && !l.starts_with('-'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && !f[0].is_empty()).then(|| (f[0], f[2], f[3]))
        })
        .collect();
    let mut out: Vec<LocalAdmin> = Vec::new();
    let mut add = |name: &str, via: String| {
        if !name.is_empty() && !out.iter().any(|a| a.name == name && a.via == via) {
            out.push(LocalAdmin {
                name: name.to_string(),
                via,
            });
        }
    };
    for (name, uid, _) in &users {
        if uid.trim() == "0" {
            add(name, "uid0".into());
        }
    }
    for wanted in ADMIN_GROUPS {
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || f[0] != *wanted {
                continue;
            }
            let via = format!("group:{wanted}");
            for member in f[3].split(',').map(str::trim) {
                add(member, via.clone());
            }
            for (name, _, gid) in &users {
                if gid.trim() == f[2].trim() {
                    add(name, via.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid0_group_members_and_primary_group() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      toor:x:0:0::/root:/bin/sh\n\
                      daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                      alice:x:1000:1000:Alice:/home/alice:/bin/bash\n\
                      bob:x:1001:10:Bob:/home/bob:/bin/bash\n\
                      +nisuser::::::\n";
        let group =
            "root:x:0:\nwheel:x:10:carol\nsudo:x:27:alice,root\nusers:x:100:alice,bob\nbroken\n";
        let got: Vec<(String, String)> = local_admins(passwd, group)
            .into_iter()
            .map(|a| (a.name, a.via))
            .collect();
        let want: Vec<(String, String)> = [
            ("root", "uid0"),
            ("toor", "uid0"),
            ("alice", "group:sudo"),
            ("root", "group:sudo"),
            ("carol", "group:wheel"),
            ("bob", "group:wheel"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn empty_member_lists_add_nobody() {
        let got = local_admins("root:x:0:0::/root:/bin/sh\n", "sudo:x:27:\n");
        assert_eq!(
            got,
            vec![LocalAdmin {
                name: "root".into(),
                via: "uid0".into()
            }]
        );
    }
}
