//! Whether the device's connection is metered, for deployments that must not download over a
//! metered link (`NetworkPolicy::skip_metered`). On Linux the answer is NetworkManager's:
//! its global `Metered` property over D-Bus through `busctl`, or, where `busctl` cannot
//! answer, the per-device states `nmcli` shows. A device without a system bus or without
//! NetworkManager is `Unknown`, never an error: the caller decides what unknown means. The
//! parsers of the programs' output are kept apart from running them so they are tested on
//! fixture text.

use tracing::warn;

/// Whether downloading now may cost the user money or data allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metered {
    /// Metered, configured or guessed (a phone hotspot, a mobile broadband modem).
    Yes,
    /// Not metered, configured or guessed.
    No,
    /// Nobody on this device knows (no NetworkManager, no system bus, another OS).
    Unknown,
}

/// The environment variable that replaces detection, for end-to-end tests.
pub const TEST_OVERRIDE_ENV: &str = "CAPSTAN_TEST_METERED";

/// Per program; NetworkManager answers in milliseconds, and a bus that hangs must not hold up
/// a deployment for long.
#[cfg(target_os = "linux")]
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether the connection is metered right now.
///
/// Linux asks NetworkManager (`busctl get-property … Metered`, else `nmcli`), each with a
/// 3-second timeout in its own process group; Windows and other systems answer `Unknown` for
/// now. When the environment variable `CAPSTAN_TEST_METERED` is `yes`, `no` or `unknown`, that
/// is the answer and nothing is probed: end-to-end tests use it to simulate a metered link.
/// Any other value is ignored with a warning.
pub async fn connection_metered() -> Metered {
    if let Some(value) = std::env::var_os(TEST_OVERRIDE_ENV) {
        match value.to_str().and_then(parse_override) {
            Some(metered) => return metered,
            None => warn!(
                value = %value.to_string_lossy(),
                "{TEST_OVERRIDE_ENV} is not yes, no or unknown; ignored"
            ),
        }
    }
    platform_metered().await
}

fn parse_override(value: &str) -> Option<Metered> {
    match value.trim().to_ascii_lowercase().as_str() {
        "yes" => Some(Metered::Yes),
        "no" => Some(Metered::No),
        "unknown" => Some(Metered::Unknown),
        _ => None,
    }
}

#[cfg(target_os = "linux")]
async fn platform_metered() -> Metered {
    let mut probes = Vec::new();
    if let Some(program) = crate::command::find_program("busctl") {
        probes.push(Probe {
            program,
            args: BUSCTL_ARGS.to_vec(),
            parse: parse_busctl,
        });
    }
    if let Some(program) = crate::command::find_program("nmcli") {
        probes.push(Probe {
            program,
            args: NMCLI_ARGS.to_vec(),
            parse: parse_nmcli,
        });
    }
    first_answer(&probes, PROBE_TIMEOUT).await
}

#[cfg(windows)]
async fn platform_metered() -> Metered {
    // To do with the WinRT API: NetworkInformation::GetInternetConnectionProfile() and its
    // GetConnectionCost().NetworkCostType() (Unrestricted → No; Fixed or Variable → Yes; also
    // Yes when Roaming or OverDataLimit). It needs the `windows` crate, which cannot be
    // compiled here, so Windows devices report Unknown until then.
    Metered::Unknown
}

#[cfg(not(any(target_os = "linux", windows)))]
async fn platform_metered() -> Metered {
    Metered::Unknown
}

/// `--auto-start=no`: asking whether the link is metered must not start NetworkManager on a
/// device that does not run it.
#[cfg(target_os = "linux")]
const BUSCTL_ARGS: &[&str] = &[
    "--system",
    "--auto-start=no",
    "get-property",
    "org.freedesktop.NetworkManager",
    "/org/freedesktop/NetworkManager",
    "org.freedesktop.NetworkManager",
    "Metered",
];

#[cfg(target_os = "linux")]
const NMCLI_ARGS: &[&str] = &[
    "-t",
    "-f",
    "GENERAL.DEVICE,GENERAL.STATE,GENERAL.METERED",
    "device",
    "show",
];

/// One way of asking: a program, its arguments and the parser of what it prints.
#[cfg(target_os = "linux")]
struct Probe {
    program: std::path::PathBuf,
    args: Vec<&'static str>,
    parse: fn(&str) -> Option<Metered>,
}

/// The answer of the first probe that gives one; a probe that cannot be run, fails, times out
/// or prints something unrecognised passes to the next.
#[cfg(target_os = "linux")]
async fn first_answer(probes: &[Probe], timeout: std::time::Duration) -> Metered {
    use tracing::debug;

    for probe in probes {
        let program = probe.program.display();
        match crate::command::run(&probe.program, &probe.args, timeout).await {
            Ok(out) if out.success() => match (probe.parse)(&out.stdout) {
                Some(metered) => return metered,
                None => debug!(%program, stdout = %out.stdout, "unrecognised metered state"),
            },
            Ok(out) => {
                debug!(%program, code = ?out.code, stderr = %out.stderr.trim(), "no metered state")
            }
            Err(error) => debug!(%program, %error, "no metered state"),
        }
    }
    Metered::Unknown
}

/// NetworkManager's `NMMetered` value: 0 unknown, 1 yes, 2 no, 3 guessed yes, 4 guessed no.
/// A value added by a later NetworkManager is unknown to us.
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "used on Linux only")
)]
fn from_nm_value(value: u32) -> Metered {
    match value {
        1 | 3 => Metered::Yes,
        2 | 4 => Metered::No,
        _ => Metered::Unknown,
    }
}

/// `busctl get-property` prints the D-Bus type and the value: `u 4`.
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "used on Linux only")
)]
fn parse_busctl(stdout: &str) -> Option<Metered> {
    let mut words = stdout.split_whitespace();
    let (Some("u"), Some(value), None) = (words.next(), words.next(), words.next()) else {
        return None;
    };
    value.parse().ok().map(from_nm_value)
}

/// `nmcli -t -f GENERAL.DEVICE,GENERAL.STATE,GENERAL.METERED device show` prints, per
/// device, `GENERAL.DEVICE:wlp2s0`, `GENERAL.STATE:100 (connected)` and
/// `GENERAL.METERED:no (guessed)` lines (with `LC_ALL=C`, untranslated). nmcli does not show
/// NetworkManager's global state (that of the device with the best default route), so this
/// combines the connected devices: metered if any of them is, since skipping a download on a
/// metered link is what the operator asked for; not metered if at least one says so; unknown
/// otherwise. `None` when the text holds no metered state at all.
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "used on Linux only")
)]
fn parse_nmcli(stdout: &str) -> Option<Metered> {
    struct Device<'a> {
        name: &'a str,
        connected: Option<bool>,
        metered: Option<Metered>,
    }
    let mut devices: Vec<Device> = Vec::new();
    for line in stdout.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "GENERAL.DEVICE" => devices.push(Device {
                name: value,
                connected: None,
                metered: None,
            }),
            "GENERAL.STATE" => {
                if let Some(d) = devices.last_mut() {
                    // NM_DEVICE_STATE_ACTIVATED; the text after it varies between versions.
                    d.connected = Some(value.split_whitespace().next() == Some("100"));
                }
            }
            "GENERAL.METERED" => {
                if let Some(d) = devices.last_mut() {
                    d.metered = Some(parse_nm_text(value));
                }
            }
            _ => {}
        }
    }
    let states: Vec<Metered> = devices
        .iter()
        .filter(|d| d.name != "lo" && d.connected != Some(false))
        .filter_map(|d| d.metered)
        .collect();
    if devices.iter().all(|d| d.metered.is_none()) {
        return None;
    }
    Some(if states.contains(&Metered::Yes) {
        Metered::Yes
    } else if states.contains(&Metered::No) {
        Metered::No
    } else {
        Metered::Unknown
    })
}

/// nmcli's words for `NMMetered`: `yes`, `no`, `unknown`, `yes (guessed)`, `no (guessed)`.
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "used on Linux only")
)]
fn parse_nm_text(value: &str) -> Metered {
    match value.split_whitespace().next() {
        Some("yes") => Metered::Yes,
        Some("no") => Metered::No,
        _ => Metered::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busctl_output_is_read_as_networkmanager_means_it() {
        let cases: &[(&str, Option<Metered>)] = &[
            ("u 0\n", Some(Metered::Unknown)),
            ("u 1\n", Some(Metered::Yes)),
            ("u 2\n", Some(Metered::No)),
            ("u 3\n", Some(Metered::Yes)),
            ("u 4\n", Some(Metered::No)),
            ("  u 4  ", Some(Metered::No)),
            // A value a later NetworkManager might add.
            ("u 9\n", Some(Metered::Unknown)),
            ("", None),
            ("s \"yes\"\n", None),
            ("u\n", None),
            ("u yes\n", None),
            ("u 1 2\n", None),
            ("u -1\n", None),
            (
                "Failed to connect to bus: No such file or directory\n",
                None,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_busctl(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn nmcli_output_is_combined_over_the_connected_devices() {
        let wifi_guessed_no = "GENERAL.DEVICE:wlp2s0\nGENERAL.STATE:100 (connected)\n\
                               GENERAL.METERED:no (guessed)\n";
        let lo = "GENERAL.DEVICE:lo\nGENERAL.STATE:100 (connected (externally))\n\
                  GENERAL.METERED:unknown\n";
        let hotspot = "GENERAL.DEVICE:wlan1\nGENERAL.STATE:100 (connected)\n\
                       GENERAL.METERED:yes (guessed)\n";
        let modem_down = "GENERAL.DEVICE:wwan0\nGENERAL.STATE:30 (disconnected)\n\
                          GENERAL.METERED:yes\n";
        let eth_set_no = "GENERAL.DEVICE:enp0s31f6\nGENERAL.STATE:100 (connected)\n\
                          GENERAL.METERED:no\n";
        let cases: Vec<(&str, String, Option<Metered>)> = vec![
            (
                "wifi guessed not metered, and loopback",
                format!("{lo}{wifi_guessed_no}"),
                Some(Metered::No),
            ),
            (
                "a connected hotspot makes it metered",
                format!("{eth_set_no}\n{hotspot}\n{lo}"),
                Some(Metered::Yes),
            ),
            (
                "a disconnected modem does not",
                format!("{modem_down}{eth_set_no}"),
                Some(Metered::No),
            ),
            (
                "only loopback and a disconnected modem",
                format!("{lo}{modem_down}"),
                Some(Metered::Unknown),
            ),
            (
                "the human layout, padded",
                "GENERAL.DEVICE:                         eth0\n\
                 GENERAL.STATE:                          100 (connected)\n\
                 GENERAL.METERED:                        yes\n"
                    .to_string(),
                Some(Metered::Yes),
            ),
            (
                "no state field still counts",
                "GENERAL.DEVICE:eth0\nGENERAL.METERED:no\n".to_string(),
                Some(Metered::No),
            ),
            (
                "an unknown word",
                "GENERAL.DEVICE:eth0\nGENERAL.STATE:100 (connected)\nGENERAL.METERED:maybe\n"
                    .to_string(),
                Some(Metered::Unknown),
            ),
            (
                "an error message",
                "Error: NetworkManager is not running.\n".to_string(),
                None,
            ),
            ("nothing", String::new(), None),
            (
                "devices without a metered field",
                "GENERAL.DEVICE:eth0\nGENERAL.STATE:100 (connected)\n".to_string(),
                None,
            ),
        ];
        for (name, text, expected) in cases {
            assert_eq!(parse_nmcli(&text), expected, "{name}: {text:?}");
        }
    }

    #[test]
    fn the_test_override_accepts_three_words_only() {
        let cases = [
            ("yes", Some(Metered::Yes)),
            ("NO", Some(Metered::No)),
            (" unknown\n", Some(Metered::Unknown)),
            ("1", None),
            ("true", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_override(value), expected, "{value:?}");
        }
    }

    #[cfg(target_os = "linux")]
    mod probes {
        use std::time::{Duration, Instant};

        use super::*;
        use crate::command::find_program;

        /// A stand-in for busctl or nmcli: a shell script that prints and exits as told.
        fn fake(script: &'static str, parse: fn(&str) -> Option<Metered>) -> Probe {
            Probe {
                program: find_program("sh").expect("sh"),
                args: vec!["-c", script],
                parse,
            }
        }

        #[tokio::test]
        async fn the_first_probe_that_answers_decides() {
            let timeout = Duration::from_secs(5);
            let busctl_yes = || fake("echo 'u 3'", parse_busctl);
            let busctl_unknown = || fake("echo 'u 0'", parse_busctl);
            let no_bus = || {
                fake(
                    "echo 'Failed to connect to bus: No such file or directory' >&2; exit 1",
                    parse_busctl,
                )
            };
            let garbage = || fake("echo 'something else'", parse_busctl);
            let nmcli_no = || {
                fake(
                    "printf 'GENERAL.DEVICE:eth0\\nGENERAL.STATE:100 (connected)\\nGENERAL.METERED:no\\n'",
                    parse_nmcli,
                )
            };
            let cases: Vec<(&str, Vec<Probe>, Metered)> = vec![
                (
                    "busctl answers",
                    vec![busctl_yes(), nmcli_no()],
                    Metered::Yes,
                ),
                (
                    "busctl says unknown, which is an answer",
                    vec![busctl_unknown(), nmcli_no()],
                    Metered::Unknown,
                ),
                ("no bus: nmcli", vec![no_bus(), nmcli_no()], Metered::No),
                ("garbage: nmcli", vec![garbage(), nmcli_no()], Metered::No),
                (
                    "nothing answers",
                    vec![no_bus(), garbage()],
                    Metered::Unknown,
                ),
                ("nothing installed", vec![], Metered::Unknown),
            ];
            for (name, probes, expected) in cases {
                assert_eq!(first_answer(&probes, timeout).await, expected, "{name}");
            }
        }

        #[tokio::test]
        async fn a_hanging_probe_is_cut_short_and_the_next_one_asked() {
            let probes = [
                fake("sleep 30", parse_busctl),
                fake(
                    "echo 'GENERAL.DEVICE:wwan0'; echo 'GENERAL.METERED:yes'",
                    parse_nmcli,
                ),
            ];
            let started = Instant::now();
            let got = first_answer(&probes, Duration::from_millis(300)).await;
            assert_eq!(got, Metered::Yes);
            assert!(started.elapsed() < Duration::from_secs(5));
        }
    }
}
