//! The command-line grammar of desired software state — `capstan assign`, `assignments`,
//! `deployments` and `windows` — and the parsers of the values those commands take: points in
//! time (RFC 3339 with an offset or a zone), download rates (`10MiB/s`), weekdays (`mon-fri`),
//! start times (`22:00`) and window lengths. Kept apart from `cli.rs` so that file only names
//! these commands; every parser refuses a bad value with a message that says what to write.

use capstan_proto::deploy::{Intent, Weekday, limits};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use crate::cli::{PackageRef, parse_package_ref};
use crate::duration::parse_duration_secs;

pub const ASSIGN_HELP: &str = "PACKAGE is a package name or id, optionally with @VERSION; without a
version the assignment follows the highest version (\"latest\"), so uploading a newer one
upgrades every device. The server compiles what each device must have and wakes it; follow
with `capstan devices software DEVICE` or use `capstan deployments` for a schedule.

Intents: required (installed and kept installed: drift is repaired), available (offered;
installed on request, e.g. `capstan devices software-install`), uninstall (removed and kept
removed). Removing a required or available assignment uninstalls what it installed, unless it
was created with --leave-installed.

Examples:
  capstan assign nginx --group web --intent required
  capstan assign nginx@1.26.0-1 --device 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b
  capstan assign 7zip --group office --intent available --leave-installed
  capstan assign telnet --group all-servers --intent uninstall";

pub const ASSIGNMENTS_EXAMPLES: &str = "Examples:
  capstan assignments list --group web
  capstan assignments list --device 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b -o json
  capstan assignments show 0190c3a4-0000-7000-8000-0000000000b1
  capstan assignments remove 0190c3a4-0000-7000-8000-0000000000b1 --yes";

pub const DEPLOYMENTS_EXAMPLES: &str = "A deployment is an assignment with a name, a schedule, a
maintenance-window policy and a network policy. TIME is RFC 3339 with an offset
(2026-12-01T22:00:00Z, 2026-12-01T22:00+01:00) or with a zone (2026-12-01T22:00[Europe/Berlin]).
RATE is bytes per second in B, KiB, MiB or GiB (10MiB/s).

Examples:
  capstan deployments create nginx-web nginx --group web
  capstan deployments create office-7zip 7zip@24.08 --group office --intent available \\
      --available-from 2026-12-01T08:00+01:00 --deadline 2026-12-08T18:00+01:00
  capstan deployments create hotfix agent-fix --group all --ignore-windows --max-rate 10MiB/s
  capstan deployments status nginx-web
  capstan deployments watch nginx-web
  capstan deployments pause nginx-web
  capstan deployments delete nginx-web --yes";

pub const WINDOWS_EXAMPLES: &str = "Required installs and uninstalls on a window's devices wait
until one of their windows is open, unless a deployment ignores windows. Devices without any
window are not restricted.

Examples:
  capstan windows create nightly --groups web,db --weekly mon-fri --start 22:00 --duration 2h \\
      --timezone Europe/Berlin
  capstan windows create sunday --groups office --cron \"0 3 * * sun\" --duration 4h --timezone device
  capstan windows list
  capstan windows delete nightly --yes";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IntentArg {
    /// Installed and kept installed (drift is repaired)
    Required,
    /// Offered: installed when someone asks for it
    Available,
    /// Removed and kept removed
    Uninstall,
}

impl IntentArg {
    pub fn wire(self) -> Intent {
        match self {
            IntentArg::Required => Intent::Required,
            IntentArg::Available => Intent::Available,
            IntentArg::Uninstall => Intent::Uninstall,
        }
    }
}

/// Exactly one group or one device.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("assign_target").args(["group", "device"]).required(true)))]
pub struct AssignTarget {
    /// Group id or name: its members and the members of its descendant groups, now and later
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Device id (see `capstan devices list`)
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
}

/// What an assignment and a deployment share.
#[derive(Debug, Args)]
pub struct AssignmentArgs {
    /// PACKAGE or PACKAGE@VERSION (without a version: always the highest version)
    #[arg(value_name = "PACKAGE[@VERSION]", value_parser = parse_package_ref)]
    pub package: PackageRef,
    #[command(flatten)]
    pub target: AssignTarget,
    /// What the devices must do with the package
    #[arg(long, value_enum, default_value_t = IntentArg::Required)]
    pub intent: IntentArg,
    /// When the assignment is removed or a device leaves the group, leave the software
    /// installed instead of uninstalling it
    #[arg(long)]
    pub leave_installed: bool,
}

#[derive(Debug, Subcommand)]
pub enum AssignmentsCommand {
    /// List assignments (deployments included), optionally filtered
    List {
        /// Only assignments of this package (id or name)
        #[arg(long, value_name = "PACKAGE")]
        package: Option<String>,
        /// Only assignments to this group (id or name)
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// Only assignments that reach this device, directly or through its groups
        #[arg(long, value_name = "ID")]
        device: Option<String>,
    },
    /// Show one assignment and what its version resolves to
    Show {
        /// Assignment id
        id: String,
    },
    /// Remove an assignment (and its deployment, if it has one): devices uninstall what it
    /// installed unless it leaves software installed
    Remove {
        /// Assignment id
        id: String,
        /// Do not ask for confirmation (required when standard input is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeploymentsCommand {
    /// Create a deployment: a named assignment with a schedule and policies
    Create(DeploymentCreateArgs),
    /// List deployments with their progress
    List,
    /// Show a deployment (by id or name): package, target, schedule, policies, progress
    Show {
        /// Deployment id or name
        deployment: String,
    },
    /// A deployment's progress: devices per status, success rate, failures by exit code and
    /// the devices, failed first
    Status {
        /// Deployment id or name
        deployment: String,
        /// Devices to list, 1 to 1000 (server default: 100)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: Option<u64>,
    },
    /// Follow a deployment live until every device reached an end state (installed, failed,
    /// not_applicable, removed, reboot_pending, available) or Ctrl-C
    #[command(after_help = WATCH_HELP)]
    Watch {
        /// Deployment id or name
        deployment: String,
    },
    /// Pause a deployment: its devices keep what they have; nothing is installed or removed
    /// for it until it is resumed
    Pause {
        /// Deployment id or name
        deployment: String,
    },
    /// Resume a paused deployment
    Resume {
        /// Deployment id or name
        deployment: String,
    },
    /// Delete a deployment and its assignment: devices uninstall what it installed unless it
    /// leaves software installed
    Delete {
        /// Deployment id or name
        deployment: String,
        /// Do not ask for confirmation (required when standard input is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// The output contract of `capstan deployments watch`.
const WATCH_HELP: &str = "On a terminal the view is redrawn every second: the counts, the success
rate and the devices that are not done. Otherwise one line per device whose status changed,
  HOSTNAME: STATUS [VERSION] [(exit CODE)] [: DETAIL]
and at the end
  Done: N device(s): COUNTS (deployment NAME[, success RATE]).
With --output json: one JSON object per line: {\"type\":\"device\", ...the device's state} per
change, then {\"type\":\"summary\", deployment_id, name, complete, counts, success_rate}.
A deployment that still reaches no device after a few seconds ends the watch.

Exit status: 0 no device failed; 6 (devices_failed) some device failed; 130 (interrupted)
Ctrl-C (the deployment goes on); otherwise as for every command.";

#[derive(Debug, Args)]
pub struct DeploymentCreateArgs {
    /// Deployment name (unique)
    pub name: String,
    #[command(flatten)]
    pub assignment: AssignmentArgs,
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Nothing is offered or installed before this time
    #[arg(long, value_name = "TIME", value_parser = parse_time_ms)]
    pub available_from: Option<i64>,
    /// From this time on, an available deployment is installed as if required
    #[arg(long, value_name = "TIME", value_parser = parse_time_ms)]
    pub deadline: Option<i64>,
    /// Install and uninstall at once, whether the devices' maintenance windows are open or not
    #[arg(long)]
    pub ignore_windows: bool,
    /// Download limit per device, e.g. 512KiB/s, 10MiB/s
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_rate: Option<u64>,
    /// Download only from the devices' depot sources, never from the server
    #[arg(long)]
    pub site_sources_only: bool,
    /// Do not download while a device's connection is metered (it waits instead)
    #[arg(long)]
    pub skip_metered: bool,
}

#[derive(Debug, Subcommand)]
pub enum WindowsCommand {
    /// List maintenance windows with their groups and when they next open
    List,
    /// Show one maintenance window (by id or name)
    Show {
        /// Window id or name
        window: String,
    },
    /// Create a recurring maintenance window for the members of groups
    Create(WindowCreateArgs),
    /// Delete a maintenance window; installs that waited for it go ahead unless another
    /// window holds them
    Delete {
        /// Window id or name
        window: String,
        /// Do not ask for confirmation (required when standard input is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Days of a weekly window, in week order without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Days(pub Vec<Weekday>);

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("schedule").args(["weekly", "cron"]).required(true)))]
pub struct WindowCreateArgs {
    /// Window name (unique)
    pub name: String,
    /// Groups (ids or names, comma-separated) whose members the window applies to,
    /// descendants included
    #[arg(long, value_name = "G1,G2", value_delimiter = ',', required = true)]
    pub groups: Vec<String>,
    /// Open on these days at --start: mon,tue,…, ranges like mon-fri, or daily, weekdays,
    /// weekends
    #[arg(long, value_name = "DAYS", value_parser = parse_weekdays, requires = "start")]
    pub weekly: Option<Days>,
    /// Local time a weekly window opens, HH:MM
    #[arg(long, value_name = "HH:MM", value_parser = parse_start, requires = "weekly")]
    pub start: Option<String>,
    /// Open whenever this 5-field cron expression matches (minute hour day-of-month month
    /// day-of-week), e.g. "0 22 * * *"
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
    /// How long the window stays open, e.g. 2h, 90m, 1h30m (whole minutes, at most 7d)
    #[arg(long, value_name = "DURATION", value_parser = parse_window_minutes)]
    pub duration: u32,
    /// Where the times are read: an IANA zone (Europe/Berlin), UTC, or device for each
    /// device's own zone
    #[arg(long, value_name = "ZONE")]
    pub timezone: String,
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
}

/// Earliest and latest times the server accepts for schedules: 2000-01-01 and 3000-01-01.
const MIN_TIME_MS: i64 = 946_684_800_000;
const MAX_TIME_MS: i64 = 32_503_680_000_000;

const TIME_FORMS: &str = "use RFC 3339, e.g. 2026-12-01T22:00:00Z, 2026-12-01T22:00+01:00 or \
                          2026-12-01T22:00[Europe/Berlin]";

/// A point in time as Unix milliseconds: RFC 3339 with `Z` or an offset (seconds optional),
/// or a civil time with a bracketed IANA zone. A time without either is refused rather than
/// guessed: the operator's zone and the devices' zones may differ.
pub fn parse_time_ms(input: &str) -> Result<i64, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err(format!("empty time: {TIME_FORMS}"));
    }
    let ms = if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        ts.as_millisecond()
    } else if s.ends_with(']') {
        match s.parse::<jiff::ZonedDateTime>() {
            Ok(z) => z.timestamp().as_millisecond(),
            Err(e) => return Err(format!("invalid time {input:?}: {e}")),
        }
    } else if s.parse::<jiff::civil::Date>().is_ok() && !s.contains(['T', 't', ' ']) {
        return Err(format!(
            "time {input:?} is a date without a time of day: write e.g. {s}T00:00Z"
        ));
    } else if s.parse::<jiff::civil::DateTime>().is_ok() {
        return Err(format!(
            "time {input:?} has no UTC offset: add Z (UTC), an offset like +01:00, or a zone like [Europe/Berlin]"
        ));
    } else {
        return Err(format!("invalid time {input:?}: {TIME_FORMS}"));
    };
    if !(MIN_TIME_MS..=MAX_TIME_MS).contains(&ms) {
        return Err(format!(
            "time {input:?} is outside 2000-01-01 to 3000-01-01"
        ));
    }
    Ok(ms)
}

/// A download rate in bytes per second: a number (fractions allowed) and a binary unit, `B`,
/// `KiB`, `MiB` or `GiB` (any case), optionally followed by `/s`. Decimal units (`MB`) are
/// refused rather than guessed, since they differ from the binary ones by up to 7%.
pub fn parse_rate(input: &str) -> Result<u64, String> {
    let s = input.trim();
    let body = s
        .strip_suffix("/s")
        .or_else(|| s.strip_suffix("/S"))
        .unwrap_or(s)
        .trim_end();
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, unit) = body.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "invalid rate {input:?}: expected a number and a unit, e.g. 10MiB/s or 512KiB/s"
        ));
    }
    let unit = unit.trim();
    let factor: f64 = match unit.to_ascii_lowercase().as_str() {
        "b" => 1.0,
        "kib" => 1024.0,
        "mib" => 1_048_576.0,
        "gib" => 1_073_741_824.0,
        "" => {
            return Err(format!(
                "invalid rate {input:?}: no unit; write B, KiB, MiB or GiB, e.g. 10MiB/s"
            ));
        }
        "k" | "kb" | "m" | "mb" | "g" | "gb" => {
            return Err(format!(
                "invalid rate {input:?}: {unit:?} is ambiguous; use the binary units KiB, MiB or GiB (1 MiB = 1,048,576 bytes)"
            ));
        }
        _ => {
            return Err(format!(
                "invalid rate {input:?}: unknown unit {unit:?}; use B, KiB, MiB or GiB per second"
            ));
        }
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("invalid rate {input:?}: {number:?} is not a number"))?;
    let bytes = (n * factor).floor();
    if bytes < 1.0 {
        return Err(format!(
            "invalid rate {input:?}: must be at least one byte per second"
        ));
    }
    // 2^63 bytes per second is far beyond any link; the check keeps the cast exact.
    if bytes >= 9.2e18 {
        return Err(format!("invalid rate {input:?}: too large"));
    }
    Ok(bytes as u64)
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tues" | "tuesday" => Weekday::Tue,
        "wed" | "wednesday" => Weekday::Wed,
        "thu" | "thur" | "thurs" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return None,
    })
}

const WEEK: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// Weekdays, comma-separated: names (`mon`, `Tuesday`), ranges (`mon-fri`; `fri-mon` wraps
/// over the weekend), `daily`, `weekdays` or `weekends`.
pub fn parse_weekdays(input: &str) -> Result<Days, String> {
    let mut days = Vec::new();
    for raw in input.split(',') {
        let item = raw.trim().to_ascii_lowercase();
        let unknown = |name: &str| {
            format!(
                "unknown day {name:?} in {input:?}; use mon, tue, wed, thu, fri, sat, sun, ranges like mon-fri, daily, weekdays or weekends"
            )
        };
        match item.as_str() {
            "" => {
                return Err(format!(
                    "empty day in {input:?}; separate days with commas, e.g. mon,wed,fri"
                ));
            }
            "daily" | "everyday" => days.extend(WEEK),
            "weekdays" => days.extend(&WEEK[..5]),
            "weekends" => days.extend(&WEEK[5..]),
            _ => match item.split_once('-') {
                Some((a, b)) => {
                    let from = weekday(a.trim()).ok_or_else(|| unknown(a.trim()))?;
                    let to = weekday(b.trim()).ok_or_else(|| unknown(b.trim()))?;
                    let mut i = from as usize;
                    loop {
                        days.push(WEEK[i]);
                        if WEEK[i] == to {
                            break;
                        }
                        i = (i + 1) % WEEK.len();
                    }
                }
                None => days.push(weekday(&item).ok_or_else(|| unknown(&item))?),
            },
        }
    }
    days.sort();
    days.dedup();
    Ok(Days(days))
}

/// A local time of day as the server wants it, `HH:MM` (a one-digit hour is padded).
pub fn parse_start(input: &str) -> Result<String, String> {
    let bad = || format!("invalid start {input:?}: write HH:MM, from 00:00 to 23:59");
    let (h, m) = input.trim().split_once(':').ok_or_else(bad)?;
    let digits = |s: &str, max_len: usize| {
        !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
        return Err(bad());
    }
    let (hour, minute): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if hour > 23 || minute > 59 {
        return Err(bad());
    }
    Ok(format!("{hour:02}:{minute:02}"))
}

/// A window's length in whole minutes, at most a week.
pub fn parse_window_minutes(input: &str) -> Result<u32, String> {
    let secs = parse_duration_secs(input)?;
    if secs % 60 != 0 {
        return Err(format!(
            "invalid window duration {input:?}: whole minutes only, e.g. 90m or 2h"
        ));
    }
    let minutes = secs / 60;
    if minutes > u64::from(limits::MAX_WINDOW_MINUTES) {
        return Err(format!("invalid window duration {input:?}: at most 7d"));
    }
    u32::try_from(minutes).map_err(|_| format!("invalid window duration {input:?}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, DevicesCommand};
    use clap::Parser;

    #[test]
    fn times_with_an_offset_or_a_zone_are_accepted() {
        for (input, ms) in [
            ("2026-12-01T22:00:00Z", 1_796_162_400_000),
            ("2026-12-01T22:00Z", 1_796_162_400_000),
            ("2026-12-01t22:00:00z", 1_796_162_400_000),
            ("2026-12-01 22:00:00Z", 1_796_162_400_000),
            ("2026-12-01T22:00+01:00", 1_796_158_800_000),
            ("2026-12-01T23:00:00.5+01:00", 1_796_162_400_500),
            // Berlin is at +01:00 in December and +02:00 in July.
            ("2026-12-01T23:00[Europe/Berlin]", 1_796_162_400_000),
            ("2026-07-01T00:00[Europe/Berlin]", 1_782_856_800_000),
            (" 2026-12-01T22:00:00Z ", 1_796_162_400_000),
        ] {
            assert_eq!(parse_time_ms(input), Ok(ms), "{input}");
        }
    }

    #[test]
    fn times_that_cannot_be_placed_say_why() {
        for (input, why) in [
            ("", "empty time"),
            ("2026-12-01T22:00", "no UTC offset"),
            ("2026-12-01", "without a time of day"),
            ("tomorrow", "use RFC 3339"),
            ("2026-13-01T22:00Z", "use RFC 3339"),
            ("2026-12-01T22:00[Mars/Olympus]", "invalid time"),
            ("1999-12-31T23:59:59Z", "outside 2000-01-01 to 3000-01-01"),
            ("3000-01-01T00:00:01Z", "outside"),
        ] {
            let err = parse_time_ms(input).unwrap_err();
            assert!(err.contains(why), "{input:?}: {err}");
        }
    }

    #[test]
    fn rates_in_binary_units() {
        for (input, bytes) in [
            ("10MiB/s", 10 * 1_048_576),
            ("10 MiB/s", 10 * 1_048_576),
            ("10mib", 10 * 1_048_576),
            ("512KiB/s", 512 * 1024),
            ("1.5GiB/s", 1_610_612_736),
            ("2048B/s", 2048),
            ("0.5KiB", 512),
        ] {
            assert_eq!(parse_rate(input), Ok(bytes), "{input}");
        }
        for (input, why) in [
            ("", "expected a number"),
            ("MiB/s", "expected a number"),
            ("10", "no unit"),
            ("10/s", "no unit"),
            ("10MB/s", "ambiguous"),
            ("10M", "ambiguous"),
            ("10 Mbit/s", "unknown unit"),
            ("1.2.3MiB", "not a number"),
            ("0MiB/s", "at least one byte"),
            ("0.1B", "at least one byte"),
            ("99999999999GiB", "too large"),
        ] {
            let err = parse_rate(input).unwrap_err();
            assert!(err.contains(why), "{input:?}: {err}");
        }
    }

    #[test]
    fn weekdays_lists_ranges_and_names() {
        use Weekday::*;
        for (input, days) in [
            ("mon,tue", vec![Mon, Tue]),
            ("tue,mon,tue", vec![Mon, Tue]),
            ("Mon-Fri", vec![Mon, Tue, Wed, Thu, Fri]),
            ("fri-mon", vec![Mon, Fri, Sat, Sun]),
            ("sun", vec![Sun]),
            ("daily", vec![Mon, Tue, Wed, Thu, Fri, Sat, Sun]),
            ("weekends, wednesday", vec![Wed, Sat, Sun]),
            ("weekdays", vec![Mon, Tue, Wed, Thu, Fri]),
        ] {
            assert_eq!(parse_weekdays(input), Ok(Days(days)), "{input}");
        }
        for (input, why) in [
            ("", "empty day"),
            ("mon,,tue", "empty day"),
            ("funday", "unknown day \"funday\""),
            ("mon-xyz", "unknown day \"xyz\""),
            ("1", "unknown day"),
        ] {
            let err = parse_weekdays(input).unwrap_err();
            assert!(err.contains(why), "{input:?}: {err}");
        }
    }

    #[test]
    fn start_times_and_window_lengths() {
        assert_eq!(parse_start("22:00"), Ok("22:00".into()));
        assert_eq!(parse_start("7:05"), Ok("07:05".into()));
        for bad in [
            "24:00", "07:60", "0700", "7:5", "07:00x", "", "-1:00", "007:00",
        ] {
            assert!(
                parse_start(bad).unwrap_err().contains("HH:MM"),
                "{bad:?} accepted"
            );
        }
        assert_eq!(parse_window_minutes("2h"), Ok(120));
        assert_eq!(parse_window_minutes("1h30m"), Ok(90));
        assert_eq!(parse_window_minutes("7d"), Ok(10_080));
        for (bad, why) in [
            ("90s", "whole minutes"),
            ("8d", "at most 7d"),
            ("0", "longer than zero"),
            ("2 hours", "unknown unit"),
        ] {
            let err = parse_window_minutes(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn assign_takes_one_target_and_defaults_to_required() {
        let cli = Cli::try_parse_from(["capstan", "assign", "nginx", "--group", "web"]).unwrap();
        let Command::Assign(a) = cli.command else {
            panic!("wrong command parsed");
        };
        assert_eq!(a.package.package, "nginx");
        assert_eq!(a.package.version, None);
        assert_eq!(a.target.group.as_deref(), Some("web"));
        assert_eq!(a.intent, IntentArg::Required);
        assert!(!a.leave_installed);
        let cli = Cli::try_parse_from([
            "capstan",
            "assign",
            "nginx@1:1.26-1",
            "--device",
            "d1",
            "--intent",
            "available",
            "--leave-installed",
        ])
        .unwrap();
        let Command::Assign(a) = cli.command else {
            panic!("wrong command parsed");
        };
        assert_eq!(a.package.version.as_deref(), Some("1:1.26-1"));
        assert_eq!(a.target.device.as_deref(), Some("d1"));
        assert_eq!(a.intent.wire(), Intent::Available);
        assert!(a.leave_installed);
    }

    #[test]
    fn deployment_create_reads_schedule_and_policies() {
        let cli = Cli::try_parse_from([
            "capstan",
            "deployments",
            "create",
            "office-7zip",
            "7zip@24.08",
            "--group",
            "office",
            "--intent",
            "available",
            "--available-from",
            "2026-12-01T22:00Z",
            "--deadline",
            "2026-12-01T23:00+01:00",
            "--ignore-windows",
            "--max-rate",
            "10MiB/s",
            "--site-sources-only",
            "--skip-metered",
        ])
        .unwrap();
        let Command::Deployments(DeploymentsCommand::Create(c)) = cli.command else {
            panic!("wrong command parsed");
        };
        assert_eq!(c.name, "office-7zip");
        assert_eq!(c.assignment.package.version.as_deref(), Some("24.08"));
        assert_eq!(c.available_from, Some(1_796_162_400_000));
        assert_eq!(c.deadline, Some(1_796_162_400_000));
        assert!(c.ignore_windows && c.site_sources_only && c.skip_metered);
        assert_eq!(c.max_rate, Some(10 << 20));
    }

    #[test]
    fn window_create_takes_weekly_or_cron() {
        let cli = Cli::try_parse_from([
            "capstan",
            "windows",
            "create",
            "nightly",
            "--groups",
            "web,db",
            "--weekly",
            "mon-wed",
            "--start",
            "22:00",
            "--duration",
            "2h",
            "--timezone",
            "Europe/Berlin",
        ])
        .unwrap();
        let Command::Windows(WindowsCommand::Create(w)) = cli.command else {
            panic!("wrong command parsed");
        };
        assert_eq!(w.groups, ["web", "db"]);
        assert_eq!(
            w.weekly,
            Some(Days(vec![Weekday::Mon, Weekday::Tue, Weekday::Wed]))
        );
        assert_eq!((w.start.as_deref(), w.duration), (Some("22:00"), 120));
        let cli = Cli::try_parse_from([
            "capstan",
            "maintenance-windows",
            "create",
            "n",
            "--groups",
            "g",
            "--cron",
            "0 22 * * *",
            "--duration",
            "30m",
            "--timezone",
            "device",
        ])
        .unwrap();
        let Command::Windows(WindowsCommand::Create(w)) = cli.command else {
            panic!("wrong command parsed");
        };
        assert_eq!(w.cron.as_deref(), Some("0 22 * * *"));
        assert_eq!(w.weekly, None);
    }

    #[test]
    fn device_software_commands_live_under_devices() {
        let cli =
            Cli::try_parse_from(["capstan", "devices", "software-history", "d1", "nginx"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Devices(DevicesCommand::SoftwareHistory { ref device, ref package, logs: false })
                if device == "d1" && package == "nginx"
        ));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for argv in [
            &["capstan", "assign", "nginx"][..],
            &[
                "capstan", "assign", "nginx", "--group", "g", "--device", "d",
            ],
            &[
                "capstan", "assign", "nginx", "--group", "g", "--intent", "maybe",
            ],
            &["capstan", "assign", "nginx@", "--group", "g"],
            &["capstan", "deployments", "create", "n", "p"],
            &[
                "capstan",
                "deployments",
                "create",
                "n",
                "p",
                "--group",
                "g",
                "--deadline",
                "2026-12-01T22:00",
            ],
            &[
                "capstan",
                "deployments",
                "create",
                "n",
                "p",
                "--group",
                "g",
                "--max-rate",
                "10MB/s",
            ],
            &["capstan", "deployments", "status", "d", "--limit", "0"],
            &["capstan", "deployments", "status", "d", "--limit", "1001"],
            &[
                "capstan",
                "windows",
                "create",
                "w",
                "--duration",
                "1h",
                "--timezone",
                "UTC",
                "--weekly",
                "mon",
                "--start",
                "22:00",
            ],
            &[
                "capstan",
                "windows",
                "create",
                "w",
                "--groups",
                "g",
                "--duration",
                "1h",
                "--timezone",
                "UTC",
            ],
            &[
                "capstan",
                "windows",
                "create",
                "w",
                "--groups",
                "g",
                "--weekly",
                "mon",
                "--duration",
                "1h",
                "--timezone",
                "UTC",
            ],
            &[
                "capstan",
                "windows",
                "create",
                "w",
                "--groups",
                "g",
                "--weekly",
                "mon",
                "--start",
                "22:00",
                "--cron",
                "* * * * *",
                "--duration",
                "1h",
                "--timezone",
                "UTC",
            ],
            &[
                "capstan",
                "windows",
                "create",
                "w",
                "--groups",
                "g",
                "--cron",
                "* * * * *",
                "--duration",
                "45s",
                "--timezone",
                "UTC",
            ],
        ] {
            let err = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}");
        }
    }
}
