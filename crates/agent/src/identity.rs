//! Device identity: the key that lets the server recognise a machine when it enrolls again
//! (no duplicate device) and lets the agent notice that its state directory now sits on a
//! different machine (a copied disk or directory) and refuse to impersonate the original.
//! Only hashes leave the node; see README.md for the exact derivation.

use std::path::Path;

use capstan_agent_platform::IdentityMaterial;
use capstan_proto::agent::DeviceIdentity;
use sha2::{Digest, Sha256};

use crate::FatalConfig;
use crate::state::{self, Credentials};

/// Domain separator of the hardware key; bump the version to re-key every device.
const HARDWARE_DOMAIN: &[u8] = b"capstan-identity-v1\0";
/// Domain separator of the instance key, so it can never equal a hardware key.
const INSTANCE_DOMAIN: &[u8] = b"capstan-identity-v1-instance\0";

/// Which material the identity key is derived from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum IdentitySource {
    /// machine-id and SMBIOS product UUID: stable across re-installs of the agent.
    #[default]
    Hardware,
    /// A random id stored in the state directory: one device per state directory.
    Instance,
}

impl IdentitySource {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentitySource::Hardware => "hardware",
            IdentitySource::Instance => "instance",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hardware" => Some(IdentitySource::Hardware),
            "instance" => Some(IdentitySource::Instance),
            _ => None,
        }
    }
}

fn clean(value: Option<&str>) -> &str {
    value.map(str::trim).unwrap_or("")
}

/// The hardware key, or `None` when the machine offers neither identifier.
pub fn hardware_key(material: &IdentityMaterial) -> Option<String> {
    // Case and surrounding whitespace vary between tools and firmware revisions for the same
    // UUID; they must not change the identity.
    let machine_id = clean(material.machine_id.as_deref()).to_ascii_lowercase();
    let uuid = clean(material.hardware_uuid.as_deref()).to_ascii_lowercase();
    if machine_id.is_empty() && uuid.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    h.update(HARDWARE_DOMAIN);
    h.update(machine_id.as_bytes());
    h.update(b"\0");
    h.update(uuid.as_bytes());
    Some(hex::encode(h.finalize()))
}

/// The key of an instance id.
pub fn instance_key(instance_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(INSTANCE_DOMAIN);
    h.update(instance_id.trim().to_ascii_lowercase().as_bytes());
    hex::encode(h.finalize())
}

/// The identity an enrollment presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollIdentity {
    pub identity: DeviceIdentity,
    /// `hardware` was asked for but the machine has no identifiers, so `instance` was used.
    pub fell_back_to_instance: bool,
}

/// Compute the identity for `enroll`, creating the instance id when it is needed.
pub fn for_enroll(
    requested: IdentitySource,
    material: &IdentityMaterial,
    state_dir: &Path,
) -> std::io::Result<EnrollIdentity> {
    if requested == IdentitySource::Hardware
        && let Some(key) = hardware_key(material)
    {
        return Ok(EnrollIdentity {
            identity: DeviceIdentity {
                identity_key: key,
                source: IdentitySource::Hardware.as_str().to_string(),
            },
            fell_back_to_instance: false,
        });
    }
    let id = state::instance_id_or_create(state_dir)?;
    Ok(EnrollIdentity {
        identity: DeviceIdentity {
            identity_key: instance_key(&id),
            source: IdentitySource::Instance.as_str().to_string(),
        },
        fell_back_to_instance: requested == IdentitySource::Hardware,
    })
}

fn short(key: &str) -> &str {
    key.get(..12).unwrap_or(key)
}

/// Check at start-up that this machine still computes the key the credentials were issued
/// for. A mismatch means the state directory was copied to another machine (or its material
/// changed): running would make two machines report as one device, so we refuse.
pub fn verify(
    creds: &Credentials,
    material: &IdentityMaterial,
    state_dir: &Path,
) -> Result<(), FatalConfig> {
    let source = IdentitySource::parse(&creds.identity_source).ok_or_else(|| {
        FatalConfig(format!(
            "credentials.json names an unknown identity source {:?}; re-enroll the agent",
            creds.identity_source
        ))
    })?;
    let current = match source {
        IdentitySource::Hardware => hardware_key(material),
        IdentitySource::Instance => state::read_instance_id(state_dir)
            .map_err(|e| FatalConfig(format!("cannot read the instance id: {e}")))?
            .map(|id| instance_key(&id)),
    };
    if current.as_deref() == Some(creds.identity_key.as_str()) {
        return Ok(());
    }
    let found = match &current {
        Some(key) => format!("this machine computes {}…", short(key)),
        None => match source {
            IdentitySource::Hardware => {
                "this machine offers no machine-id or SMBIOS UUID (reading the UUID needs root)"
                    .to_string()
            }
            IdentitySource::Instance => format!(
                "{} is missing from the state directory",
                state::INSTANCE_ID_FILE
            ),
        },
    };
    Err(FatalConfig(format!(
        "identity mismatch: {} was enrolled as device {} with {} identity {}…, but {found}. \
         The state directory was probably copied from another machine (or the agent now runs \
         as a user that cannot read the hardware identifiers). Refusing to run so this machine \
         does not impersonate device {}. Re-enroll it: capstan-agent enroll --server {} \
         --token TOKEN --state-dir {}",
        state_dir.display(),
        creds.device_id,
        source.as_str(),
        short(&creds.identity_key),
        creds.device_id,
        creds.server_url,
        state_dir.display(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material(machine_id: Option<&str>, uuid: Option<&str>) -> IdentityMaterial {
        IdentityMaterial {
            machine_id: machine_id.map(str::to_string),
            hardware_uuid: uuid.map(str::to_string),
        }
    }

    const MID: &str = "4b1f2c0e9d8a4f6b8e7d6c5b4a392817";
    const UUID_A: &str = "0E2A7B4C-1D3F-4E5A-9B8C-7D6E5F4A3B2C";
    const UUID_B: &str = "5F1C9A22-8B7E-4D0C-A1B2-C3D4E5F60718";

    fn creds(key: &str, source: &str) -> Credentials {
        Credentials {
            server_url: "https://capstan.example".into(),
            fingerprint: None,
            device_id: "dev-7".into(),
            device_token: "capd_dev-7_s".into(),
            identity_key: key.into(),
            identity_source: source.into(),
            signing_public_key: String::new(),
            enrolled_at_ms: 0,
        }
    }

    #[test]
    fn hardware_key_is_the_documented_hash() {
        let mut h = Sha256::new();
        h.update(format!(
            "capstan-identity-v1\0{MID}\0{}",
            UUID_A.to_ascii_lowercase()
        ));
        let expected = hex::encode(h.finalize());
        assert_eq!(
            hardware_key(&material(Some(MID), Some(UUID_A))).unwrap(),
            expected
        );
        // Formatting noise does not change the key.
        let noisy = material(Some(&format!("{MID}\n")), Some(&format!(" {UUID_A} ")));
        assert_eq!(hardware_key(&noisy).unwrap(), expected);
        assert_eq!(hardware_key(&material(Some(MID), None)).unwrap().len(), 64);
    }

    #[test]
    fn identical_machine_id_with_different_smbios_uuid_gives_distinct_devices() {
        // A cloned VM image keeps /etc/machine-id but the hypervisor gives it a new UUID.
        let a = hardware_key(&material(Some(MID), Some(UUID_A))).unwrap();
        let b = hardware_key(&material(Some(MID), Some(UUID_B))).unwrap();
        assert_ne!(a, b);
        // Which field a value came from matters: no ambiguity across the separator.
        let only_mid = hardware_key(&material(Some(MID), None)).unwrap();
        let only_uuid = hardware_key(&material(None, Some(MID))).unwrap();
        assert_ne!(only_mid, only_uuid);
    }

    #[test]
    fn re_enrolling_the_same_machine_presents_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let m = material(Some(MID), Some(UUID_A));
        let first = for_enroll(IdentitySource::Hardware, &m, dir.path()).unwrap();
        let again = for_enroll(IdentitySource::Hardware, &m, dir.path()).unwrap();
        assert_eq!(first, again);
        assert_eq!(first.identity.source, "hardware");
        assert!(!first.fell_back_to_instance);
        // The hardware identity needs no file in the state directory.
        assert_eq!(state::read_instance_id(dir.path()).unwrap(), None);
    }

    #[test]
    fn no_hardware_identifiers_fall_back_to_instance_and_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let got = for_enroll(
            IdentitySource::Hardware,
            &material(None, Some("  ")),
            dir.path(),
        )
        .unwrap();
        assert!(got.fell_back_to_instance);
        assert_eq!(got.identity.source, "instance");
        let id = state::read_instance_id(dir.path()).unwrap().unwrap();
        assert_eq!(got.identity.identity_key, instance_key(&id));
    }

    #[test]
    fn instance_identity_differs_per_state_dir_and_is_stable_within_one() {
        let m = material(Some(MID), Some(UUID_A));
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ka = for_enroll(IdentitySource::Instance, &m, a.path()).unwrap();
        let kb = for_enroll(IdentitySource::Instance, &m, b.path()).unwrap();
        assert_ne!(ka.identity.identity_key, kb.identity.identity_key);
        assert!(!ka.fell_back_to_instance);
        let again = for_enroll(IdentitySource::Instance, &m, a.path()).unwrap();
        assert_eq!(ka, again);
        assert_ne!(ka.identity.identity_key, hardware_key(&m).unwrap());
    }

    #[test]
    fn run_accepts_the_enrolled_machine() {
        let dir = tempfile::tempdir().unwrap();
        let m = material(Some(MID), Some(UUID_A));
        let hw = for_enroll(IdentitySource::Hardware, &m, dir.path()).unwrap();
        verify(
            &creds(&hw.identity.identity_key, "hardware"),
            &m,
            dir.path(),
        )
        .unwrap();
        let inst = for_enroll(IdentitySource::Instance, &m, dir.path()).unwrap();
        verify(
            &creds(&inst.identity.identity_key, "instance"),
            &m,
            dir.path(),
        )
        .unwrap();
    }

    #[test]
    fn run_refuses_a_state_dir_copied_to_another_machine() {
        let dir = tempfile::tempdir().unwrap();
        let original = material(Some(MID), Some(UUID_A));
        let key = hardware_key(&original).unwrap();
        let c = creds(&key, "hardware");
        for (other, needle) in [
            (material(Some(MID), Some(UUID_B)), "this machine computes"),
            (material(Some(MID), None), "this machine computes"),
            (material(None, None), "needs root"),
        ] {
            let err = verify(&c, &other, dir.path()).unwrap_err().0;
            assert!(err.contains("identity mismatch"), "{err}");
            assert!(err.contains(needle), "{err}");
            assert!(err.contains("dev-7"), "{err}");
            assert!(err.contains("capstan-agent enroll"), "{err}");
            assert!(!err.contains("capd_dev-7_s"), "token leaked: {err}");
        }
    }

    #[test]
    fn instance_credentials_without_their_instance_id_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = material(Some(MID), Some(UUID_A));
        let err = verify(
            &creds(&instance_key(&"a".repeat(32)), "instance"),
            &m,
            dir.path(),
        )
        .unwrap_err()
        .0;
        assert!(err.contains("instance-id is missing"), "{err}");
        let err = verify(&creds("x", "bios"), &m, dir.path()).unwrap_err().0;
        assert!(err.contains("unknown identity source"), "{err}");
    }
}
