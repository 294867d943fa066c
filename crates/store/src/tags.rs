//! Bulk tag changes. Tags live in `devices.tags` (a JSON array, kept sorted), which the device
//! list reads as is and the tag filter matches exactly. Each device's update is conditional on
//! the tags it replaces, so a concurrent change (another bulk edit, a re-enrollment merging
//! token tags) makes the whole request fail with `Conflict` instead of losing an update. Each
//! added or removed tag is one timeline row; the request is one audit row; all one transaction.

use std::collections::BTreeSet;

use crate::BeginWrite;
use crate::groups::placeholders;
use crate::{AuditEntry, Result, Store, StoreError, decode_json, with_pool};

const CHUNK: usize = 500;

impl Store {
    /// Add (`add`) or remove `tags` on the given devices; returns how many devices changed.
    /// Devices that already have (or lack) every tag are left alone.
    pub async fn change_tags(
        &self,
        device_ids: &[String],
        tags: &[String],
        add: bool,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<u64> {
        let mut audit = audit.clone();
        let (kind, verb) = if add {
            ("tag_added", "added")
        } else {
            ("tag_removed", "removed")
        };
        let changed = with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut changed = 0u64;
            for chunk in device_ids.chunks(CHUNK) {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT id, tags FROM devices WHERE id IN ({})",
                    placeholders(1, chunk.len())
                ));
                let mut q = sqlx::query_as::<_, (String, String)>(sql);
                for id in chunk {
                    q = q.bind(id);
                }
                let rows = q.fetch_all(&mut *tx).await?;
                for (id, old_json) in rows {
                    let old: Vec<String> = decode_json("devices.tags", &old_json)?;
                    let mut set: BTreeSet<String> = old.iter().cloned().collect();
                    let mut touched = Vec::new();
                    for t in tags {
                        let did = if add {
                            set.insert(t.clone())
                        } else {
                            set.remove(t)
                        };
                        if did {
                            touched.push(t);
                        }
                    }
                    if touched.is_empty() {
                        continue;
                    }
                    let new: Vec<&String> = set.iter().collect();
                    let new_json =
                        serde_json::to_string(&new).map_err(|e| StoreError::Corrupt {
                            what: "devices.tags",
                            reason: e.to_string(),
                        })?;
                    let n = sqlx::query("UPDATE devices SET tags = $2 WHERE id = $1 AND tags = $3")
                        .bind(&id)
                        .bind(&new_json)
                        .bind(&old_json)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if n == 0 {
                        return Err(StoreError::Conflict(format!(
                            "the tags of device {id} changed concurrently; retry"
                        )));
                    }
                    for t in touched {
                        sqlx::query(
                            "INSERT INTO device_timeline (device_id, at, kind, field, summary)
                             VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(&id)
                        .bind(now)
                        .bind(kind)
                        .bind(t)
                        .bind(format!("tag {t} {verb} by {}", audit.actor))
                        .execute(&mut *tx)
                        .await?;
                    }
                    changed += 1;
                }
            }
            if let serde_json::Value::Object(map) = &mut audit.details {
                map.insert("matched".into(), device_ids.len().into());
                map.insert("changed".into(), changed.into());
            }
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
            changed
        });
        Ok(changed)
    }
}
