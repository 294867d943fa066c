//! Network inventory: interfaces from /sys/class/net, addresses from getifaddrs(3), default
//! gateways from /proc/net/route and /proc/net/ipv6_route, DNS from resolv.conf (following
//! systemd-resolved's stub to the real upstream list).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use capstan_proto::inventory::{Network, NetworkInterface};

use crate::root::Root;

/// IFF_UP in /sys/class/net/X/flags (the sysfs flags never include IFF_RUNNING; the
/// `carrier` attribute carries that).
const IFF_UP: u32 = 0x1;

pub(crate) fn collect(root: &Root) -> Network {
    let mut addrs = if root.is_live() {
        live_addresses()
    } else {
        BTreeMap::new()
    };
    let mut interfaces = Vec::new();
    for name in root.list("/sys/class/net") {
        let base = format!("/sys/class/net/{name}");
        if !root.is_dir(&base) {
            continue;
        }
        let read = |f: &str| root.read_trimmed(&format!("{base}/{f}"));
        let flags =
            read("flags").and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok());
        let (ipv4, ipv6) = addrs.remove(&name).unwrap_or_default();
        interfaces.push(NetworkInterface {
            mac: read("address")
                .filter(|m| !m.is_empty() && m.chars().any(|c| c != '0' && c != ':')),
            up: is_up(
                read("operstate").as_deref(),
                flags,
                read("carrier").as_deref(),
            ),
            mtu: read("mtu").and_then(|m| m.parse().ok()),
            // Virtual and down links report -1 or refuse the read.
            speed_mbps: read("speed")
                .and_then(|s| s.parse::<i64>().ok())
                .and_then(|s| u32::try_from(s).ok())
                .filter(|s| *s > 0),
            virtual_interface: Some(root.exists(&format!("/sys/devices/virtual/net/{name}"))),
            name,
            ipv4,
            ipv6,
        });
    }
    let default_gateway_v4 = root
        .read("/proc/net/route")
        .ok()
        .and_then(|t| default_gateway_v4(&t))
        .map(|a| a.to_string());
    let default_gateway_v6 = root
        .read("/proc/net/ipv6_route")
        .ok()
        .and_then(|t| default_gateway_v6(&t))
        .map(|a| a.to_string());
    let (dns_servers, dns_search) = dns(root);
    Network {
        interfaces,
        default_gateway_v4,
        default_gateway_v6,
        dns_servers,
        dns_search,
    }
}

/// `operstate` is authoritative when it says up or down; loopback and many tunnels say
/// "unknown", and then the administrative flag and the carrier decide (carrier cannot be
/// read while the interface is administratively down).
pub(crate) fn is_up(
    operstate: Option<&str>,
    flags: Option<u32>,
    carrier: Option<&str>,
) -> Option<bool> {
    match operstate {
        Some("up") => Some(true),
        Some("down" | "lowerlayerdown" | "notpresent" | "dormant") => Some(false),
        _ => flags.map(|f| f & IFF_UP != 0 && carrier != Some("0")),
    }
}

type Addrs = BTreeMap<String, (Vec<String>, Vec<String>)>;

#[cfg(unix)]
fn live_addresses() -> Addrs {
    let mut out: Addrs = BTreeMap::new();
    let Ok(list) = nix::ifaddrs::getifaddrs() else {
        return out;
    };
    for ifa in list {
        let (Some(addr), mask) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let entry = out.entry(ifa.interface_name.clone()).or_default();
        if let Some(a) = addr.as_sockaddr_in() {
            let prefix = mask
                .and_then(|m| m.as_sockaddr_in().map(|m| u32::from(m.ip()).count_ones()))
                .unwrap_or(32);
            entry.0.push(format!("{}/{prefix}", a.ip()));
        } else if let Some(a) = addr.as_sockaddr_in6() {
            let prefix = mask
                .and_then(|m| m.as_sockaddr_in6().map(|m| u128::from(m.ip()).count_ones()))
                .unwrap_or(128);
            entry.1.push(format!("{}/{prefix}", a.ip()));
        }
    }
    out
}

#[cfg(not(unix))]
fn live_addresses() -> Addrs {
    BTreeMap::new()
}

/// /proc/net/route: the default route (destination and mask 0, RTF_UP|RTF_GATEWAY) with the
/// lowest metric. Addresses are 32-bit hex in host (little-endian) byte order.
pub(crate) fn default_gateway_v4(table: &str) -> Option<Ipv4Addr> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 || f[1] != "00000000" || f[7] != "00000000" {
                return None;
            }
            let flags = u32::from_str_radix(f[3], 16).ok()?;
            if flags & 0x3 != 0x3 {
                return None;
            }
            let gw = u32::from_str_radix(f[2], 16).ok()?;
            let metric: u32 = f[6].parse().ok()?;
            Some((metric, Ipv4Addr::from(gw.swap_bytes())))
        })
        .min_by_key(|(m, _)| *m)
        .map(|(_, a)| a)
}

/// /proc/net/ipv6_route: `dest plen src plen nexthop metric refcnt use flags iface`; the
/// default route is ::/0 with a non-zero next hop, not rejected (RTF_REJECT 0x200).
pub(crate) fn default_gateway_v6(table: &str) -> Option<Ipv6Addr> {
    table
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[1] != "00" || u128::from_str_radix(f[0], 16).ok()? != 0 {
                return None;
            }
            let flags = u32::from_str_radix(f[8], 16).ok()?;
            let hop = u128::from_str_radix(f[4], 16).ok()?;
            if hop == 0 || flags & 0x200 != 0 || f[9] == "lo" {
                return None;
            }
            let metric = u32::from_str_radix(f[5], 16).ok()?;
            Some((metric, Ipv6Addr::from(hop)))
        })
        .min_by_key(|(m, _)| *m)
        .map(|(_, a)| a)
}

/// Parsed resolv.conf: name servers in order, and the search list (the last `search` or
/// `domain` line wins, as in the resolver).
pub(crate) fn parse_resolv_conf(text: &str) -> (Vec<String>, Vec<String>) {
    let mut servers = Vec::new();
    let mut search = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(s) = words.next()
                    && !servers.iter().any(|x| x == s)
                {
                    servers.push(s.to_string());
                }
            }
            Some("search") => search = words.map(str::to_string).collect(),
            Some("domain") => {
                search = words
                    .next()
                    .map(|d| vec![d.to_string()])
                    .unwrap_or_default()
            }
            _ => {}
        }
    }
    (servers, search)
}

/// DNS configuration; when the only server is systemd-resolved's stub, the upstream servers
/// systemd-resolved uses are what an administrator wants to see.
fn dns(root: &Root) -> (Vec<String>, Vec<String>) {
    let (servers, search) = root
        .read("/etc/resolv.conf")
        .map(|t| parse_resolv_conf(&t))
        .unwrap_or_default();
    let stub = !servers.is_empty()
        && servers
            .iter()
            .all(|s| s == "127.0.0.53" || s == "127.0.0.54");
    if stub && let Ok(real) = root.read("/run/systemd/resolve/resolv.conf") {
        let (real_servers, real_search) = parse_resolv_conf(&real);
        if !real_servers.is_empty() {
            return (
                real_servers,
                if real_search.is_empty() {
                    search
                } else {
                    real_search
                },
            );
        }
    }
    (servers, search)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::root::testing::Tree;

    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
        eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
        eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    const ROUTE6: &str = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    #[test]
    fn ipv4_default_route_with_lowest_metric() {
        assert_eq!(default_gateway_v4(ROUTE), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(default_gateway_v4("Iface\tDestination\n"), None);
    }

    #[test]
    fn ipv6_default_route_skips_reject_routes() {
        assert_eq!(default_gateway_v6(ROUTE6), Some("fd00::1".parse().unwrap()));
        let only_reject = ROUTE6.lines().last().unwrap();
        assert_eq!(default_gateway_v6(only_reject), None);
    }

    #[test]
    fn resolv_conf_servers_and_search() {
        let (s, d) = parse_resolv_conf(
            "# generated\nnameserver 10.0.0.2\nnameserver 2001:db8::53 ; v6\nnameserver 10.0.0.2\n\
             domain old.example\nsearch corp.example.com example.com\noptions edns0\n",
        );
        assert_eq!(s, vec!["10.0.0.2", "2001:db8::53"]);
        assert_eq!(d, vec!["corp.example.com", "example.com"]);
    }

    #[test]
    fn resolved_stub_is_followed() {
        let tree = Tree::new()
            .file(
                "/etc/resolv.conf",
                "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n",
            )
            .file(
                "/run/systemd/resolve/resolv.conf",
                "nameserver 192.168.1.1\nnameserver 1.1.1.1\n",
            );
        assert_eq!(
            dns(&tree.root()),
            (
                vec!["192.168.1.1".to_string(), "1.1.1.1".to_string()],
                vec!["lan".to_string()]
            )
        );
    }

    #[test]
    fn interfaces_from_sysfs() {
        let tree = Tree::new()
            .file(
                "/sys/devices/pci0000:00/0000:00:03.0/net/eth0/address",
                "52:54:00:12:34:56\n",
            )
            .file(
                "/sys/devices/pci0000:00/0000:00:03.0/net/eth0/operstate",
                "up\n",
            )
            .file(
                "/sys/devices/pci0000:00/0000:00:03.0/net/eth0/mtu",
                "1500\n",
            )
            .file(
                "/sys/devices/pci0000:00/0000:00:03.0/net/eth0/speed",
                "1000\n",
            )
            .file(
                "/sys/devices/pci0000:00/0000:00:03.0/net/eth0/flags",
                "0x1003\n",
            )
            .symlink(
                "/sys/class/net/eth0",
                "../../devices/pci0000:00/0000:00:03.0/net/eth0",
            )
            .file("/sys/devices/virtual/net/lo/address", "00:00:00:00:00:00\n")
            .file("/sys/devices/virtual/net/lo/operstate", "unknown\n")
            .file("/sys/devices/virtual/net/lo/mtu", "65536\n")
            .file("/sys/devices/virtual/net/lo/speed", "-1\n")
            .file("/sys/devices/virtual/net/lo/flags", "0x9\n")
            .file("/sys/devices/virtual/net/lo/carrier", "1\n")
            .symlink("/sys/class/net/lo", "../../devices/virtual/net/lo")
            .file("/sys/devices/virtual/net/wg0/operstate", "unknown\n")
            .file("/sys/devices/virtual/net/wg0/flags", "0x90\n")
            .file("/sys/devices/virtual/net/tun0/operstate", "unknown\n")
            .file("/sys/devices/virtual/net/tun0/flags", "0x1091\n")
            .file("/sys/devices/virtual/net/tun0/carrier", "0\n")
            .symlink("/sys/class/net/tun0", "../../devices/virtual/net/tun0")
            .symlink("/sys/class/net/wg0", "../../devices/virtual/net/wg0")
            .file("/proc/net/route", ROUTE)
            .file("/etc/resolv.conf", "nameserver 10.0.0.2\n");
        let net = collect(&tree.root());
        let eth0 = &net.interfaces[0];
        assert_eq!(eth0.name, "eth0");
        assert_eq!(eth0.mac.as_deref(), Some("52:54:00:12:34:56"));
        assert_eq!(
            (eth0.up, eth0.mtu, eth0.speed_mbps, eth0.virtual_interface),
            (Some(true), Some(1500), Some(1000), Some(false))
        );
        let lo = &net.interfaces[1];
        assert_eq!(
            (
                lo.name.as_str(),
                lo.mac.as_deref(),
                lo.up,
                lo.speed_mbps,
                lo.virtual_interface
            ),
            ("lo", None, Some(true), None, Some(true))
        );
        let tun0 = &net.interfaces[2];
        assert_eq!((tun0.name.as_str(), tun0.up), ("tun0", Some(false)));
        let wg0 = &net.interfaces[3];
        assert_eq!((wg0.name.as_str(), wg0.up), ("wg0", Some(false)));
        assert_eq!(net.default_gateway_v4.as_deref(), Some("192.0.2.1"));
        assert_eq!(net.default_gateway_v6, None);
        assert_eq!(net.dns_servers, vec!["10.0.0.2"]);
    }
}
