//! Virtualization detection (E1-02), driven by one ordered table of rules. Each rule names
//! the evidence it needs (a marker file, a DMI string, pid 1's environment, a CPU flag, the
//! answer of `systemd-detect-virt`) and what it means. The first matching rule decides, and
//! container rules come first, so a container on a VM is reported as a container (the
//! question an administrator asks is "what am I running in"). Every matching rule is kept as
//! evidence so the decision can be explained.

use std::collections::BTreeSet;

use capstan_proto::inventory::{Virtualization, VirtualizationKind};

use crate::root::Root;

/// One piece of evidence a rule looks at.
#[derive(Debug, Clone, Copy)]
enum Evidence {
    /// The file exists.
    Exists(&'static str),
    /// The file's content contains the text (ASCII case-insensitive).
    Contains(&'static str, &'static str),
    /// Pid 1's environment has `container=<value>`.
    Pid1Container(&'static str),
    /// /proc/cpuinfo lists the flag.
    CpuFlag(&'static str),
    /// `systemd-detect-virt` printed exactly this.
    DetectVirt(&'static str),
}

struct Rule {
    /// All of these must hold.
    all: &'static [Evidence],
    /// None of these may hold.
    unless: &'static [Evidence],
    kind: VirtualizationKind,
    technology: Option<&'static str>,
}

use Evidence::*;
use VirtualizationKind::{Container, VirtualMachine};

const fn rule(
    all: &'static [Evidence],
    kind: VirtualizationKind,
    technology: &'static str,
) -> Rule {
    Rule {
        all,
        unless: &[],
        kind,
        technology: Some(technology),
    }
}

const DMI_SYS_VENDOR: &str = "/sys/class/dmi/id/sys_vendor";
const DMI_PRODUCT: &str = "/sys/class/dmi/id/product_name";
const DMI_BIOS_VENDOR: &str = "/sys/class/dmi/id/bios_vendor";
const DMI_BIOS_VERSION: &str = "/sys/class/dmi/id/bios_version";
const DMI_BOARD_VENDOR: &str = "/sys/class/dmi/id/board_vendor";
const DMI_ASSET_TAG: &str = "/sys/class/dmi/id/chassis_asset_tag";
const CLOCKSOURCES: &str = "/sys/devices/system/clocksource/clocksource0/available_clocksource";

/// The detection table, in priority order.
static RULES: &[Rule] = &[
    // Containers: marker files written by the engines.
    rule(&[Exists("/.dockerenv")], Container, "docker"),
    rule(&[Exists("/run/.containerenv")], Container, "podman"),
    // Pid 1's environment (root only) and its world-readable copy by systemd.
    rule(&[Pid1Container("docker")], Container, "docker"),
    rule(&[Pid1Container("podman")], Container, "podman"),
    rule(&[Pid1Container("lxc")], Container, "lxc"),
    rule(&[Pid1Container("lxc-libvirt")], Container, "lxc"),
    rule(
        &[Pid1Container("systemd-nspawn")],
        Container,
        "systemd-nspawn",
    ),
    rule(
        &[Contains("/run/systemd/container", "systemd-nspawn")],
        Container,
        "systemd-nspawn",
    ),
    rule(
        &[Contains("/run/systemd/container", "lxc")],
        Container,
        "lxc",
    ),
    rule(
        &[Contains("/run/systemd/container", "docker")],
        Container,
        "docker",
    ),
    rule(
        &[Contains("/run/systemd/container", "podman")],
        Container,
        "podman",
    ),
    // Cgroup paths of pid 1 (cgroup v1, or v2 without a cgroup namespace).
    rule(
        &[Contains("/proc/1/cgroup", "/docker")],
        Container,
        "docker",
    ),
    rule(&[Contains("/proc/1/cgroup", "libpod")], Container, "podman"),
    rule(
        &[Contains("/proc/1/cgroup", "/kubepods")],
        Container,
        "kubernetes",
    ),
    rule(&[Contains("/proc/1/cgroup", "/lxc")], Container, "lxc"),
    rule(
        &[Contains("/proc/sys/kernel/osrelease", "microsoft")],
        Container,
        "wsl",
    ),
    Rule {
        all: &[Exists("/proc/vz")],
        unless: &[Exists("/proc/bc")],
        kind: Container,
        technology: Some("openvz"),
    },
    rule(&[DetectVirt("docker")], Container, "docker"),
    rule(&[DetectVirt("podman")], Container, "podman"),
    rule(&[DetectVirt("lxc")], Container, "lxc"),
    rule(&[DetectVirt("lxc-libvirt")], Container, "lxc"),
    rule(&[DetectVirt("systemd-nspawn")], Container, "systemd-nspawn"),
    rule(&[DetectVirt("openvz")], Container, "openvz"),
    rule(&[DetectVirt("wsl")], Container, "wsl"),
    rule(&[DetectVirt("rkt")], Container, "rkt"),
    rule(&[DetectVirt("proot")], Container, "proot"),
    rule(&[DetectVirt("pouch")], Container, "pouch"),
    // Clouds before the hypervisor they run on (EC2 Nitro and GCE are KVM underneath). EC2
    // bare-metal instances keep the Amazon DMI strings but are not virtual (`*.metal`).
    Rule {
        all: &[Contains(DMI_SYS_VENDOR, "Amazon EC2")],
        unless: &[Contains(DMI_PRODUCT, ".metal")],
        kind: VirtualMachine,
        technology: Some("amazon"),
    },
    Rule {
        all: &[Contains(DMI_BIOS_VENDOR, "Amazon EC2")],
        unless: &[Contains(DMI_PRODUCT, ".metal")],
        kind: VirtualMachine,
        technology: Some("amazon"),
    },
    rule(
        &[Contains(DMI_BIOS_VERSION, "amazon")],
        VirtualMachine,
        "amazon",
    ),
    // Not sys_vendor "Google": Chromebooks have it too.
    rule(
        &[Contains(DMI_PRODUCT, "Google Compute Engine")],
        VirtualMachine,
        "google",
    ),
    rule(
        &[Contains(DMI_BIOS_VENDOR, "Google")],
        VirtualMachine,
        "google",
    ),
    // Azure marks its Hyper-V guests with a fixed asset tag.
    rule(
        &[Contains(DMI_ASSET_TAG, "7783-7084-3265-9085-8269-3286-77")],
        VirtualMachine,
        "azure",
    ),
    rule(
        &[
            Contains(DMI_SYS_VENDOR, "Microsoft Corporation"),
            Contains(DMI_PRODUCT, "Virtual Machine"),
        ],
        VirtualMachine,
        "hyperv",
    ),
    rule(
        &[Contains(DMI_SYS_VENDOR, "OpenStack")],
        VirtualMachine,
        "openstack",
    ),
    rule(
        &[Contains(DMI_PRODUCT, "OpenStack")],
        VirtualMachine,
        "openstack",
    ),
    rule(
        &[Contains(DMI_SYS_VENDOR, "VMware")],
        VirtualMachine,
        "vmware",
    ),
    rule(&[Contains(DMI_PRODUCT, "VMware")], VirtualMachine, "vmware"),
    rule(
        &[Contains(DMI_PRODUCT, "VirtualBox")],
        VirtualMachine,
        "virtualbox",
    ),
    rule(
        &[Contains(DMI_SYS_VENDOR, "innotek")],
        VirtualMachine,
        "virtualbox",
    ),
    rule(
        &[Contains(DMI_BOARD_VENDOR, "innotek")],
        VirtualMachine,
        "virtualbox",
    ),
    rule(
        &[Contains(DMI_SYS_VENDOR, "Parallels")],
        VirtualMachine,
        "parallels",
    ),
    rule(&[Contains(DMI_SYS_VENDOR, "Xen")], VirtualMachine, "xen"),
    rule(&[Contains(DMI_PRODUCT, "HVM domU")], VirtualMachine, "xen"),
    rule(&[Contains(DMI_BIOS_VENDOR, "Xen")], VirtualMachine, "xen"),
    // Paravirtualised Xen guests have no DMI; dom0 also sees /sys/hypervisor but is the host.
    Rule {
        all: &[Contains("/sys/hypervisor/type", "xen")],
        unless: &[Contains("/proc/xen/capabilities", "control_d")],
        kind: VirtualMachine,
        technology: Some("xen"),
    },
    // QEMU's DMI says "QEMU" with or without KVM acceleration; only a KVM guest gets kvm-clock.
    rule(
        &[Contains(CLOCKSOURCES, "kvm-clock")],
        VirtualMachine,
        "kvm",
    ),
    rule(&[Contains(DMI_PRODUCT, "KVM")], VirtualMachine, "kvm"),
    rule(&[Contains(DMI_SYS_VENDOR, "QEMU")], VirtualMachine, "qemu"),
    rule(
        &[Contains(DMI_SYS_VENDOR, "Bochs")],
        VirtualMachine,
        "bochs",
    ),
    rule(
        &[Contains(DMI_BIOS_VENDOR, "Bochs")],
        VirtualMachine,
        "bochs",
    ),
    rule(&[DetectVirt("kvm")], VirtualMachine, "kvm"),
    rule(&[DetectVirt("qemu")], VirtualMachine, "qemu"),
    rule(&[DetectVirt("amazon")], VirtualMachine, "amazon"),
    rule(&[DetectVirt("google")], VirtualMachine, "google"),
    rule(&[DetectVirt("vmware")], VirtualMachine, "vmware"),
    rule(&[DetectVirt("microsoft")], VirtualMachine, "hyperv"),
    rule(&[DetectVirt("oracle")], VirtualMachine, "virtualbox"),
    rule(&[DetectVirt("xen")], VirtualMachine, "xen"),
    rule(&[DetectVirt("parallels")], VirtualMachine, "parallels"),
    rule(&[DetectVirt("bochs")], VirtualMachine, "bochs"),
    rule(&[DetectVirt("bhyve")], VirtualMachine, "bhyve"),
    rule(&[DetectVirt("powervm")], VirtualMachine, "powervm"),
    rule(&[DetectVirt("zvm")], VirtualMachine, "zvm"),
    rule(&[DetectVirt("uml")], VirtualMachine, "uml"),
    rule(&[DetectVirt("acrn")], VirtualMachine, "acrn"),
    rule(&[DetectVirt("qnx")], VirtualMachine, "qnx"),
    rule(&[DetectVirt("apple")], VirtualMachine, "apple"),
    // Some hypervisor we have no rule for: the CPU says so, but not which.
    Rule {
        all: &[CpuFlag("hypervisor")],
        unless: &[],
        kind: VirtualMachine,
        technology: None,
    },
];

/// Facts the rules are evaluated against.
struct Facts<'a> {
    root: &'a Root,
    pid1_container: Option<String>,
    cpu_flags: BTreeSet<String>,
    detect_virt: Option<String>,
}

impl Facts<'_> {
    fn holds(&self, e: &Evidence) -> bool {
        match *e {
            Exists(p) => self.root.exists(p),
            Contains(p, needle) => self
                .root
                .read(p)
                .map(|t| {
                    t.to_ascii_lowercase()
                        .contains(&needle.to_ascii_lowercase())
                })
                .unwrap_or(false),
            Pid1Container(v) => self.pid1_container.as_deref() == Some(v),
            CpuFlag(f) => self.cpu_flags.contains(f),
            DetectVirt(v) => self.detect_virt.as_deref() == Some(v),
        }
    }
}

fn describe(e: &Evidence) -> String {
    match *e {
        Exists(p) => format!("{p} exists"),
        Contains(p, needle) => format!("{p} contains \"{needle}\""),
        Pid1Container(v) => format!("pid 1 environment has container={v}"),
        CpuFlag(f) => format!("/proc/cpuinfo flag {f}"),
        DetectVirt(v) => format!("systemd-detect-virt: {v}"),
    }
}

/// `container=` from a NUL-separated environment block.
pub(crate) fn container_from_environ(environ: &[u8]) -> Option<String> {
    environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"container="))
        .map(|v| String::from_utf8_lossy(v).trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The `flags` (x86) or `Features` (ARM) of the first processor.
pub(crate) fn cpu_flags(cpuinfo: &str) -> BTreeSet<String> {
    cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k.trim(), "flags" | "Features").then_some(v)
        })
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Evaluates the table against the files under `root` and, when given, the output of
/// `systemd-detect-virt`.
pub(crate) fn detect(root: &Root, detect_virt: Option<&str>) -> Virtualization {
    let facts = Facts {
        root,
        pid1_container: root
            .read_bytes("/proc/1/environ")
            .ok()
            .and_then(|e| container_from_environ(&e)),
        cpu_flags: root
            .read("/proc/cpuinfo")
            .map(|t| cpu_flags(&t))
            .unwrap_or_default(),
        detect_virt: detect_virt
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "none"),
    };
    let mut matched = RULES.iter().filter(|r| {
        r.all.iter().all(|e| facts.holds(e)) && !r.unless.iter().any(|e| facts.holds(e))
    });
    let Some(first) = matched.next() else {
        return Virtualization {
            kind: VirtualizationKind::Physical,
            technology: None,
            evidence: Some("no container or hypervisor evidence".into()),
        };
    };
    let explain = |r: &Rule| r.all.iter().map(describe).collect::<Vec<_>>().join(" and ");
    let mut evidence = explain(first);
    let others: Vec<String> = matched.take(8).map(explain).collect();
    if !others.is_empty() {
        evidence.push_str("; also: ");
        evidence.push_str(&others.join(", "));
    }
    Virtualization {
        kind: first.kind,
        technology: first.technology.map(str::to_string),
        evidence: Some(evidence),
    }
}

/// Runs `systemd-detect-virt` when it is installed; its exit code is 1 for "none", so only
/// the output matters.
pub(crate) async fn systemd_detect_virt(timeout: std::time::Duration) -> Option<String> {
    let out = crate::command::run_named("systemd-detect-virt", &[], timeout)
        .await?
        .ok()?;
    let line = out.stdout.lines().next()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::root::testing::fixture;

    /// Every directory under tests/fixtures/virt is a small file system; expected.txt lists
    /// `case kind technology` for each.
    #[test]
    fn fixture_trees_are_classified() {
        let expected = std::fs::read_to_string(fixture("virt/expected.txt")).unwrap();
        let mut seen = 0;
        for line in expected
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let [case, kind, tech] = cols.as_slice() else {
                panic!("bad line {line:?}")
            };
            let root = Root::new(fixture(&format!("virt/{case}")));
            let detect_virt = root.read_trimmed("/detect-virt.out");
            let v = detect(&root, detect_virt.as_deref());
            let got_kind = match v.kind {
                VirtualizationKind::Physical => "physical",
                VirtualizationKind::VirtualMachine => "virtual_machine",
                VirtualizationKind::Container => "container",
            };
            let got_tech = v.technology.as_deref().unwrap_or("-");
            assert_eq!(
                (got_kind, got_tech),
                (*kind, *tech),
                "case {case}: evidence {:?}",
                v.evidence
            );
            assert!(v.evidence.is_some());
            seen += 1;
        }
        assert!(seen >= 12, "only {seen} cases");
    }

    #[test]
    fn container_on_a_vm_is_a_container_and_both_are_evidence() {
        let root = Root::new(fixture("virt/docker"));
        let v = detect(&root, None);
        let ev = v.evidence.unwrap();
        assert!(ev.starts_with("/.dockerenv exists"), "{ev}");
        assert!(ev.contains("also:") && ev.contains("kvm-clock"), "{ev}");
    }

    #[test]
    fn detect_virt_output_is_used_when_files_say_nothing() {
        let root = Root::new(fixture("virt/physical"));
        let v = detect(&root, Some("microsoft\n"));
        assert_eq!(v.technology.as_deref(), Some("hyperv"));
        assert_eq!(
            detect(&root, Some("none")).kind,
            VirtualizationKind::Physical
        );
    }

    #[test]
    fn environ_parsing() {
        assert_eq!(
            container_from_environ(b"HOME=/\0container=lxc\0TERM=xterm\0").as_deref(),
            Some("lxc")
        );
        assert_eq!(container_from_environ(b"HOME=/\0"), None);
    }
}
