//! Dynamic group membership: evaluating every dynamic group's rule for one device and writing
//! the joins and leaves (timeline entries and `group.member_*` events included, in one
//! transaction — see `Store::apply_dynamic_membership`).
//!
//! * **When**: right after an inventory upload, an enrollment, a tag or custom field change, a
//!   static membership change, and at a check-in of a device that was offline as far as this
//!   replica knows (the only way a check-in changes `status.online`). Ordinary check-ins —
//!   the hottest request — never evaluate: rules over `performance.*`, which every check-in
//!   refreshes, are re-evaluated by the periodic pass instead.
//!   A rule change re-evaluates every device, in pages of [`BATCH`] devices with one short
//!   transaction per device, so agent check-ins are never queued behind one long write. Every
//!   60 s [`periodic_pass`] re-evaluates all devices when some rule depends on time
//!   (`older_than` / `newer_than`) or on `status.online`, whose truth changes without any
//!   request, or on `performance.*`.
//! * **Rules** are loaded, re-validated against the current custom fields and groups, compiled
//!   and ordered in the group tree ([`RuleSet`]) once, and cached until a dynamic group, a
//!   custom field or the group tree changes ([`Membership::invalidate`]). A stored rule that no
//!   longer validates is skipped (its members stay as they are) and logged.
//! * **The tree**: membership of a group includes its descendants' members, so a rule
//!   referencing group G sees a device as a member when it is in G or below G — statically, by
//!   the fresh result of a dynamic group's rule evaluated earlier in the same pass (a dynamic
//!   child is always ordered before the rules that reference its ancestors), or by the stored
//!   membership of a dynamic group whose rule is skipped. The same facts and the same set serve
//!   the per-device evaluation, full passes, previews and explanations.
//! * **Concurrency**: evaluations of the same device on this replica are serialised by a
//!   striped async mutex; across replicas the conditional writes make repeated or concurrent
//!   evaluations converge without recording a change twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use capstan_core::rules::{
    CustomFieldType, CustomValue, DeviceFacts, DeviceStatus, Explanation, GroupTree, RuleError,
    RuleSet, ValidationContext, tree_evaluation_order, validate,
};
use capstan_proto::api::FieldType;
use capstan_proto::error::ErrorDetail;
use capstan_proto::inventory::{InventoryDocument, PerformanceSnapshot};
use capstan_store::{DeviceFactRows, DeviceRow, GroupRow, MembershipChangeOutcome};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Devices per page of a full re-evaluation.
pub const BATCH: i64 = 500;
/// Stripes of the per-device evaluation lock.
const STRIPES: usize = 64;

/// The compiled dynamic rules and what is known about them.
pub struct Compiled {
    version: u64,
    pub set: RuleSet,
    /// Name of every group (static and dynamic), for messages and timeline entries.
    pub names: BTreeMap<String, String>,
    /// Each valid dynamic rule's referenced groups.
    pub group_refs: Vec<(String, BTreeSet<String>)>,
    /// Every group's parent, as loaded with the rules.
    pub tree: GroupTree,
    /// Each valid dynamic rule's referenced field paths (`custom.owner`, `os.id`…).
    pub field_refs: Vec<(String, BTreeSet<String>)>,
    /// Some rule depends on time, on `status.online` (both change without a request) or on
    /// `performance.*` (changed by every check-in): the periodic pass must run.
    periodic: bool,
    /// Custom field definitions (types and defaults), which also invalidate the cache.
    fields: Vec<capstan_store::FieldRow>,
}

/// Per-server state of the membership evaluation (held in [`AppState`]).
pub struct Membership {
    version: AtomicU64,
    cache: Mutex<Option<Arc<Compiled>>>,
    locks: Vec<tokio::sync::Mutex<()>>,
    /// Last check-in time seen here per device, to notice offline → online at a check-in.
    last_checkin: Mutex<HashMap<String, i64>>,
    /// Full re-evaluations started by [`spawn_reevaluation`] and not finished yet.
    running: AtomicU64,
}

impl Default for Membership {
    fn default() -> Self {
        Membership {
            version: AtomicU64::new(1),
            cache: Mutex::new(None),
            locks: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            last_checkin: Mutex::new(HashMap::new()),
            running: AtomicU64::new(0),
        }
    }
}

impl Membership {
    /// Forget the compiled rules; the next evaluation reloads them.
    pub fn invalidate(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    /// How many background re-evaluations are running (tests wait for zero).
    pub fn reevaluations_running(&self) -> u64 {
        self.running.load(Ordering::SeqCst)
    }

    fn lock_for(&self, device_id: &str) -> &tokio::sync::Mutex<()> {
        let h = device_id
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        &self.locks[(h % STRIPES as u64) as usize]
    }
}

/// A rule's validation problems as an API error: every problem in `details`, and in the
/// message for clients that only show that.
pub fn rule_errors(errors: &[RuleError]) -> ApiError {
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let mut e = ApiError::validation(format!("invalid rule: {}", text.join("; ")));
    e.details = errors
        .iter()
        .map(|r| ErrorDetail {
            path: r.path.clone(),
            message: r.message.clone(),
            valid: r.valid.clone(),
        })
        .collect();
    e
}

fn custom_type(f: &capstan_store::FieldRow) -> Option<CustomFieldType> {
    Some(match FieldType::parse(&f.field_type)? {
        FieldType::String => CustomFieldType::String,
        FieldType::Number => CustomFieldType::Number,
        FieldType::Boolean => CustomFieldType::Bool,
        FieldType::Date => CustomFieldType::Date,
        FieldType::Enum => CustomFieldType::Enum(f.enum_values()),
    })
}

/// What a rule may reference right now: the defined custom fields and the existing groups.
pub async fn validation_context(
    state: &AppState,
    self_group: Option<&str>,
) -> ApiResult<(ValidationContext, Vec<GroupRow>)> {
    let groups = state.store.all_groups().await?;
    let mut ctx = ValidationContext {
        self_group: self_group.map(str::to_string),
        ..Default::default()
    };
    ctx.group_ids = groups.iter().map(|g| g.id.clone()).collect();
    for f in state.store.fields().await? {
        if let Some(t) = custom_type(&f) {
            ctx.custom_fields.insert(f.name.clone(), t);
        }
    }
    Ok((ctx, groups))
}

impl Compiled {
    /// Names of the groups whose rules reference `group` (other than itself).
    pub fn rules_using_group(&self, group: &str) -> Vec<String> {
        self.names_of(&self.group_refs, |id, refs| {
            id != group && refs.contains(group)
        })
    }

    /// Names of the groups whose rules read the field `path` (`custom.owner`).
    pub fn rules_using_field(&self, path: &str) -> Vec<String> {
        self.names_of(&self.field_refs, |_, refs| refs.contains(path))
    }

    fn names_of(
        &self,
        refs: &[(String, BTreeSet<String>)],
        uses: impl Fn(&str, &BTreeSet<String>) -> bool,
    ) -> Vec<String> {
        refs.iter()
            .filter(|(id, r)| uses(id, r))
            .map(|(id, _)| self.names.get(id).cloned().unwrap_or_else(|| id.clone()))
            .collect()
    }
}

/// The compiled rules, loading them when a dynamic group changed since the last load.
pub async fn compiled(state: &AppState) -> ApiResult<Arc<Compiled>> {
    let m = &state.membership;
    let version = m.version.load(Ordering::SeqCst);
    if let Ok(cache) = m.cache.lock()
        && let Some(c) = cache.as_ref()
        && c.version == version
    {
        return Ok(c.clone());
    }
    let (ctx, groups) = validation_context(state, None).await?;
    let names: BTreeMap<String, String> = groups
        .iter()
        .map(|g| (g.id.clone(), g.name.clone()))
        .collect();
    let tree = GroupTree::new(
        groups
            .iter()
            .map(|g| (g.id.as_str(), g.parent_id.as_deref())),
    );
    let mut rules = Vec::new();
    for g in groups.iter().filter(|g| g.kind == "dynamic") {
        let Some(text) = &g.rule else { continue };
        let json: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(group = %g.id, error = %e, "stored rule is not JSON; skipped");
                continue;
            }
        };
        let ctx = ValidationContext {
            self_group: Some(g.id.clone()),
            ..ctx.clone()
        };
        match validate(&json, &ctx) {
            Ok(rule) => rules.push((g.id.clone(), rule)),
            Err(errors) => {
                let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                tracing::warn!(group = %g.id, errors = %text.join("; "), "stored rule no longer validates; skipped");
            }
        }
    }
    // Cycles are refused when rules are saved and when the tree changes; should one exist
    // anyway (e.g. written by an older server, which did not count the tree), leave its
    // groups out rather than stop every evaluation.
    let set = loop {
        let compiled: Vec<_> = rules
            .iter()
            .map(|(id, r)| (id.clone(), r.compile()))
            .collect();
        match RuleSet::with_tree(compiled, &tree) {
            Ok(set) => break set,
            Err(cycle) => {
                tracing::warn!(error = %cycle, "group rules form a cycle; those groups are skipped");
                let members: BTreeSet<String> = cycle.cycle.into_iter().collect();
                let before = rules.len();
                rules.retain(|(id, _)| !members.contains(id));
                if rules.len() == before {
                    // Only possible with a loop in the stored tree itself, which the tree lock
                    // rules out; evaluate nothing rather than loop here.
                    tracing::error!("the group tree has a loop; dynamic groups are not evaluated");
                    rules.clear();
                }
            }
        }
    };
    let mut periodic = false;
    let mut group_refs = Vec::new();
    let mut field_refs = Vec::new();
    for (id, rule) in &rules {
        let fields = rule.referenced_fields();
        // `status.last_seen` also changes at every check-in, but its conditions are
        // `older_than` / `newer_than` (the periodic pass) or compare with fixed times that a
        // returning device crosses only after being offline, which `checked_in` catches.
        periodic |= rule.uses_clock()
            || fields.contains("status.online")
            || fields.iter().any(|f| f.starts_with("performance."));
        group_refs.push((id.clone(), capstan_core::rules::referenced_groups(rule)));
        field_refs.push((id.clone(), fields));
    }
    let fields = state.store.fields().await?;
    let c = Arc::new(Compiled {
        version,
        fields,
        set,
        names,
        group_refs,
        tree,
        field_refs,
        periodic,
    });
    if let Ok(mut cache) = m.cache.lock() {
        *cache = Some(c.clone());
    }
    Ok(c)
}

/// A change to the rules or the tree to check for cycles before it is stored.
pub struct GraphChange<'a> {
    /// The group created or changed.
    pub group: &'a str,
    /// Its new rule's referenced groups (`None`: the rule stays as it is).
    pub rule_refs: Option<BTreeSet<String>>,
    /// Its new parent (`None`: unchanged; `Some(None)`: top level).
    pub parent: Option<Option<&'a str>>,
}

/// The cycle `change` would close among the dynamic rules and the tree, as group names, if
/// any. The store checks again inside its write transaction (authoritative, also against
/// concurrent changes); this check runs first for the same message without a write.
pub fn cycle_with(c: &Compiled, change: GraphChange<'_>) -> Option<String> {
    // The changed group first, so that a cycle is named starting from it.
    let mut graph: Vec<(String, BTreeSet<String>)> = c.group_refs.clone();
    let position = graph.iter().position(|(id, _)| id == change.group);
    let current = position.map(|i| graph.remove(i));
    match (change.rule_refs, current) {
        (Some(refs), _) => graph.insert(0, (change.group.to_string(), refs)),
        (None, Some(entry)) => graph.insert(0, entry),
        (None, None) => {}
    }
    let mut tree = c.tree.clone();
    if let Some(parent) = change.parent {
        tree.set_parent(change.group, parent);
    }
    tree_evaluation_order(&graph, &tree).err().map(|e| {
        e.cycle
            .iter()
            .map(|id| c.names.get(id).cloned().unwrap_or_else(|| id.clone()))
            .collect::<Vec<_>>()
            .join(" → ")
    })
}

/// Everything a rule can see of one device, owned.
pub struct OwnedFacts {
    pub device: DeviceRow,
    inventory: Option<InventoryDocument>,
    performance: Option<PerformanceSnapshot>,
    tags: BTreeSet<String>,
    custom: BTreeMap<String, CustomValue>,
    groups: BTreeSet<String>,
    status: DeviceStatus,
    /// The device's stored dynamic memberships.
    pub stored_dynamic: BTreeSet<String>,
}

impl OwnedFacts {
    pub fn facts(&self) -> DeviceFacts<'_> {
        DeviceFacts {
            inventory: self.inventory.as_ref(),
            performance: self.performance.as_ref(),
            tags: self.tags.clone(),
            custom: self.custom.clone(),
            groups: self.groups.clone(),
            status: self.status,
        }
    }
}

/// Load one device's facts, for evaluation through `c.set`; `None` when the device does not
/// exist.
pub async fn load_facts(
    state: &AppState,
    c: &Compiled,
    device_id: &str,
    now: i64,
) -> ApiResult<Option<OwnedFacts>> {
    let Some(device) = state.store.device(device_id).await? else {
        return Ok(None);
    };
    let rows = DeviceFactRows {
        inventory: state.store.inventory(device_id).await?.map(|r| r.document),
        field_values: state
            .store
            .device_field_values(device_id)
            .await?
            .into_iter()
            .map(|v| (v.field_name, v.value))
            .collect(),
        static_groups: state.store.static_group_closure(device_id).await?,
        dynamic_groups: state.store.dynamic_memberships(device_id).await?,
        device,
    };
    Ok(Some(facts_from_rows(state, c, rows, now)))
}

/// Turn stored rows into facts for evaluation through `c.set`: parse the documents, apply
/// custom field defaults, decide whether the device is online at `now`. The groups are the
/// static ones and the stored dynamic memberships the set does not decide (rules skipped as
/// invalid), each with its ancestors; the set decides the rest fresh.
pub fn facts_from_rows(
    state: &AppState,
    c: &Compiled,
    rows: DeviceFactRows,
    now: i64,
) -> OwnedFacts {
    let DeviceFactRows {
        device,
        inventory,
        field_values,
        static_groups,
        dynamic_groups,
    } = rows;
    let inventory = inventory.and_then(|text| match serde_json::from_str(&text) {
        Ok(doc) => Some(doc),
        Err(e) => {
            tracing::warn!(device = %device.id, error = %e, "stored inventory is corrupt; evaluated without it");
            None
        }
    });
    let performance = device
        .performance
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok());
    let mut custom = BTreeMap::new();
    let defs = &c.fields;
    let types: BTreeMap<&str, FieldType> = defs
        .iter()
        .filter_map(|f| Some((f.name.as_str(), FieldType::parse(&f.field_type)?)))
        .collect();
    let mut raw: BTreeMap<String, String> = defs
        .iter()
        .filter_map(|f| Some((f.name.clone(), f.default_value.clone()?)))
        .collect();
    raw.extend(field_values);
    for (name, text) in raw {
        let Some(ty) = types.get(name.as_str()) else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let v = match (ty, value) {
            (FieldType::String | FieldType::Enum, serde_json::Value::String(s)) => {
                CustomValue::String(s)
            }
            (FieldType::Number, serde_json::Value::Number(n)) => match n.as_f64() {
                Some(f) => CustomValue::Number(f),
                None => continue,
            },
            (FieldType::Boolean, serde_json::Value::Bool(b)) => CustomValue::Bool(b),
            (FieldType::Date, serde_json::Value::Number(n)) => match n.as_i64() {
                Some(ms) => CustomValue::Date(ms),
                None => continue,
            },
            _ => continue,
        };
        custom.insert(name, v);
    }
    let mut groups: BTreeSet<String> = static_groups.into_iter().collect();
    for g in dynamic_groups.iter().filter(|g| !c.set.contains(g)) {
        groups.insert(g.clone());
        groups.extend(c.tree.ancestors(g).into_iter().map(str::to_string));
    }
    let online = device.revoked_at.is_none()
        && (device
            .last_seen_at
            .is_some_and(|t| t >= crate::devices::online_cutoff(state, now))
            || state.wake.is_waiting(&device.id));
    let status = DeviceStatus {
        online,
        last_seen_ms: device.last_seen_at,
        enrolled_at_ms: device.enrolled_at,
    };
    OwnedFacts {
        tags: device.tags().into_iter().collect(),
        device,
        inventory,
        performance,
        custom,
        groups,
        status,
        stored_dynamic: dynamic_groups.into_iter().collect(),
    }
}

/// Evaluate every dynamic rule for one device at `now` and record the difference.
pub async fn evaluate_device(
    state: &AppState,
    device_id: &str,
    now: i64,
) -> ApiResult<MembershipChangeOutcome> {
    let _guard = state.membership.lock_for(device_id).lock().await;
    let c = compiled(state).await?;
    if c.set.is_empty() {
        return Ok(MembershipChangeOutcome::default());
    }
    let Some(owned) = load_facts(state, &c, device_id, now).await? else {
        return Ok(MembershipChangeOutcome::default());
    };
    let stored = &owned.stored_dynamic;
    let (joins, leaves) = {
        let facts = owned.facts();
        let index = facts.index();
        let mut joins = Vec::new();
        let mut leaves = Vec::new();
        for (id, matched) in c.set.evaluate(&index, now) {
            let name = c.names.get(id).cloned().unwrap_or_else(|| id.to_string());
            match (matched, stored.contains(id)) {
                (true, false) => joins.push((id.to_string(), name)),
                (false, true) => leaves.push((id.to_string(), name)),
                _ => {}
            }
        }
        (joins, leaves)
    };
    Ok(state
        .store
        .apply_dynamic_membership(device_id, &joins, &leaves, now)
        .await?)
}

/// [`evaluate_device`] for a hook after a change: failures are logged, never returned, because
/// the change itself is already stored and a later evaluation repairs the membership.
pub async fn device_changed(state: &AppState, device_id: &str) {
    if let Err(e) = evaluate_device(state, device_id, crate::state::now_ms()).await {
        tracing::warn!(
            device = device_id,
            error = e.message,
            "dynamic group evaluation failed"
        );
    }
}

/// [`device_changed`] for many devices.
pub async fn devices_changed(state: &AppState, device_ids: &[String]) {
    for id in device_ids {
        device_changed(state, id).await;
    }
}

/// The hook of a check-in: evaluate only when the device was offline as far as this replica
/// knows (it just came back, so `status.online` and `status.last_seen` results can flip).
/// Everything else a check-in changes (`performance.*`) is left to the periodic pass, so the
/// hottest request stays one statement.
pub async fn checked_in(state: &AppState, device_id: &str, now: i64) {
    let previous = state
        .membership
        .last_checkin
        .lock()
        .ok()
        .and_then(|mut m| m.insert(device_id.to_string(), now));
    let was_online = previous.is_some_and(|t| t >= crate::devices::online_cutoff(state, now));
    if was_online {
        return;
    }
    match compiled(state).await {
        Ok(c) if !c.set.is_empty() => device_changed(state, device_id).await,
        Ok(_) => {}
        Err(e) => tracing::warn!(error = e.message, "loading group rules failed"),
    }
}

/// Re-evaluate every device at `now`, page by page. Each page is read in a few queries and
/// evaluated in memory; only devices whose result differs from their stored memberships are
/// evaluated again on their own (under their lock, from fresh reads) and written, each in
/// its own short transaction — so a page never holds a write lock, and a change that raced
/// with the page read is never overwritten with stale facts. Returns the number of joins and
/// leaves.
pub async fn reevaluate_all(state: &AppState, now: i64) -> ApiResult<u64> {
    let mut after = String::new();
    let mut changes = 0u64;
    loop {
        let c = compiled(state).await?;
        if c.set.is_empty() {
            break;
        }
        let ids = state.store.device_ids_after(&after, BATCH).await?;
        let Some(last) = ids.last() else { break };
        after = last.clone();
        let rows = state.store.device_facts_batch(&ids).await?;
        // Parsing a page of documents and evaluating the rules is CPU work (~150 µs a device,
        // BENCHMARKS.md): run it off the async workers so agent check-ins on the same runtime
        // are not queued behind a whole page.
        let (st, cc) = (state.clone(), c.clone());
        let differing = tokio::task::spawn_blocking(move || {
            let mut differing = Vec::new();
            for r in rows {
                let owned = facts_from_rows(&st, &cc, r, now);
                let facts = owned.facts();
                let index = facts.index();
                let differs = cc
                    .set
                    .evaluate(&index, now)
                    .into_iter()
                    .any(|(id, matched)| matched != owned.stored_dynamic.contains(id));
                if differs {
                    differing.push(owned.device.id.clone());
                }
            }
            differing
        })
        .await
        .map_err(ApiError::internal)?;
        for id in &differing {
            let out = evaluate_device(state, id, now).await?;
            changes += (out.joined.len() + out.left.len()) as u64;
        }
        tokio::task::yield_now().await;
    }
    Ok(changes)
}

/// Start a full re-evaluation in the background (after a rule or tree change).
pub fn spawn_reevaluation(state: &AppState) {
    let state = state.clone();
    state.membership.running.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match reevaluate_all(&state, crate::state::now_ms()).await {
            Ok(n) => tracing::info!(
                changes = n,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "dynamic groups re-evaluated"
            ),
            Err(e) => tracing::warn!(error = e.message, "dynamic group re-evaluation failed"),
        }
        state.membership.running.fetch_sub(1, Ordering::SeqCst);
    });
}

/// The scheduled pass: when some rule depends on time or on `status.online`, re-evaluate all
/// devices at `now`. Returns the number of joins and leaves.
pub async fn periodic_pass(state: &AppState, now: i64) -> ApiResult<u64> {
    if !compiled(state).await?.periodic {
        return Ok(0);
    }
    reevaluate_all(state, now).await
}

/// Run [`periodic_pass`] every 60 s until the process ends.
pub async fn run_periodic(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = periodic_pass(&state, crate::state::now_ms()).await {
            tracing::warn!(error = e.message, "periodic dynamic group pass failed");
        }
    }
}

/// The explanation of a group's rule for one device, from the compiled set; `None` when the
/// group has no valid rule in it.
pub async fn explain(
    state: &AppState,
    group_id: &str,
    device_id: &str,
    now: i64,
) -> ApiResult<Option<Explanation>> {
    let c = compiled(state).await?;
    let Some(owned) = load_facts(state, &c, device_id, now).await? else {
        return Err(ApiError::not_found(format!("device {device_id}")));
    };
    let facts = owned.facts();
    let index = facts.index();
    Ok(c.set.explain(group_id, &index, now))
}
