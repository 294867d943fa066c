//! Custom field definitions and per-device values. The server validates values against the
//! field's type and hands the store canonical JSON text (dates as Unix milliseconds), so the
//! store round-trips every type unchanged and an exact filter is a text comparison. Writes of
//! a value are guarded by the field's type in the same statement, so a value can never be
//! stored under a definition whose type changed after the server validated it.

use crate::BeginWrite;
use crate::{AuditEntry, Result, Store, StoreError, conflict_or, decode_json, with_pool};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FieldRow {
    pub name: String,
    /// `string`, `number`, `boolean`, `date` or `enum`.
    pub field_type: String,
    /// JSON array of the allowed values of an `enum` field.
    pub enum_values: String,
    /// Canonical JSON text of the default.
    pub default_value: Option<String>,
    pub required: bool,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl FieldRow {
    pub fn enum_values(&self) -> Vec<String> {
        decode_json("custom_fields.enum_values", &self.enum_values).unwrap_or_default()
    }
}

/// One stored value of a device.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FieldValueRow {
    pub field_name: String,
    /// Canonical JSON text.
    pub value: String,
}

const FIELD_COLS: &str =
    "name, field_type, enum_values, default_value, required, description, created_at, updated_at";

impl Store {
    pub async fn create_field(&self, f: &FieldRow, audit: &AuditEntry) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO custom_fields (name, field_type, enum_values, default_value, required,
                                            description, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&f.name)
            .bind(&f.field_type)
            .bind(&f.enum_values)
            .bind(&f.default_value)
            .bind(f.required)
            .bind(&f.description)
            .bind(f.created_at)
            .bind(f.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "a custom field with this name exists"))?;
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn field(&self, name: &str) -> Result<Option<FieldRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {FIELD_COLS} FROM custom_fields WHERE name = $1"
        ));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(name)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn fields(&self) -> Result<Vec<FieldRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {FIELD_COLS} FROM custom_fields ORDER BY name"
        ));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .fetch_all(pool)
            .await?))
    }

    /// Replace a definition (matched by `f.name`; `created_at` is kept). Refused with
    /// `Conflict` when the type changes while devices have values, or when `allowed` (the
    /// canonical JSON of every value the new definition accepts, for enums) excludes a value
    /// some device has.
    pub async fn update_field(
        &self,
        f: &FieldRow,
        allowed: Option<&[String]>,
        audit: &AuditEntry,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let current: Option<(String,)> =
                sqlx::query_as("SELECT field_type FROM custom_fields WHERE name = $1")
                    .bind(&f.name)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((old_type,)) = current else {
                return Err(StoreError::NotFound);
            };
            let in_use: Vec<(String,)> = sqlx::query_as(
                "SELECT DISTINCT value FROM device_field_values WHERE field_name = $1 ORDER BY value",
            )
            .bind(&f.name)
            .fetch_all(&mut *tx)
            .await?;
            if old_type != f.field_type && !in_use.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "field {} has values on devices; its type cannot change from {old_type} to {}",
                    f.name, f.field_type
                )));
            }
            if let Some(allowed) = allowed
                && let Some((bad,)) = in_use.iter().find(|(v,)| !allowed.contains(v))
            {
                return Err(StoreError::Conflict(format!(
                    "field {}: devices have the value {bad}, which the new definition does not allow",
                    f.name
                )));
            }
            // Guarded by the type read above, so a concurrent first value cannot slip in.
            let n = sqlx::query(
                "UPDATE custom_fields SET field_type = $2, enum_values = $3, default_value = $4,
                        required = $5, description = $6, updated_at = $7
                 WHERE name = $1 AND (field_type = $2 OR NOT EXISTS
                        (SELECT 1 FROM device_field_values WHERE field_name = $1))",
            )
            .bind(&f.name)
            .bind(&f.field_type)
            .bind(&f.enum_values)
            .bind(&f.default_value)
            .bind(f.required)
            .bind(&f.description)
            .bind(f.updated_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "field {} gained values concurrently; retry",
                    f.name
                )));
            }
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Delete a definition and every device's value of it.
    /// Delete a field definition and every device's value. `Conflict` while a dynamic group's
    /// rule reads the field — decided inside the transaction, under the group tree lock that
    /// rule saves also take, so a concurrent rule save cannot slip in a new reference.
    pub async fn delete_field(&self, name: &str, audit: &AuditEntry) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            crate::groups::lock_tree(&mut *tx, audit.at).await?;
            let rules: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT name, rule FROM device_groups WHERE kind = 'dynamic' ORDER BY name",
            )
            .fetch_all(&mut *tx)
            .await?;
            let users: Vec<String> = rules
                .into_iter()
                .filter(|(_, r)| {
                    r.as_deref()
                        .is_some_and(|r| crate::groups::rule_custom_fields(r).contains(name))
                })
                .map(|(g, _)| g)
                .collect();
            if !users.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "custom field {name:?} is used by the rules of group(s): {}; change those rules first",
                    users.join(", ")
                )));
            }
            let gone = sqlx::query("DELETE FROM custom_fields WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            if gone.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Set a device's value (`value_json` canonical). Written only while the field still has
    /// `field_type`: a definition changed since validation gives `Conflict`. `NotFound` when
    /// the device or the field does not exist.
    pub async fn set_field_value(
        &self,
        device_id: &str,
        name: &str,
        field_type: &str,
        value_json: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let device: Option<(String,)> = sqlx::query_as("SELECT id FROM devices WHERE id = $1")
                .bind(device_id)
                .fetch_optional(&mut *tx)
                .await?;
            if device.is_none() {
                return Err(StoreError::NotFound);
            }
            let old: Option<(String,)> = sqlx::query_as(
                "SELECT value FROM device_field_values WHERE device_id = $1 AND field_name = $2",
            )
            .bind(device_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            let n = sqlx::query(
                "INSERT INTO device_field_values (device_id, field_name, value, updated_at)
                 SELECT $1, name, $3, $4 FROM custom_fields WHERE name = $2 AND field_type = $5
                 ON CONFLICT (device_id, field_name)
                 DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(device_id)
            .bind(name)
            .bind(value_json)
            .bind(now)
            .bind(field_type)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                let exists: Option<(String,)> =
                    sqlx::query_as("SELECT name FROM custom_fields WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&mut *tx)
                        .await?;
                return Err(match exists {
                    None => StoreError::NotFound,
                    Some(_) => StoreError::Conflict(format!(
                        "field {name} changed its type concurrently; retry"
                    )),
                });
            }
            if old.as_ref().map(|o| o.0.as_str()) != Some(value_json) {
                sqlx::query(
                    "INSERT INTO device_timeline (device_id, at, kind, field, old_value, new_value, summary)
                     VALUES ($1, $2, 'custom_field_set', $3, $4, $5, $6)",
                )
                .bind(device_id)
                .bind(now)
                .bind(name)
                .bind(old.map(|o| o.0))
                .bind(value_json)
                .bind(format!("custom field {name} set to {value_json} by {}", audit.actor))
                .execute(&mut *tx)
                .await?;
            }
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Remove a device's own value, so the default applies again. `NotFound` when the device
    /// does not exist; removing an absent value changes nothing (but is audited).
    pub async fn unset_field_value(
        &self,
        device_id: &str,
        name: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let device: Option<(String,)> = sqlx::query_as("SELECT id FROM devices WHERE id = $1")
                .bind(device_id)
                .fetch_optional(&mut *tx)
                .await?;
            if device.is_none() {
                return Err(StoreError::NotFound);
            }
            let old: Option<(String,)> = sqlx::query_as(
                "DELETE FROM device_field_values WHERE device_id = $1 AND field_name = $2
                 RETURNING value",
            )
            .bind(device_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((old,)) = old {
                sqlx::query(
                    "INSERT INTO device_timeline (device_id, at, kind, field, old_value, summary)
                     VALUES ($1, $2, 'custom_field_unset', $3, $4, $5)",
                )
                .bind(device_id)
                .bind(now)
                .bind(name)
                .bind(old)
                .bind(format!("custom field {name} unset by {}", audit.actor))
                .execute(&mut *tx)
                .await?;
            }
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// A device's own values (not defaults), by field name.
    pub async fn device_field_values(&self, device_id: &str) -> Result<Vec<FieldValueRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT field_name, value FROM device_field_values WHERE device_id = $1
                 ORDER BY field_name",
            )
            .bind(device_id)
            .fetch_all(pool)
            .await?
        }))
    }
}
