//! The field catalogue: every path a field condition may name, with its type and meaning, and
//! how to read its values from a device. It is the single source for validation ("valid
//! fields: …"), type checking of operators, evaluation and the generated documentation.

use std::collections::BTreeMap;
use std::fmt;

use capstan_proto::inventory::{BootMode, MountUsage, VirtualizationKind};

use super::ast::Op;
use super::facts::{FactIndex, Val};
use super::validate::CustomFieldType;

/// The type of a field's values, which decides the operators it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    String,
    /// A string holding an IP address, possibly with a prefix length (`10.1.2.3/24`); accepts
    /// the string operators and `cidr`.
    Address,
    Number,
    Bool,
    /// A point in time (milliseconds since 1970 internally; dates in rules).
    Timestamp,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Address => "address",
            FieldType::Number => "number",
            FieldType::Bool => "boolean",
            FieldType::Timestamp => "timestamp",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Calls `f` with each value of a field until it returns true; returns whether it did.
pub(crate) type Visit = for<'f> fn(&FactIndex<'f>, &mut dyn FnMut(Val<'f>) -> bool) -> bool;

/// One entry of the catalogue.
#[derive(Debug)]
pub struct FieldSpec {
    /// The path written in rules; `[]` marks "any element of this list".
    pub path: &'static str,
    pub ty: FieldType,
    pub description: &'static str,
    /// For fields with a closed set of values, that set (checked at validation).
    pub values: &'static [&'static str],
    pub(crate) visit: Visit,
}

impl FieldSpec {
    /// Whether the field can hold several values per device (its path has `[]`).
    pub fn is_multi(&self) -> bool {
        self.path.contains("[]")
    }

    /// Whether the field is a list of plain values (`tags[]`), which may also be named without
    /// the trailing `[]` to test the list as a whole.
    pub fn is_scalar_list(&self) -> bool {
        self.path.ends_with("[]")
    }
}

/// Every field, in documentation order.
pub fn catalogue() -> &'static [FieldSpec] {
    FIELDS
}

/// The catalogue entry for `path` (exact, case-sensitive).
pub fn lookup_field(path: &str) -> Option<&'static FieldSpec> {
    FIELDS.iter().find(|f| f.path == path)
}

/// The catalogue as a Markdown table, for the user documentation.
pub fn catalogue_markdown() -> String {
    let mut out = String::from("| field | type | description |\n|---|---|---|\n");
    for f in FIELDS {
        let values = if f.values.is_empty() {
            String::new()
        } else {
            format!(" One of: {}.", f.values.join(", "))
        };
        out.push_str(&format!(
            "| `{}` | {} | {}{} |\n",
            f.path, f.ty, f.description, values
        ));
    }
    out.push_str(
        "| `custom.<name>` | from the field definition | A custom field defined by an \
         administrator; dates are timestamps, enums are strings. |\n",
    );
    out
}

/// A field as a rule may name it, with the operators it accepts: what a client that builds
/// rules (the console's rule builder) offers. [`rule_fields`] lists every name validation
/// accepts, so a builder never offers a field or operator the server would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleField {
    /// The name written in rules (`os.id`, `tags[]`, `tags`, `custom.owner`).
    pub name: String,
    pub ty: FieldType,
    /// The operators validation accepts on this name, in documentation order.
    pub operators: &'static [Op],
    pub description: String,
    /// For fields with a closed set of values (built-in or enum custom fields), that set.
    pub values: Vec<String>,
    /// A list named without `[]`: tested as a whole (`contains`, `exists`, `not_exists`).
    pub whole_list: bool,
    /// A custom field defined by an administrator.
    pub custom: bool,
}

/// Every field name a rule may use given the defined custom fields: each catalogue path, each
/// list of plain values also by its whole-list name (right after its `[]` form), then the
/// custom fields by name.
pub fn rule_fields(custom: &BTreeMap<String, CustomFieldType>) -> Vec<RuleField> {
    let mut out = Vec::with_capacity(FIELDS.len() + custom.len() + 8);
    for f in FIELDS {
        let values: Vec<String> = f.values.iter().map(|v| v.to_string()).collect();
        out.push(RuleField {
            name: f.path.to_string(),
            ty: f.ty,
            operators: Op::valid_for(f.ty, false),
            description: f.description.to_string(),
            values: values.clone(),
            whole_list: false,
            custom: false,
        });
        if let Some(list) = f.path.strip_suffix("[]").filter(|_| f.is_scalar_list()) {
            out.push(RuleField {
                name: list.to_string(),
                ty: f.ty,
                operators: Op::valid_for(f.ty, true),
                description: format!(
                    "The list as a whole ({}): `contains` one value, or `exists` when non-empty.",
                    f.path
                ),
                values,
                whole_list: true,
                custom: false,
            });
        }
    }
    for (name, def) in custom {
        let (ty, values) = def.rule_type();
        let kind = match def {
            CustomFieldType::String => "text",
            CustomFieldType::Number => "number",
            CustomFieldType::Bool => "yes/no",
            CustomFieldType::Date => "date",
            CustomFieldType::Enum(_) => "choice",
        };
        out.push(RuleField {
            name: format!("custom.{name}"),
            ty,
            operators: Op::valid_for(ty, false),
            description: format!("Custom field {name} ({kind})."),
            values: values.to_vec(),
            whole_list: false,
            custom: true,
        });
    }
    out
}

type Emit<'e, 'f> = &'e mut dyn FnMut(Val<'f>) -> bool;

fn one<'f>(v: Option<Val<'f>>, f: Emit<'_, 'f>) -> bool {
    v.is_some_and(f)
}

fn each<'f>(values: impl IntoIterator<Item = Val<'f>>, f: Emit<'_, 'f>) -> bool {
    values.into_iter().any(f)
}

fn s(v: Option<&String>) -> Option<Val<'_>> {
    v.map(|v| Val::Str(v))
}

fn n(v: Option<impl Into<f64>>) -> Option<Val<'static>> {
    v.map(|v| Val::Num(v.into()))
}

/// Byte counts are u64; f64 is exact up to 2^53 bytes (8 PiB), far above any real disk.
fn bytes(v: Option<u64>) -> Option<Val<'static>> {
    v.map(|v| Val::Num(v as f64))
}

fn b(v: Option<bool>) -> Option<Val<'static>> {
    v.map(Val::Bool)
}

fn used_percent(m: &MountUsage) -> Option<f64> {
    (m.total_bytes > 0)
        .then(|| m.used_bytes.min(m.total_bytes) as f64 * 100.0 / m.total_bytes as f64)
}

fn memory_used_percent(x: &FactIndex<'_>) -> Option<f64> {
    let p = x.performance()?;
    let (total, used) = (p.memory_total_bytes?, p.memory_used_bytes?);
    (total > 0).then(|| used.min(total) as f64 * 100.0 / total as f64)
}

static FIELDS: &[FieldSpec] = &[
    FieldSpec {
        path: "os.family",
        ty: FieldType::String,
        description: "Operating system family: `linux` or `windows`.",
        values: &[],
        visit: |x, f| one(x.os().map(|o| Val::Str(&o.family)), f),
    },
    FieldSpec {
        path: "os.name",
        ty: FieldType::String,
        description: "Distribution or product name, e.g. `Debian GNU/Linux`.",
        values: &[],
        visit: |x, f| one(s(x.os().and_then(|o| o.name.as_ref())), f),
    },
    FieldSpec {
        path: "os.id",
        ty: FieldType::String,
        description: "os-release `ID`, e.g. `debian`, `ubuntu`, `rhel`.",
        values: &[],
        visit: |x, f| one(s(x.os().and_then(|o| o.id.as_ref())), f),
    },
    FieldSpec {
        path: "os.id_like[]",
        ty: FieldType::String,
        description: "os-release `ID_LIKE` entries, e.g. `debian` on Ubuntu.",
        values: &[],
        visit: |x, f| {
            each(
                x.os()
                    .into_iter()
                    .flat_map(|o| o.id_like.iter().map(|v| Val::Str(v))),
                f,
            )
        },
    },
    FieldSpec {
        path: "os.version",
        ty: FieldType::String,
        description: "Version as the OS describes it, e.g. `12 (bookworm)`.",
        values: &[],
        visit: |x, f| one(s(x.os().and_then(|o| o.version.as_ref())), f),
    },
    FieldSpec {
        path: "os.version_id",
        ty: FieldType::String,
        description: "Machine-readable version, e.g. `12`, `22.04`, `10.0.22631`.",
        values: &[],
        visit: |x, f| one(s(x.os().and_then(|o| o.version_id.as_ref())), f),
    },
    FieldSpec {
        path: "os.codename",
        ty: FieldType::String,
        description: "Release codename, e.g. `bookworm`.",
        values: &[],
        visit: |x, f| one(s(x.os().and_then(|o| o.codename.as_ref())), f),
    },
    FieldSpec {
        path: "os.build",
        ty: FieldType::String,
        description: "Build number (Windows), e.g. `22631.2861`.",
        values: &[],
        visit: |x, f| one(s(x.os().and_then(|o| o.build.as_ref())), f),
    },
    FieldSpec {
        path: "os.kernel",
        ty: FieldType::String,
        description: "Kernel release, e.g. `6.1.0-18-amd64`.",
        values: &[],
        visit: |x, f| one(s(x.os().and_then(|o| o.kernel.as_ref())), f),
    },
    FieldSpec {
        path: "os.architecture",
        ty: FieldType::String,
        description: "OS architecture, e.g. `x86_64`, `aarch64`.",
        values: &[],
        visit: |x, f| one(s(x.os().and_then(|o| o.architecture.as_ref())), f),
    },
    FieldSpec {
        path: "os.hostname",
        ty: FieldType::String,
        description: "Host name.",
        values: &[],
        visit: |x, f| one(x.os().map(|o| Val::Str(&o.hostname)), f),
    },
    FieldSpec {
        path: "os.fqdn",
        ty: FieldType::String,
        description: "Fully qualified domain name.",
        values: &[],
        visit: |x, f| one(s(x.os().and_then(|o| o.fqdn.as_ref())), f),
    },
    FieldSpec {
        path: "os.timezone",
        ty: FieldType::String,
        description: "Time zone, e.g. `Europe/Berlin`.",
        values: &[],
        visit: |x, f| one(s(x.os().and_then(|o| o.timezone.as_ref())), f),
    },
    FieldSpec {
        path: "os.boot_time",
        ty: FieldType::Timestamp,
        description: "When the device last booted.",
        values: &[],
        visit: |x, f| {
            one(
                x.os()
                    .and_then(|o| o.boot_time)
                    .map(|s| Val::Time(s.saturating_mul(1000))),
                f,
            )
        },
    },
    FieldSpec {
        path: "os.domain.kind",
        ty: FieldType::String,
        description: "Domain membership: `active_directory`, `kerberos`, `workgroup` or `none`.",
        values: &[],
        visit: |x, f| {
            one(
                x.os()
                    .and_then(|o| o.domain.as_ref())
                    .map(|d| Val::Str(&d.kind)),
                f,
            )
        },
    },
    FieldSpec {
        path: "os.domain.name",
        ty: FieldType::String,
        description: "Domain (realm) or workgroup name.",
        values: &[],
        visit: |x, f| {
            one(
                s(x.os()
                    .and_then(|o| o.domain.as_ref())
                    .and_then(|d| d.name.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "os.domain.ou",
        ty: FieldType::String,
        description: "Organisational unit (Windows).",
        values: &[],
        visit: |x, f| {
            one(
                s(x.os()
                    .and_then(|o| o.domain.as_ref())
                    .and_then(|d| d.ou.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.memory_bytes",
        ty: FieldType::Number,
        description: "Physical memory in bytes.",
        values: &[],
        visit: |x, f| one(bytes(x.hardware().and_then(|h| h.memory_bytes)), f),
    },
    FieldSpec {
        path: "hardware.cpu.model",
        ty: FieldType::String,
        description: "CPU model name.",
        values: &[],
        visit: |x, f| {
            one(
                s(x.hardware()
                    .and_then(|h| h.cpu.as_ref())
                    .and_then(|c| c.model.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.cpu.vendor",
        ty: FieldType::String,
        description: "CPU vendor, e.g. `GenuineIntel`, `AuthenticAMD`.",
        values: &[],
        visit: |x, f| {
            one(
                s(x.hardware()
                    .and_then(|h| h.cpu.as_ref())
                    .and_then(|c| c.vendor.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.cpu.architecture",
        ty: FieldType::String,
        description: "CPU architecture.",
        values: &[],
        visit: |x, f| {
            one(
                s(x.hardware()
                    .and_then(|h| h.cpu.as_ref())
                    .and_then(|c| c.architecture.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.cpu.sockets",
        ty: FieldType::Number,
        description: "Physical CPU sockets.",
        values: &[],
        visit: |x, f| {
            one(
                n(x.hardware()
                    .and_then(|h| h.cpu.as_ref())
                    .and_then(|c| c.sockets)),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.cpu.cores",
        ty: FieldType::Number,
        description: "Physical cores in total.",
        values: &[],
        visit: |x, f| {
            one(
                n(x.hardware()
                    .and_then(|h| h.cpu.as_ref())
                    .and_then(|c| c.cores)),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.cpu.threads",
        ty: FieldType::Number,
        description: "Logical processors in total.",
        values: &[],
        visit: |x, f| {
            one(
                n(x.hardware()
                    .and_then(|h| h.cpu.as_ref())
                    .and_then(|c| c.threads)),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.system.manufacturer",
        ty: FieldType::String,
        description: "System manufacturer, e.g. `Dell Inc.`, `QEMU`.",
        values: &[],
        visit: |x, f| {
            one(
                s(x.hardware()
                    .and_then(|h| h.system.as_ref())
                    .and_then(|c| c.manufacturer.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.system.product",
        ty: FieldType::String,
        description: "System model, e.g. `Latitude 7440`.",
        values: &[],
        visit: |x, f| {
            one(
                s(x.hardware()
                    .and_then(|h| h.system.as_ref())
                    .and_then(|c| c.product.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.system.chassis",
        ty: FieldType::String,
        description: "Chassis type in words: `desktop`, `laptop`, `server`, `virtual machine`, …",
        values: &[],
        visit: |x, f| {
            one(
                s(x.hardware()
                    .and_then(|h| h.system.as_ref())
                    .and_then(|c| c.chassis.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.system.serial_number",
        ty: FieldType::String,
        description: "System serial number.",
        values: &[],
        visit: |x, f| {
            one(
                s(x.hardware()
                    .and_then(|h| h.system.as_ref())
                    .and_then(|c| c.serial_number.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.system.uuid",
        ty: FieldType::String,
        description: "SMBIOS system UUID.",
        values: &[],
        visit: |x, f| {
            one(
                s(x.hardware()
                    .and_then(|h| h.system.as_ref())
                    .and_then(|c| c.uuid.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.firmware.boot_mode",
        ty: FieldType::String,
        description: "How the firmware booted the OS.",
        values: &["uefi", "legacy"],
        visit: |x, f| {
            one(
                x.hardware()
                    .and_then(|h| h.firmware.as_ref())
                    .and_then(|fw| fw.boot_mode)
                    .map(|m| {
                        Val::Str(match m {
                            BootMode::Uefi => "uefi",
                            BootMode::Legacy => "legacy",
                        })
                    }),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.firmware.secure_boot",
        ty: FieldType::Bool,
        description: "Whether Secure Boot is enabled (absent when it cannot be read).",
        values: &[],
        visit: |x, f| {
            one(
                b(x.hardware()
                    .and_then(|h| h.firmware.as_ref())
                    .and_then(|fw| fw.secure_boot)),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.firmware.vendor",
        ty: FieldType::String,
        description: "Firmware (BIOS/UEFI) vendor.",
        values: &[],
        visit: |x, f| {
            one(
                s(x.hardware()
                    .and_then(|h| h.firmware.as_ref())
                    .and_then(|fw| fw.vendor.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.firmware.version",
        ty: FieldType::String,
        description: "Firmware version.",
        values: &[],
        visit: |x, f| {
            one(
                s(x.hardware()
                    .and_then(|h| h.firmware.as_ref())
                    .and_then(|fw| fw.version.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.firmware.date",
        ty: FieldType::String,
        description: "Firmware release date as reported (YYYY-MM-DD when parseable).",
        values: &[],
        visit: |x, f| {
            one(
                s(x.hardware()
                    .and_then(|h| h.firmware.as_ref())
                    .and_then(|fw| fw.date.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.disks[].name",
        ty: FieldType::String,
        description: "Disk kernel name, e.g. `sda`, `nvme0n1`.",
        values: &[],
        visit: |x, f| {
            each(
                x.hardware()
                    .into_iter()
                    .flat_map(|h| h.disks.iter().map(|d| Val::Str(&d.name))),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.disks[].model",
        ty: FieldType::String,
        description: "Disk model.",
        values: &[],
        visit: |x, f| {
            each(
                x.hardware()
                    .into_iter()
                    .flat_map(|h| h.disks.iter().filter_map(|d| s(d.model.as_ref()))),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.disks[].size_bytes",
        ty: FieldType::Number,
        description: "Disk size in bytes.",
        values: &[],
        visit: |x, f| {
            each(
                x.hardware()
                    .into_iter()
                    .flat_map(|h| h.disks.iter().filter_map(|d| bytes(d.size_bytes))),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.disks[].rotational",
        ty: FieldType::Bool,
        description: "`true` for spinning disks, `false` for SSD/NVMe.",
        values: &[],
        visit: |x, f| {
            each(
                x.hardware()
                    .into_iter()
                    .flat_map(|h| h.disks.iter().filter_map(|d| b(d.rotational))),
                f,
            )
        },
    },
    FieldSpec {
        path: "hardware.disks[].transport",
        ty: FieldType::String,
        description: "Disk transport: `nvme`, `sata`, `usb`, `virtio`, `scsi`.",
        values: &[],
        visit: |x, f| {
            each(
                x.hardware()
                    .into_iter()
                    .flat_map(|h| h.disks.iter().filter_map(|d| s(d.transport.as_ref()))),
                f,
            )
        },
    },
    FieldSpec {
        path: "virtualization.kind",
        ty: FieldType::String,
        description: "Whether the device is physical, a virtual machine or a container.",
        values: &["physical", "virtual_machine", "container"],
        visit: |x, f| {
            one(
                x.inventory()
                    .and_then(|i| i.virtualization.as_ref())
                    .map(|v| {
                        Val::Str(match v.kind {
                            VirtualizationKind::Physical => "physical",
                            VirtualizationKind::VirtualMachine => "virtual_machine",
                            VirtualizationKind::Container => "container",
                        })
                    }),
                f,
            )
        },
    },
    FieldSpec {
        path: "virtualization.technology",
        ty: FieldType::String,
        description: "Hypervisor or container engine: `kvm`, `vmware`, `hyperv`, `docker`, …",
        values: &[],
        visit: |x, f| {
            one(
                s(x.inventory()
                    .and_then(|i| i.virtualization.as_ref())
                    .and_then(|v| v.technology.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "network.interfaces[].name",
        ty: FieldType::String,
        description: "Interface name, e.g. `eth0`.",
        values: &[],
        visit: |x, f| {
            each(
                x.network()
                    .into_iter()
                    .flat_map(|n| n.interfaces.iter().map(|i| Val::Str(&i.name))),
                f,
            )
        },
    },
    FieldSpec {
        path: "network.interfaces[].mac",
        ty: FieldType::String,
        description: "MAC address, e.g. `52:54:00:12:34:56`.",
        values: &[],
        visit: |x, f| {
            each(
                x.network()
                    .into_iter()
                    .flat_map(|n| n.interfaces.iter().filter_map(|i| s(i.mac.as_ref()))),
                f,
            )
        },
    },
    FieldSpec {
        path: "network.interfaces[].ipv4",
        ty: FieldType::Address,
        description: "IPv4 addresses of any interface, with prefix (`10.1.2.3/24`).",
        values: &[],
        visit: |x, f| {
            each(
                x.network().into_iter().flat_map(|n| {
                    n.interfaces
                        .iter()
                        .flat_map(|i| i.ipv4.iter().map(|a| Val::Str(a)))
                }),
                f,
            )
        },
    },
    FieldSpec {
        path: "network.interfaces[].ipv6",
        ty: FieldType::Address,
        description: "IPv6 addresses of any interface, with prefix (`2001:db8::5/64`).",
        values: &[],
        visit: |x, f| {
            each(
                x.network().into_iter().flat_map(|n| {
                    n.interfaces
                        .iter()
                        .flat_map(|i| i.ipv6.iter().map(|a| Val::Str(a)))
                }),
                f,
            )
        },
    },
    FieldSpec {
        path: "network.interfaces[].up",
        ty: FieldType::Bool,
        description: "Whether the interface is up.",
        values: &[],
        visit: |x, f| {
            each(
                x.network()
                    .into_iter()
                    .flat_map(|n| n.interfaces.iter().filter_map(|i| b(i.up))),
                f,
            )
        },
    },
    FieldSpec {
        path: "network.default_gateway_v4",
        ty: FieldType::Address,
        description: "IPv4 default gateway.",
        values: &[],
        visit: |x, f| {
            one(
                s(x.network().and_then(|n| n.default_gateway_v4.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "network.default_gateway_v6",
        ty: FieldType::Address,
        description: "IPv6 default gateway.",
        values: &[],
        visit: |x, f| {
            one(
                s(x.network().and_then(|n| n.default_gateway_v6.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "network.dns_servers[]",
        ty: FieldType::Address,
        description: "Configured DNS servers.",
        values: &[],
        visit: |x, f| {
            each(
                x.network()
                    .into_iter()
                    .flat_map(|n| n.dns_servers.iter().map(|v| Val::Str(v))),
                f,
            )
        },
    },
    FieldSpec {
        path: "network.dns_search[]",
        ty: FieldType::String,
        description: "DNS search domains.",
        values: &[],
        visit: |x, f| {
            each(
                x.network()
                    .into_iter()
                    .flat_map(|n| n.dns_search.iter().map(|v| Val::Str(v))),
                f,
            )
        },
    },
    FieldSpec {
        path: "security.pending_reboot",
        ty: FieldType::Bool,
        description: "Whether the OS waits for a reboot (updates installed).",
        values: &[],
        visit: |x, f| one(b(x.security().and_then(|s| s.pending_reboot)), f),
    },
    FieldSpec {
        path: "security.ssh.installed",
        ty: FieldType::Bool,
        description: "Whether an SSH server is installed.",
        values: &[],
        visit: |x, f| {
            one(
                x.security()
                    .and_then(|s| s.ssh.as_ref())
                    .map(|s| Val::Bool(s.installed)),
                f,
            )
        },
    },
    FieldSpec {
        path: "security.ssh.enabled",
        ty: FieldType::Bool,
        description: "Whether the SSH server starts at boot.",
        values: &[],
        visit: |x, f| {
            one(
                b(x.security()
                    .and_then(|s| s.ssh.as_ref())
                    .and_then(|s| s.enabled)),
                f,
            )
        },
    },
    FieldSpec {
        path: "security.ssh.running",
        ty: FieldType::Bool,
        description: "Whether the SSH server is running.",
        values: &[],
        visit: |x, f| {
            one(
                b(x.security()
                    .and_then(|s| s.ssh.as_ref())
                    .and_then(|s| s.running)),
                f,
            )
        },
    },
    FieldSpec {
        path: "security.ssh.permit_root_login",
        ty: FieldType::String,
        description: "Effective `PermitRootLogin`: `yes`, `no`, `prohibit-password`, …",
        values: &[],
        visit: |x, f| {
            one(
                s(x.security()
                    .and_then(|s| s.ssh.as_ref())
                    .and_then(|s| s.permit_root_login.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "security.ssh.password_authentication",
        ty: FieldType::Bool,
        description: "Effective `PasswordAuthentication`.",
        values: &[],
        visit: |x, f| {
            one(
                b(x.security()
                    .and_then(|s| s.ssh.as_ref())
                    .and_then(|s| s.password_authentication)),
                f,
            )
        },
    },
    FieldSpec {
        path: "security.remote_desktop.running",
        ty: FieldType::Bool,
        description: "Whether a remote desktop server (xrdp, RDP) is running.",
        values: &[],
        visit: |x, f| {
            one(
                b(x.security()
                    .and_then(|s| s.remote_desktop.as_ref())
                    .and_then(|r| r.running)),
                f,
            )
        },
    },
    FieldSpec {
        path: "security.firewall.enabled",
        ty: FieldType::Bool,
        description: "Whether a host firewall is active.",
        values: &[],
        visit: |x, f| {
            one(
                x.security()
                    .and_then(|s| s.firewall.as_ref())
                    .map(|fw| Val::Bool(fw.enabled)),
                f,
            )
        },
    },
    FieldSpec {
        path: "security.firewall.backend",
        ty: FieldType::String,
        description: "Active firewall front-end: `nftables`, `iptables`, `ufw`, `firewalld`, `windows`.",
        values: &[],
        visit: |x, f| {
            one(
                s(x.security()
                    .and_then(|s| s.firewall.as_ref())
                    .and_then(|fw| fw.backend.as_ref())),
                f,
            )
        },
    },
    FieldSpec {
        path: "security.local_admins[].name",
        ty: FieldType::String,
        description: "Accounts with administrative rights.",
        values: &[],
        visit: |x, f| {
            each(
                x.security()
                    .into_iter()
                    .flat_map(|s| s.local_admins.iter().map(|a| Val::Str(&a.name))),
                f,
            )
        },
    },
    FieldSpec {
        path: "security.encrypted_volumes[].device",
        ty: FieldType::String,
        description: "Encrypted block devices, e.g. `nvme0n1p3`.",
        values: &[],
        visit: |x, f| {
            each(
                x.security()
                    .into_iter()
                    .flat_map(|s| s.encrypted_volumes.iter().map(|v| Val::Str(&v.device))),
                f,
            )
        },
    },
    FieldSpec {
        path: "security.encrypted_volumes[].kind",
        ty: FieldType::String,
        description: "Encryption of each volume: `luks`, `luks2`, `bitlocker`.",
        values: &[],
        visit: |x, f| {
            each(
                x.security()
                    .into_iter()
                    .flat_map(|s| s.encrypted_volumes.iter().map(|v| Val::Str(&v.kind))),
                f,
            )
        },
    },
    FieldSpec {
        path: "performance.mounts[].mount_point",
        ty: FieldType::String,
        description: "Mounted file systems, e.g. `/`, `C:\\`.",
        values: &[],
        visit: |x, f| {
            each(
                x.performance()
                    .into_iter()
                    .flat_map(|p| p.mounts.iter().map(|m| Val::Str(&m.mount_point))),
                f,
            )
        },
    },
    FieldSpec {
        path: "performance.mounts[].used_percent",
        ty: FieldType::Number,
        description: "Used space of a mount in percent (derived; absent when its size is 0).",
        values: &[],
        visit: |x, f| {
            each(
                x.performance()
                    .into_iter()
                    .flat_map(|p| p.mounts.iter().filter_map(|m| n(used_percent(m)))),
                f,
            )
        },
    },
    FieldSpec {
        path: "performance.mounts[].free_percent",
        ty: FieldType::Number,
        description: "Free space of a mount in percent (derived; absent when its size is 0).",
        values: &[],
        visit: |x, f| {
            each(
                x.performance().into_iter().flat_map(|p| {
                    p.mounts
                        .iter()
                        .filter_map(|m| n(used_percent(m).map(|u| 100.0 - u)))
                }),
                f,
            )
        },
    },
    FieldSpec {
        path: "performance.mounts[].free_bytes",
        ty: FieldType::Number,
        description: "Free space of a mount in bytes (derived).",
        values: &[],
        visit: |x, f| {
            each(
                x.performance().into_iter().flat_map(|p| {
                    p.mounts
                        .iter()
                        .filter_map(|m| bytes(Some(m.total_bytes.saturating_sub(m.used_bytes))))
                }),
                f,
            )
        },
    },
    FieldSpec {
        path: "performance.mounts[].total_bytes",
        ty: FieldType::Number,
        description: "Size of a mount in bytes.",
        values: &[],
        visit: |x, f| {
            each(
                x.performance()
                    .into_iter()
                    .flat_map(|p| p.mounts.iter().filter_map(|m| bytes(Some(m.total_bytes)))),
                f,
            )
        },
    },
    FieldSpec {
        path: "performance.memory_used_percent",
        ty: FieldType::Number,
        description: "Memory in use in percent (derived from the last check-in).",
        values: &[],
        visit: |x, f| one(n(memory_used_percent(x)), f),
    },
    FieldSpec {
        path: "performance.load_1",
        ty: FieldType::Number,
        description: "1-minute load average.",
        values: &[],
        visit: |x, f| one(n(x.performance().and_then(|p| p.load_1)), f),
    },
    FieldSpec {
        path: "performance.load_5",
        ty: FieldType::Number,
        description: "5-minute load average.",
        values: &[],
        visit: |x, f| one(n(x.performance().and_then(|p| p.load_5)), f),
    },
    FieldSpec {
        path: "performance.load_15",
        ty: FieldType::Number,
        description: "15-minute load average.",
        values: &[],
        visit: |x, f| one(n(x.performance().and_then(|p| p.load_15)), f),
    },
    FieldSpec {
        path: "performance.cpu_percent",
        ty: FieldType::Number,
        description: "CPU busy percentage over the last sampling interval.",
        values: &[],
        visit: |x, f| one(n(x.performance().and_then(|p| p.cpu_percent)), f),
    },
    FieldSpec {
        path: "performance.uptime_seconds",
        ty: FieldType::Number,
        description: "Seconds since boot.",
        values: &[],
        visit: |x, f| one(bytes(x.performance().and_then(|p| p.uptime_seconds)), f),
    },
    FieldSpec {
        path: "status.online",
        ty: FieldType::Bool,
        description: "Whether the agent is connected now.",
        values: &[],
        visit: |x, f| one(Some(Val::Bool(x.facts.status.online)), f),
    },
    FieldSpec {
        path: "status.last_seen",
        ty: FieldType::Timestamp,
        description: "Last check-in (absent when the device never checked in).",
        values: &[],
        visit: |x, f| one(x.facts.status.last_seen_ms.map(Val::Time), f),
    },
    FieldSpec {
        path: "status.enrolled_at",
        ty: FieldType::Timestamp,
        description: "When the device enrolled.",
        values: &[],
        visit: |x, f| one(Some(Val::Time(x.facts.status.enrolled_at_ms)), f),
    },
    FieldSpec {
        path: "tags[]",
        ty: FieldType::String,
        description: "Tags of the device (the `tag` condition is the short form).",
        values: &[],
        visit: |x, f| each(x.facts.tags.iter().map(|t| Val::Str(t)), f),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for f in FIELDS {
            assert!(seen.insert(f.path), "duplicate {}", f.path);
            assert!(!f.path.starts_with("custom."), "{}", f.path);
            assert!(
                f.description.ends_with('.') || f.description.ends_with('…'),
                "{}",
                f.path
            );
            assert!(
                f.path
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._[]".contains(&c)),
                "{}",
                f.path
            );
        }
    }

    #[test]
    fn markdown_lists_every_field() {
        let md = catalogue_markdown();
        for f in FIELDS {
            assert!(md.contains(&format!("`{}`", f.path)), "{}", f.path);
        }
        assert!(md.contains("One of: physical, virtual_machine, container."));
    }
}
