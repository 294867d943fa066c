//! The dynamic-group rule language: a JSON tree of conditions over a device's inventory,
//! software, tags, custom fields, group memberships and status, validated when saved, compiled
//! once and evaluated per device in microseconds, with a condition-by-condition explanation.
//!
//! # The language
//!
//! A rule is one condition; a condition is a JSON object with exactly one of these keys:
//!
//! | condition | meaning |
//! |---|---|
//! | `{"all": [c, …]}` | every condition holds (an empty list is true: "all devices") |
//! | `{"any": [c, …]}` | at least one holds (an empty list is false) |
//! | `{"not": c}` | `c` does not hold |
//! | `{"field": "os.id", "op": "in", "value": ["debian", "ubuntu"]}` | a field of the device, see below |
//! | `{"software": {"name": "nginx", "source": "dpkg", "op": "version_gte", "value": "1.22"}}` | an installed package |
//! | `{"tag": "web"}` | the device has this tag (exact, case-sensitive) |
//! | `{"group": "<group id>"}` | the device is a member of that group, static or dynamic |
//!
//! ```json
//! {"all": [
//!   {"field": "os.id", "op": "in", "value": ["debian", "ubuntu"]},
//!   {"any": [{"software": {"name": "nginx", "op": "version_gte", "value": "1.22"}}, {"tag": "web"}]},
//!   {"not": {"group": "01HVZK3Q7RM3W5C2Y8P0T4N6BD"}},
//!   {"field": "status.last_seen", "op": "older_than", "value": "7d"},
//!   {"field": "network.interfaces[].ipv4", "op": "cidr", "value": "10.0.0.0/8"},
//!   {"field": "custom.owner", "op": "eq", "value": "it"}
//! ]}
//! ```
//!
//! ## Fields
//!
//! Field paths come from a fixed catalogue ([`catalogue()`], rendered by
//! [`catalogue_markdown`]): `os.*`, `hardware.*`, `virtualization.*`, `network.*`,
//! `security.*`, `performance.*` (the last check-in's measurements, including derived
//! percentages), `status.online` / `status.last_seen` / `status.enrolled_at`, `tags[]`, and
//! `custom.<name>` for every defined custom field (its type comes from its definition; dates
//! are timestamps, enums are strings limited to their values). Each field has a type —
//! string, address, number, boolean or timestamp — which decides the operators it accepts.
//!
//! A path with `[]` names every element of a list, and a condition on it holds when **any**
//! element satisfies it: `{"field": "performance.mounts[].free_percent", "op": "lt",
//! "value": 10}` is "some mount has less than 10 % free". Wrapping it in `not` therefore means
//! **no** element satisfies it. Two conditions on the same list are independent: they may be
//! satisfied by different elements. A list of plain values (`tags[]`, `os.id_like[]`,
//! `network.dns_servers[]`, `network.dns_search[]`) may also be named without `[]` to test the
//! list as a whole, with `contains` (an element equals the value), `exists` (non-empty) and
//! `not_exists`.
//!
//! **Missing values**: when a device has no value for a field (not reported, section absent,
//! empty list), every operator is false except `not_exists`, which is true. So `ne` is false on
//! a missing field; write `{"not": {"field": …, "op": "eq", …}}` to include devices without it.
//!
//! ## Operators
//!
//! | operator | field types | value |
//! |---|---|---|
//! | `eq`, `ne` | all | same type as the field (a date for timestamps) |
//! | `in` | string, address, number | a list of at most 1,000 values |
//! | `contains`, `starts_with`, `ends_with` | string, address | a string (substring tests) |
//! | `regex` | string, address | a regular expression (unanchored; `^…$` to anchor) |
//! | `gt`, `gte`, `lt`, `lte` | number, timestamp | a number, or a date |
//! | `version_eq`, `version_ne`, `version_gt`, `version_gte`, `version_lt`, `version_lte` | string | a version |
//! | `cidr` | address | a network such as `10.0.0.0/8` or `2001:db8::/32` |
//! | `exists`, `not_exists` | all | none |
//! | `older_than`, `newer_than` | timestamp | a duration: `30m`, `12h`, `7d`, `2w` (also `s`) |
//!
//! String operators are case-sensitive unless the condition has `"case_insensitive": true`.
//! Version operators on a field use the generic scheme (dotted numbers, `-pre` releases before
//! the release) unless the condition names one with `"scheme"`: `dpkg`, `rpm`, `pacman`,
//! `semver`, `windows` or `generic`. Dates are `YYYY-MM-DD` (midnight UTC), RFC 3339 times
//! (`2026-11-25T08:00:00Z`) or milliseconds since 1970. `older_than 7d` holds when the time lies
//! more than 7 days before the evaluation time, `newer_than 7d` when less; a device whose
//! `status.last_seen` is missing (never checked in) is neither. The `cidr` operator tests the
//! address part of values written with a prefix length (`10.1.2.3/24` is in `10.0.0.0/8`); an
//! IPv4 network also contains IPv4-mapped IPv6 addresses.
//!
//! ## Software
//!
//! `{"software": {"name": …}}` holds when a package of that name (case-insensitive, exact) is
//! installed; with `"source"` only packages from that source count (`dpkg`, `rpm`, `pacman`,
//! `snap`, `flatpak`, `msi`, `windows_uninstall`, `winget`, `choco`). With `"op"` (a
//! `version_*` operator) and `"value"`, some installed package of that name must satisfy the
//! comparison, using the version rules of its own source: dpkg (epochs, `~` before release),
//! rpm (`~` pre-release, `^` post-release; a value without `-release` ignores the installed
//! release, as rpm does), pacman, Windows 4-part numbers for msi / windows_uninstall / winget,
//! generic for the rest. `{"not": {"software": {"name": "telnet"}}}` is "telnet is not
//! installed".
//!
//! ## Limits and validation
//!
//! A rule is validated when saved ([`validate`]); every problem is reported with the JSON
//! pointer of the offending part (`/all/2/any/0/op`) and the valid fields, operators, keys or
//! values where that helps. Unknown keys are errors. Limits: nesting depth 16, 256 conditions,
//! 1,000 values per `in` list, 1,024 bytes per string, 512 bytes per regular expression (whose
//! compiled size is bounded too). Regular expressions use `regex-lite`, whose matching time is
//! linear in the input, so no pattern can make evaluation blow up (no backtracking).
//!
//! ## Groups referencing groups
//!
//! A rule may test membership of other groups ("in Pilot and not in Servers"). Membership of a
//! group includes the members of all its descendants, static and dynamic, so a rule that
//! references a group depends on that group's rule and on the rule of every dynamic group
//! below it. Rules are evaluated in that dependency order ([`tree_evaluation_order`],
//! [`RuleSet`]), so a device that just joined a dynamic child group counts as a member of its
//! ancestors for the rules evaluated after it. A cycle is rejected with the groups that form
//! it (`a → b → a`), including one through the tree: a rule may not reference its own
//! ancestor (`child → parent → child`), since the parent's members include the child's.
//!
//! # Using the engine
//!
//! ```
//! use capstan_core::rules::{DeviceFacts, ValidationContext, validate};
//!
//! let rule = validate(
//!     &serde_json::json!({"field": "status.online", "op": "eq", "value": true}),
//!     &ValidationContext::default(),
//! )
//! .expect("valid rule")
//! .compile();
//! let mut facts = DeviceFacts::default();
//! facts.status.online = true;
//! let index = facts.index();
//! assert!(rule.evaluate(&index, 0));
//! assert_eq!(rule.explain(&index, 0).text, "status.online is true, which equals true: true");
//! ```

mod ast;
mod catalogue;
mod deps;
mod engine;
mod facts;
mod literal;
pub mod synthetic;
mod validate;

#[cfg(test)]
mod tests;

pub use ast::{FieldCondition, Op, Rule, SoftwareCondition};
pub use catalogue::{
    FieldSpec, FieldType, RuleField, catalogue, catalogue_markdown, lookup_field, rule_fields,
};
pub use deps::{
    AttachedRule, CycleError, GroupTree, RuleSet, evaluation_order, group_dependencies,
    referenced_groups, tree_evaluation_order,
};
pub use engine::{CompiledRule, Explanation};
pub use facts::{CustomValue, DeviceFacts, DeviceStatus, FactIndex};
pub use validate::{
    CustomFieldType, RuleError, SOFTWARE_SOURCES, ValidationContext, limits, validate,
};
