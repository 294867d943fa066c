//! Checks on a delivered run before anything else looks at it: the Ed25519 signature of the
//! server over the exact payload bytes (with the key stored at enrollment), then the parsed
//! payload's device, idempotency key and expiry. A run that fails any check is never started,
//! so neither a compromised proxy nor a bug that routes one device's run to another can make
//! this agent execute something.

use capstan_proto::jobs::{DeliveredRun, RunPayload};
use ed25519_dalek::{Signature, VerifyingKey};

/// Why a delivered run was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The signature is missing, malformed or does not match the payload.
    BadSignature(String),
    /// Signed, but not a run payload we understand.
    Malformed(String),
    /// Meant for another device.
    OtherDevice { run_id: String, device_id: String },
    /// `idempotency_key` is not `<run id>:<attempt>`.
    BadKey { run_id: String, key: String },
    /// Past `expires_at_ms`.
    Expired { run_id: String, expires_at_ms: i64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::BadSignature(why) => write!(f, "bad signature: {why}"),
            Refusal::Malformed(why) => write!(f, "malformed run: {why}"),
            Refusal::OtherDevice { run_id, device_id } => {
                write!(f, "run {run_id} is for device {device_id}, not this one")
            }
            Refusal::BadKey { run_id, key } => {
                write!(
                    f,
                    "run {run_id} has an inconsistent idempotency key {key:?}"
                )
            }
            Refusal::Expired {
                run_id,
                expires_at_ms,
            } => write!(f, "run {run_id} expired at {expires_at_ms} (unix ms)"),
        }
    }
}

/// Parse the server's public key as stored in `credentials.json` (64 hex digits).
pub fn parse_public_key(hex_key: &str) -> Result<VerifyingKey, String> {
    let bytes =
        hex::decode(hex_key.trim()).map_err(|e| format!("signing_public_key is not hex: {e}"))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("signing_public_key has {} bytes, not 32", b.len()))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| format!("signing_public_key is not an Ed25519 key: {e}"))
}

/// Verify and parse a delivered run for `device_id` at `now_ms`.
pub fn verify_run(
    run: &DeliveredRun,
    key: &VerifyingKey,
    device_id: &str,
    now_ms: i64,
) -> Result<RunPayload, Refusal> {
    let sig_bytes = hex::decode(run.signature.trim())
        .map_err(|e| Refusal::BadSignature(format!("signature is not hex: {e}")))?;
    let signature = Signature::from_slice(&sig_bytes)
        .map_err(|e| Refusal::BadSignature(format!("malformed signature: {e}")))?;
    key.verify_strict(run.payload.as_bytes(), &signature)
        .map_err(|_| {
            Refusal::BadSignature("the signature does not match the payload".to_string())
        })?;
    let payload: RunPayload = serde_json::from_str(&run.payload)
        .map_err(|e| Refusal::Malformed(format!("payload is not a run: {e}")))?;
    if payload.device_id != device_id {
        return Err(Refusal::OtherDevice {
            run_id: payload.run_id,
            device_id: payload.device_id,
        });
    }
    if payload.attempt == 0
        || payload.idempotency_key != format!("{}:{}", payload.run_id, payload.attempt)
    {
        return Err(Refusal::BadKey {
            run_id: payload.run_id,
            key: payload.idempotency_key,
        });
    }
    if now_ms > payload.expires_at_ms {
        return Err(Refusal::Expired {
            run_id: payload.run_id,
            expires_at_ms: payload.expires_at_ms,
        });
    }
    Ok(payload)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use capstan_proto::jobs::JobSpec;
    use ed25519_dalek::{Signer, SigningKey};

    pub fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    pub fn payload(run_id: &str, device_id: &str, attempt: u32, spec: JobSpec) -> RunPayload {
        RunPayload {
            run_id: run_id.to_string(),
            job_id: "job-1".to_string(),
            device_id: device_id.to_string(),
            attempt,
            idempotency_key: format!("{run_id}:{attempt}"),
            spec,
            expires_at_ms: i64::MAX,
            sources: Vec::new(),
        }
    }

    pub fn sign(key: &SigningKey, payload: &RunPayload) -> DeliveredRun {
        let text = serde_json::to_string(payload).unwrap();
        let signature = hex::encode(key.sign(text.as_bytes()).to_bytes());
        DeliveredRun {
            payload: text,
            signature,
        }
    }

    fn spec() -> JobSpec {
        serde_json::from_value(serde_json::json!({
            "action": {"type": "command", "argv": ["true"]}
        }))
        .unwrap()
    }

    #[test]
    fn deliveries_are_checked_before_anything_runs() {
        let server = signing_key(7);
        let public = server.verifying_key();
        let good = payload("run-1", "dev-1", 1, spec());
        let tampered = {
            let mut d = sign(&server, &good);
            d.payload = d.payload.replace("\"true\"", "\"reboot\"");
            d
        };
        let mut expired = good.clone();
        expired.expires_at_ms = 999;
        let mut bad_key = good.clone();
        bad_key.idempotency_key = "run-2:1".into();
        let mut zero = good.clone();
        zero.attempt = 0;
        zero.idempotency_key = "run-1:0".into();
        let not_hex = DeliveredRun {
            payload: sign(&server, &good).payload,
            signature: "zz".into(),
        };
        let not_a_run = {
            let text = "{\"hello\":1}".to_string();
            DeliveredRun {
                signature: hex::encode(server.sign(text.as_bytes()).to_bytes()),
                payload: text,
            }
        };

        type Check = fn(&Result<RunPayload, Refusal>) -> bool;
        let cases: Vec<(&str, DeliveredRun, Check)> = vec![
            ("valid", sign(&server, &good), |r| {
                r.as_ref().is_ok_and(|p| p.run_id == "run-1")
            }),
            ("tampered payload", tampered, |r| {
                matches!(r, Err(Refusal::BadSignature(_)))
            }),
            ("wrong key", sign(&signing_key(8), &good), |r| {
                matches!(r, Err(Refusal::BadSignature(_)))
            }),
            ("signature not hex", not_hex, |r| {
                matches!(r, Err(Refusal::BadSignature(_)))
            }),
            (
                "other device",
                sign(&server, &payload("run-1", "dev-2", 1, spec())),
                |r| matches!(r, Err(Refusal::OtherDevice { device_id, .. }) if device_id == "dev-2"),
            ),
            ("expired", sign(&server, &expired), |r| {
                matches!(r, Err(Refusal::Expired { .. }))
            }),
            ("key not run:attempt", sign(&server, &bad_key), |r| {
                matches!(r, Err(Refusal::BadKey { .. }))
            }),
            ("attempt zero", sign(&server, &zero), |r| {
                matches!(r, Err(Refusal::BadKey { .. }))
            }),
            ("signed but not a run", not_a_run, |r| {
                matches!(r, Err(Refusal::Malformed(_)))
            }),
        ];
        for (name, delivered, check) in cases {
            let result = verify_run(&delivered, &public, "dev-1", 1_000);
            assert!(check(&result), "{name}: {result:?}");
        }
    }

    #[test]
    fn the_stored_public_key_is_parsed_strictly() {
        let key = signing_key(3).verifying_key();
        let hex_key = hex::encode(key.as_bytes());
        assert_eq!(parse_public_key(&hex_key).unwrap(), key);
        assert_eq!(parse_public_key(&format!(" {hex_key}\n")).unwrap(), key);
        for bad in ["", "zz", &hex_key[..62], &format!("{hex_key}00")] {
            assert!(parse_public_key(bad).is_err(), "{bad:?}");
        }
    }
}
