//! Members of the local Administrators group from `net localgroup <name>` output: the lines
//! between the dashed rule and the closing status sentence. The sentence is localised ("The
//! command completed successfully.", "Der Befehl wurde erfolgreich ausgeführt."), so it is
//! recognised by shape: the last line, ending in a period — a Windows account or group name
//! cannot end in a period.

use capstan_proto::inventory::LocalAdmin;

pub(crate) fn parse_members(out: &str) -> Vec<String> {
    let lines: Vec<&str> = out
        .lines()
        .map(|l| l.trim_end_matches('\r').trim())
        .collect();
    let Some(rule) = lines
        .iter()
        .position(|l| l.len() >= 10 && l.chars().all(|c| c == '-'))
    else {
        return Vec::new();
    };
    let mut members: Vec<&str> = lines[rule + 1..]
        .iter()
        .copied()
        .filter(|l| !l.is_empty())
        .collect();
    if members
        .last()
        .is_some_and(|l| l.ends_with('.') && l.contains(' '))
    {
        members.pop();
    }
    members.into_iter().map(str::to_string).collect()
}

pub(crate) fn local_admins(out: &str, group: &str) -> Vec<LocalAdmin> {
    parse_members(out)
        .into_iter()
        .map(|name| LocalAdmin {
            name,
            via: format!("group:{group}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_output() {
        let out = "Alias name     Administrators\r\nComment        Administrators have complete and unrestricted access to the computer/domain\r\n\r\n\
                   Members\r\n\r\n-------------------------------------------------------------------------------\r\n\
                   Administrator\r\nCORP\\Domain Admins\r\nj.doe\r\nThe command completed successfully.\r\n\r\n";
        assert_eq!(
            parse_members(out),
            vec!["Administrator", "CORP\\Domain Admins", "j.doe"]
        );
        let admins = local_admins(out, "Administrators");
        assert_eq!(admins[1].via, "group:Administrators");
    }

    #[test]
    fn german_output_and_garbage() {
        let out = "Aliasname     Administratoren\r\nBeschreibung  Administratoren haben uneingeschränkten Vollzugriff\r\n\r\nMitglieder\r\n\r\n\
                   -------------------------------------------------------------------------------\r\n\
                   Administrator\r\nDer Befehl wurde erfolgreich ausgeführt.\r\n";
        assert_eq!(parse_members(out), vec!["Administrator"]);
        assert!(parse_members("System error 1376 has occurred.").is_empty());
    }
}
