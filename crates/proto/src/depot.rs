//! Wire types of the software depot's blob API (`/api/v1/depot/…`): content-addressed blobs
//! named by the lowercase hex SHA-256 of their bytes, their metadata and pages of them, and
//! the report of a garbage collection. [`is_sha256_hex`] is the one definition of a valid
//! blob name, shared by the server (which builds file paths from it) and future clients.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Whether `s` is a blob name: exactly 64 lowercase hexadecimal digits. Uppercase is refused
/// so that one blob has exactly one name (and one path on disk).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobInfo {
    /// Lowercase hex SHA-256 of the content; the blob's name.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    pub created_at_ms: i64,
    /// Who first uploaded it (`user:<username>`).
    pub created_by: String,
}

/// The answer to an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobUploaded {
    pub sha256: String,
    pub size: u64,
    /// `false` when the depot already held these bytes (the upload was de-duplicated).
    pub created: bool,
}

/// Query of `POST /api/v1/depot/blobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlobUploadQuery {
    /// The expected SHA-256 (lowercase hex). When the received bytes hash differently the
    /// upload is rejected and nothing is kept.
    pub sha256: Option<String>,
}

/// One page of blobs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobPage {
    pub items: Vec<BlobInfo>,
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
}

/// Query of `GET /api/v1/depot/blobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlobListQuery {
    pub offset: Option<u64>,
    /// Page size, 1..=1000, default 100.
    pub limit: Option<u64>,
}

/// The depot's limits, so clients can refuse a file before sending it (a server that refuses an
/// upload early closes the connection, and a client still sending may only see a broken pipe).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DepotLimits {
    /// The largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
}

/// What a garbage collection of the depot did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GcReport {
    /// Abandoned upload files (older than one hour) removed.
    pub temp_files_removed: u64,
    /// Stored blob files that no blob record names, removed.
    pub orphan_blobs_removed: u64,
    /// Bytes freed by both kinds of removal.
    pub bytes_freed: u64,
    /// Blob records whose file is missing from storage (reported, not changed: the bytes
    /// must be uploaded again or the record deleted).
    pub missing_blobs: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::is_sha256_hex;

    #[test]
    fn only_64_lowercase_hex_digits_name_a_blob() {
        let good = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(is_sha256_hex(good));
        for bad in [
            "",
            "..",
            &good[..63],
            &format!("{good}0"),
            &good.to_ascii_uppercase(),
            &format!("../{}", &good[3..]),
            &good.replace('e', "g"),
        ] {
            assert!(!is_sha256_hex(bad), "{bad:?}");
        }
    }
}
