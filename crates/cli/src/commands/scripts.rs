//! `capstan scripts …`: the script library. Scripts are saved with typed parameters and every
//! edit is a new version; `scripts run` reads the script's parameters first and converts each
//! `--arg` by its declared type, so a bad value, an unknown parameter or a missing required
//! one is reported before the job is created. Running then waits like `capstan run`.

use std::collections::BTreeMap;

use capstan_proto::jobs::{
    CreateScriptRequest, Interpreter, RunScriptRequest, ScriptParameter, UpdateScriptRequest,
};

use super::Context;
use super::jobs::{after_create, env, read_script, retry, targets};
use crate::cli::{ScriptRunArgs, ScriptsCommand};
use crate::failure::{Failure, FailureKind};
use crate::job_output;
use crate::params::{shebang_interpreter, typed_value};
use crate::{output, prompt};

fn invalid(message: String) -> anyhow::Error {
    Failure::new(FailureKind::InvalidInput, message).into()
}

/// The interpreter of a body read from `path`: the one its `#!` line names, if any.
fn from_shebang(path: &str, body: &str) -> anyhow::Result<Option<Interpreter>> {
    shebang_interpreter(body).map_err(|e| invalid(format!("{path}: {e}")))
}

/// Bind `--arg NAME=VALUE` pairs to the parameters by their types.
pub fn bind_args(
    script: &str,
    params: &[ScriptParameter],
    args: &[(String, String)],
) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
    let mut out = BTreeMap::new();
    for (name, text) in args {
        let Some(p) = params.iter().find(|p| &p.name == name) else {
            let known: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            return Err(invalid(format!(
                "script {script} has no parameter {name:?}; its parameters: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        };
        if out.contains_key(name) {
            return Err(invalid(format!("--arg {name} is given twice")));
        }
        let value = typed_value(p, text).map_err(|e| invalid(format!("--arg {name}: {e}")))?;
        out.insert(name.clone(), value);
    }
    for p in params {
        let has_default = p.default.as_ref().is_some_and(|d| !d.is_null());
        if p.required && !has_default && !out.contains_key(&p.name) {
            return Err(invalid(format!(
                "parameter {} ({}) is required: pass --arg {}=VALUE",
                p.name,
                p.param_type.as_str(),
                p.name
            )));
        }
    }
    Ok(out)
}

pub async fn run(ctx: &Context, cmd: ScriptsCommand) -> anyhow::Result<()> {
    match cmd {
        ScriptsCommand::List => {
            let items = ctx.client()?.list_scripts().await?;
            ctx.emit(&items, || job_output::scripts_table(&items, ctx.now_ms))
        }
        ScriptsCommand::Show { script, version } => {
            let client = ctx.client()?;
            match version {
                Some(v) => {
                    let info = client.script_version(&script, v).await?;
                    ctx.emit(&info, || job_output::script_detail(&info, None, ctx.now_ms))
                }
                None => {
                    let info = client.get_script(&script).await?;
                    ctx.emit(&info, || {
                        job_output::script_detail(
                            &job_output::latest_version(&info),
                            Some(info.latest_version),
                            ctx.now_ms,
                        )
                    })
                }
            }
        }
        ScriptsCommand::Versions { script } => {
            let items = ctx.client()?.script_versions(&script).await?;
            ctx.emit(&items, || {
                job_output::script_versions_table(&items, ctx.now_ms)
            })
        }
        ScriptsCommand::Add {
            name,
            file,
            interpreter,
            description,
            params,
        } => {
            let body = read_script(&file)?;
            let interpreter = match interpreter {
                Some(i) => i.wire(),
                None => from_shebang(&file, &body)?.unwrap_or(Interpreter::Sh),
            };
            let req = CreateScriptRequest {
                name,
                description,
                interpreter,
                body,
                parameters: params,
            };
            let info = ctx.client()?.create_script(&req).await?;
            ctx.emit(&info, || {
                job_output::script_detail(
                    &job_output::latest_version(&info),
                    Some(info.latest_version),
                    ctx.now_ms,
                )
            })
        }
        ScriptsCommand::Edit {
            script,
            file,
            interpreter,
            description,
            rename,
            params,
            no_params,
        } => {
            let body = file.as_deref().map(read_script).transpose()?;
            let interpreter = match (interpreter, &file, &body) {
                (Some(i), _, _) => Some(i.wire()),
                (None, Some(path), Some(body)) => from_shebang(path, body)?,
                _ => None,
            };
            let parameters = if no_params {
                Some(Vec::new())
            } else {
                (!params.is_empty()).then_some(params)
            };
            let req = UpdateScriptRequest {
                name: rename,
                description,
                interpreter,
                body,
                parameters,
            };
            let info = ctx.client()?.update_script(&script, &req).await?;
            ctx.emit(&info, || {
                job_output::script_detail(
                    &job_output::latest_version(&info),
                    Some(info.latest_version),
                    ctx.now_ms,
                )
            })
        }
        ScriptsCommand::Delete { script, yes } => delete(ctx, &script, yes).await,
        ScriptsCommand::Run(args) => run_script(ctx, args).await,
    }
}

async fn run_script(ctx: &Context, args: ScriptRunArgs) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let params = match args.version {
        Some(v) => client.script_version(&args.script, v).await?.parameters,
        None => client.get_script(&args.script).await?.parameters,
    };
    let arguments = bind_args(&args.script, &params, &args.args)?;
    let req = RunScriptRequest {
        version: args.version,
        arguments,
        targets: targets(&args.targets),
        timeout_secs: args.exec.timeout,
        env: env(&args.exec),
        working_dir: args.exec.cwd.clone(),
        run_as: args.exec.run_as.clone(),
        expires_in_secs: args.exec.expires,
        retry: retry(&args.exec),
    };
    let job = client.run_script(&args.script, &req).await?;
    after_create(ctx, &client, job, args.wait.no_wait).await
}

async fn delete(ctx: &Context, script: &str, yes: bool) -> anyhow::Result<()> {
    if !yes && !prompt::stdin_is_terminal() {
        return Err(Failure::new(
            FailureKind::ConfirmationRequired,
            format!(
                "refusing to delete script {script} without confirmation: standard input is not a terminal; pass --yes"
            ),
        )
        .into());
    }
    let client = ctx.client()?;
    if !yes {
        let s = client.get_script(script).await?;
        let question = format!(
            "Delete script {} and all its {} version(s)? Jobs that ran it keep their copy.",
            output::sanitize_for_terminal(&s.name),
            s.latest_version
        );
        if !prompt::confirm(&question)? {
            return Err(Failure::new(FailureKind::Aborted, "deletion cancelled").into());
        }
    }
    client.delete_script(script).await?;
    ctx.note(&format!("Script {script} deleted."));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::parse_param;

    fn params() -> Vec<ScriptParameter> {
        ["unit:string!", "wait:number=5", "force:boolean"]
            .iter()
            .map(|s| parse_param(s).unwrap())
            .collect()
    }

    fn args(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn arguments_are_converted_by_type() {
        let bound = bind_args(
            "s",
            &params(),
            &args(&[("unit", "nginx"), ("wait", "10"), ("force", "true")]),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(bound).unwrap(),
            serde_json::json!({"unit": "nginx", "wait": 10, "force": true})
        );
    }

    #[test]
    fn bad_arguments_are_refused_with_the_reason() {
        for (given, why) in [
            (
                &[("unit", "x"), ("wait", "soon")][..],
                "--arg wait: \"soon\" is not a number",
            ),
            (&[("unit", "x"), ("force", "yes")], "is not true or false"),
            (
                &[("unit", "x"), ("nope", "1")],
                "no parameter \"nope\"; its parameters: unit, wait, force",
            ),
            (&[("wait", "1")], "parameter unit (string) is required"),
            (&[("unit", "a"), ("unit", "b")], "given twice"),
        ] {
            let err = bind_args("s", &params(), &args(given)).unwrap_err();
            let report = crate::failure::classify(&err);
            assert!(
                report.message.contains(why),
                "{given:?}: {}",
                report.message
            );
            assert_eq!(report.code, "invalid_input");
        }
    }
}
