//! `capstan packages …`: the package catalogue. `upload` streams the installer file from disk
//! (never whole in memory) with a progress line on a terminal and prints what the server read
//! from it; the other commands list, show, edit and delete packages and their versions.
//! Deleting asks for confirmation on a terminal like the other destructive commands.

use std::io::{IsTerminal, Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use capstan_client::api::ApiClient;
use capstan_proto::error::ErrorCode;
use capstan_proto::software::{
    CreatePackageRequest, PackageListQuery, PackagePage, PackageUploadQuery, UpdatePackageRequest,
    UploadAnalysis, VersionSpec,
};
use tokio::io::AsyncReadExt as _;

use super::Context;
use crate::cli::{PackagesCommand, VersionCommand};
use crate::failure::{Failure, FailureKind};
use crate::job_output::page_footer;
use crate::{output, package_output, prompt};

/// The server's largest page.
const PAGE: u64 = 1000;
/// Bytes read from the file per chunk of the request body.
const CHUNK: usize = 256 * 1024;
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// A version spec file larger than this is certainly a mistake.
const MAX_SPEC_BYTES: u64 = 1 << 20;

fn invalid(message: String) -> anyhow::Error {
    Failure::new(FailureKind::InvalidInput, message).into()
}

pub async fn run(ctx: &Context, cmd: PackagesCommand) -> anyhow::Result<()> {
    match cmd {
        PackagesCommand::Upload {
            file,
            create,
            package,
        } => upload(ctx, &file, create, package).await,
        PackagesCommand::List {
            search,
            limit,
            offset,
            all,
        } => list(ctx, search, limit, offset, all).await,
        PackagesCommand::Show { package } => {
            let p = ctx.client()?.get_package(&package).await?;
            ctx.emit(&p, || package_output::package_detail(&p, ctx.now_ms))
        }
        PackagesCommand::Versions { package } => {
            let items = ctx.client()?.package_versions(&package).await?;
            ctx.emit(&items, || {
                package_output::versions_table(&items, ctx.now_ms)
            })
        }
        PackagesCommand::Edit {
            package,
            display_name,
            publisher,
            clear_publisher,
            description,
            clear_description,
        } => {
            let req = UpdatePackageRequest {
                display_name,
                publisher: if clear_publisher {
                    Some(None)
                } else {
                    publisher.map(Some)
                },
                description: if clear_description {
                    Some(None)
                } else {
                    description.map(Some)
                },
            };
            let p = ctx.client()?.update_package(&package, &req).await?;
            // The clock after the answer, so what was just changed is not "in 0s".
            ctx.emit(&p, || package_output::package_detail(&p, super::now_ms()))
        }
        PackagesCommand::Delete { package, yes } => delete_package(ctx, &package, yes).await,
        PackagesCommand::Version(cmd) => version(ctx, cmd).await,
    }
}

async fn list(
    ctx: &Context,
    search: Option<String>,
    limit: Option<u64>,
    offset: Option<u64>,
    all: bool,
) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let page = if all {
        let mut items = Vec::new();
        loop {
            let page = client
                .list_packages(&PackageListQuery {
                    search: search.clone(),
                    offset: Some(items.len() as u64),
                    limit: Some(limit.unwrap_or(PAGE)),
                })
                .await?;
            let (got, total) = (page.items.len(), page.total);
            items.extend(page.items);
            if got == 0 || items.len() as u64 >= total {
                break;
            }
        }
        let total = items.len() as u64;
        PackagePage {
            limit: total,
            items,
            total,
            offset: 0,
        }
    } else {
        client
            .list_packages(&PackageListQuery {
                search,
                offset,
                limit,
            })
            .await?
    };
    ctx.emit(&page.items, || {
        let mut text = package_output::packages_table(&page.items, ctx.now_ms);
        let shown = page.items.len() as u64;
        if let Some(f) = page_footer("packages", page.offset, shown, page.total) {
            text.push_str(&f);
        }
        text
    })
}

/// The redrawn progress line of an upload on a terminal.
struct UploadProgress {
    name: String,
    total: u64,
    drawn: bool,
}

impl UploadProgress {
    fn draw(&mut self, sent: u64) {
        let text = package_output::upload_progress(&self.name, sent, self.total);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{text}");
        let _ = err.flush();
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(b"\r\x1b[K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

/// The file as a request body read chunk by chunk, counting the bytes handed to the
/// connection in `sent`.
fn file_body(file: tokio::fs::File, sent: Arc<AtomicU64>) -> reqwest::Body {
    let chunks = futures_util::stream::unfold(Some(file), move |state| {
        let sent = sent.clone();
        async move {
            let mut file = state?;
            let mut buf = vec![0u8; CHUNK];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                    Some((Ok(buf), Some(file)))
                }
                // The error ends the body (and the request); nothing is read after it.
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    reqwest::Body::wrap_stream(chunks)
}

async fn upload(
    ctx: &Context,
    path: &Path,
    create: bool,
    package: Option<String>,
) -> anyhow::Result<()> {
    let shown = path.display().to_string();
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| invalid(format!("cannot read {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(invalid(format!("{shown} is not a regular file")));
    }
    if meta.len() == 0 {
        return Err(invalid(format!("{shown} is empty; nothing to upload")));
    }
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| invalid(format!("the file name of {shown} is not UTF-8 text")))?
        .to_string();
    let client = ctx.client()?;
    // A server refusing an oversized upload closes the connection while the file is still
    // being sent, which may only show as a broken pipe: check the limit first. (A server that
    // does not answer this still gets the upload, and enforces its limit itself.)
    if let Ok(limits) = client.depot_limits().await
        && meta.len() > limits.max_upload_bytes
    {
        let body = capstan_proto::error::ErrorBody {
            status: 413,
            code: capstan_proto::error::ErrorCode::PayloadTooLarge,
            message: format!(
                "{shown} is {} bytes; the depot accepts at most {} bytes per upload",
                meta.len(),
                limits.max_upload_bytes
            ),
        };
        return Err(anyhow::Error::new(capstan_client::Error::Api(body))
            .context(format!("uploading {shown}")));
    }
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| invalid(format!("cannot open {shown}: {e}")))?;
    let sent = Arc::new(AtomicU64::new(0));
    let body = file_body(file, sent.clone());
    // With --package the version goes into the named package, so the server must not create
    // the one the metadata names: upload only, then create the version here.
    let query = PackageUploadQuery {
        file_name: Some(file_name.clone()),
        create: Some(create && package.is_none()),
    };
    let request = client.upload_package(&query, body, Some(meta.len()));
    let mut analysis = if std::io::stderr().is_terminal() {
        let mut progress = UploadProgress {
            name: file_name.clone(),
            total: meta.len(),
            drawn: false,
        };
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tokio::pin!(request);
        let result = loop {
            tokio::select! {
                r = &mut request => break r,
                _ = tick.tick() => progress.draw(sent.load(Ordering::Relaxed)),
            }
        };
        progress.clear();
        result
    } else {
        request.await
    }
    .map_err(|e| anyhow::Error::new(e).context(format!("uploading {shown}")))?;
    if let Some(name) = package {
        create_in(&client, &mut analysis, &name).await?;
    }
    match &analysis.created {
        Some(v) => ctx.note(&format!(
            "Created version {} of package {}. Install it with `capstan software install {}@{} --group GROUP`.",
            v.version, v.package, v.package, v.version
        )),
        None => ctx.note(&format!(
            "Stored {file_name}; no version was created. Review the suggestion, then run the upload again with --create (the same file is stored once)."
        )),
    }
    // The clock after the answer: a version created just now is "0s ago", not "in 0s".
    let now = super::now_ms();
    ctx.emit(&analysis, || {
        package_output::upload_analysis(&analysis, now)
    })
}

/// `upload --create --package NAME`: make the suggested version a version of `name`, creating
/// the package first when it does not exist.
async fn create_in(
    client: &ApiClient,
    analysis: &mut UploadAnalysis,
    name: &str,
) -> anyhow::Result<()> {
    let Some(suggested) = analysis.suggested.clone() else {
        return Err(invalid(format!(
            "the server suggested no version for {}; nothing was created",
            analysis.file_name
        )));
    };
    match client.get_package(name).await {
        Ok(_) => {}
        Err(e) if e.code() == Some(ErrorCode::NotFound) => {
            let text = |key: &str| {
                analysis
                    .metadata
                    .as_ref()
                    .and_then(|m| m.get(key))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            let req = CreatePackageRequest {
                name: name.to_string(),
                display_name: None,
                publisher: text("vendor")
                    .or_else(|| text("manufacturer"))
                    .or_else(|| text("company"))
                    .map(|s| s.chars().take(200).collect()),
                description: text("summary").map(|s| s.chars().take(1000).collect()),
            };
            client
                .create_package(&req)
                .await
                .map_err(|e| anyhow::Error::new(e).context(format!("creating package {name}")))?;
        }
        Err(e) => return Err(e.into()),
    }
    let created = client.create_version(name, &suggested).await.map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "creating version {} of package {name}",
            suggested.version
        ))
    })?;
    analysis.package = Some(name.to_string());
    analysis.created = Some(created);
    Ok(())
}

async fn delete_package(ctx: &Context, package: &str, yes: bool) -> anyhow::Result<()> {
    if !yes && !prompt::stdin_is_terminal() {
        return Err(Failure::new(
            FailureKind::ConfirmationRequired,
            format!(
                "refusing to delete package {package} without confirmation: standard input is not a terminal; pass --yes"
            ),
        )
        .into());
    }
    let client = ctx.client()?;
    if !yes {
        let p = client.get_package(package).await?;
        let question = format!(
            "Delete package {} and its {} version(s)? Their files stay in the depot until collected.",
            output::sanitize_for_terminal(&p.name),
            p.version_count
        );
        if !prompt::confirm(&question)? {
            return Err(Failure::new(FailureKind::Aborted, "deletion cancelled").into());
        }
    }
    client.delete_package(package).await?;
    ctx.note(&format!("Package {package} deleted."));
    Ok(())
}

async fn version(ctx: &Context, cmd: VersionCommand) -> anyhow::Result<()> {
    match cmd {
        VersionCommand::Show { package, version } => {
            let v = ctx.client()?.get_version(&package, &version).await?;
            ctx.emit(&v, || package_output::version_detail(&v, ctx.now_ms))
        }
        VersionCommand::Edit {
            package,
            version,
            spec,
        } => {
            let text = read_spec_file(&spec)?;
            let spec = spec_from_json(&text).map_err(|e| invalid(format!("{spec}: {e}")))?;
            let v = ctx
                .client()?
                .update_version(&package, &version, &spec)
                .await?;
            ctx.emit(&v, || package_output::version_detail(&v, super::now_ms()))
        }
        VersionCommand::Delete {
            package,
            version,
            yes,
        } => {
            if !yes && !prompt::stdin_is_terminal() {
                return Err(Failure::new(
                    FailureKind::ConfirmationRequired,
                    format!(
                        "refusing to delete version {version} of package {package} without confirmation: standard input is not a terminal; pass --yes"
                    ),
                )
                .into());
            }
            let client = ctx.client()?;
            if !yes {
                let v = client.get_version(&package, &version).await?;
                let question = format!(
                    "Delete version {} of package {}? Its files stay in the depot until collected.",
                    output::sanitize_for_terminal(&v.version),
                    output::sanitize_for_terminal(&v.package)
                );
                if !prompt::confirm(&question)? {
                    return Err(Failure::new(FailureKind::Aborted, "deletion cancelled").into());
                }
            }
            client.delete_version(&package, &version).await?;
            ctx.note(&format!("Version {version} of package {package} deleted."));
            Ok(())
        }
    }
}

/// Read a spec file (`-`: standard input), refusing one too large to be a spec.
fn read_spec_file(path: &str) -> anyhow::Result<String> {
    let what = if path == "-" { "standard input" } else { path };
    let mut bytes = Vec::new();
    let read = if path == "-" {
        std::io::stdin()
            .take(MAX_SPEC_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_SPEC_BYTES + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| invalid(format!("reading the spec from {what}: {e}")))?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(invalid(format!(
            "the spec in {what} is larger than {MAX_SPEC_BYTES} bytes"
        )));
    }
    String::from_utf8(bytes).map_err(|_| invalid(format!("the spec in {what} is not UTF-8 text")))
}

/// A version spec from JSON: a spec itself, or an object carrying one in `spec` (what
/// `version show -o json` prints, or a create-version request), so a shown version can be
/// edited and fed back.
pub fn spec_from_json(text: &str) -> Result<VersionSpec, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let spec = match value {
        serde_json::Value::Object(mut map)
            if !map.contains_key("installer_type") && map.contains_key("spec") =>
        {
            map.remove("spec").unwrap_or_default()
        }
        other => other,
    };
    serde_json::from_value(spec).map_err(|e| format!("not a version spec: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"installer_type": "deb", "package_id": "hello",
        "detection": {"type": "package", "manager": "dpkg", "name": "hello"}}"#;

    #[test]
    fn a_spec_is_read_alone_or_from_a_shown_version() {
        let alone = spec_from_json(SPEC).unwrap();
        assert_eq!(alone.package_id.as_deref(), Some("hello"));
        assert_eq!(alone.timeout_secs, 3600, "defaults are filled in");
        let shown = format!(
            r#"{{"id": "v1", "package": "hello", "version": "1.0", "artifacts": [], "spec": {SPEC}}}"#
        );
        assert_eq!(spec_from_json(&shown).unwrap(), alone);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (text, why) in [
            ("{", "not JSON"),
            (r#"{"installer_type": "deb"}"#, "missing field `detection`"),
            (
                r#"{"installer_type": "zip", "detection": {"type": "file_exists", "path": "/x"}}"#,
                "unknown variant `zip`",
            ),
            (
                r#"{"installer_type": "deb", "detection": {"type": "file_exists", "path": "/x"}, "color": 1}"#,
                "unknown field `color`",
            ),
        ] {
            let err = spec_from_json(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
