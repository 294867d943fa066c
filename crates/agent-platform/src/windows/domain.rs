//! Domain membership of a Windows node from what Windows reports: `Win32_ComputerSystem`
//! (PartOfDomain, Domain, Workgroup, as PowerShell's `ConvertTo-Json` prints it) and the
//! computer's distinguished name that Group Policy records
//! (`HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Group Policy\State\Machine`,
//! value `Distinguished-Name`), whose parent container is the OU.

use capstan_proto::inventory::DomainMembership;
use serde::Deserialize;

/// The fields of `Win32_ComputerSystem` we use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ComputerSystem {
    pub part_of_domain: Option<bool>,
    pub domain: Option<String>,
    pub workgroup: Option<String>,
}

/// Parses `Get-CimInstance Win32_ComputerSystem | Select-Object PartOfDomain,Domain,Workgroup
/// | ConvertTo-Json`.
pub(crate) fn parse_computer_system(json: &str) -> Option<ComputerSystem> {
    // PowerShell may prefix a UTF-8 BOM.
    serde_json::from_str(json.trim_start_matches('\u{feff}').trim()).ok()
}

pub(crate) fn membership(cs: &ComputerSystem, computer_dn: Option<&str>) -> DomainMembership {
    let non_empty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    if cs.part_of_domain == Some(true) {
        DomainMembership {
            kind: "active_directory".into(),
            name: non_empty(&cs.domain),
            source: Some("wmi".into()),
            ou: computer_dn.and_then(ou_from_dn),
        }
    } else {
        // Off a domain, Win32_ComputerSystem.Domain holds the workgroup name too.
        let name = non_empty(&cs.workgroup).or_else(|| non_empty(&cs.domain));
        DomainMembership {
            kind: if name.is_some() { "workgroup" } else { "none" }.into(),
            name,
            source: Some("wmi".into()),
            ou: None,
        }
    }
}

/// The container of an object: its DN without the first RDN (`CN=PC01,OU=Sales,DC=corp,DC=com`
/// → `OU=Sales,DC=corp,DC=com`). Escaped commas (`CN=Doe\, Jane`) do not split.
pub(crate) fn ou_from_dn(dn: &str) -> Option<String> {
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => {
                let parent = dn[i + 1..].trim();
                return (!parent.is_empty()).then(|| parent.to_string());
            }
            _ => escaped = false,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_computer_with_ou() {
        let cs = parse_computer_system("\u{feff}{\r\n  \"PartOfDomain\": true,\r\n  \"Domain\": \"corp.example.com\",\r\n  \"Workgroup\": null\r\n}").unwrap();
        let d = membership(
            &cs,
            Some("CN=PC01,OU=Workstations,OU=Berlin,DC=corp,DC=example,DC=com"),
        );
        assert_eq!(d.kind, "active_directory");
        assert_eq!(d.name.as_deref(), Some("corp.example.com"));
        assert_eq!(
            d.ou.as_deref(),
            Some("OU=Workstations,OU=Berlin,DC=corp,DC=example,DC=com")
        );
    }

    #[test]
    fn workgroup_computer() {
        let cs = parse_computer_system(
            r#"{"PartOfDomain": false, "Domain": "WORKGROUP", "Workgroup": "WORKGROUP"}"#,
        )
        .unwrap();
        let d = membership(&cs, None);
        assert_eq!(
            (d.kind.as_str(), d.name.as_deref(), d.ou),
            ("workgroup", Some("WORKGROUP"), None)
        );
        assert_eq!(membership(&ComputerSystem::default(), None).kind, "none");
        assert_eq!(parse_computer_system("not json"), None);
    }

    #[test]
    fn escaped_commas_in_dn() {
        assert_eq!(
            ou_from_dn(r"CN=Doe\, Jane,OU=Users,DC=x").as_deref(),
            Some("OU=Users,DC=x")
        );
        assert_eq!(ou_from_dn("CN=lonely"), None);
    }
}
