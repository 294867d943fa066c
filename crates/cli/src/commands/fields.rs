//! `capstan fields …`: define, list and delete custom fields, set and unset a device's value.
//! Values are typed on the command line as text and converted by the field's type (`42`,
//! `true`, `2026-01-31`); the server validates them and names the field and type on a mismatch.

use capstan_proto::api::{CreateCustomFieldRequest, FieldType};
use serde_json::Value;

use super::Context;
use crate::cli::{FieldTypeArg, FieldsCommand};
use crate::failure::{Failure, FailureKind};
use crate::{output, prompt};

fn wire_type(t: FieldTypeArg) -> FieldType {
    match t {
        FieldTypeArg::String => FieldType::String,
        FieldTypeArg::Number => FieldType::Number,
        FieldTypeArg::Boolean => FieldType::Boolean,
        FieldTypeArg::Date => FieldType::Date,
        FieldTypeArg::Enum => FieldType::Enum,
    }
}

/// Command-line text as a JSON value of type `ty`. Text that does not fit the type is sent as
/// a string, so the server's error names the field and the expected type.
pub fn typed_value(ty: FieldType, text: &str) -> Value {
    match ty {
        FieldType::Number => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.into())),
        FieldType::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.into()),
        },
        FieldType::Date => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.into())),
        FieldType::String | FieldType::Enum => Value::String(text.into()),
    }
}

pub async fn run(ctx: &Context, cmd: FieldsCommand) -> anyhow::Result<()> {
    match cmd {
        FieldsCommand::Define {
            name,
            field_type,
            enum_values,
            default,
            required,
            description,
        } => {
            let ty = wire_type(field_type);
            let req = CreateCustomFieldRequest {
                name,
                field_type: ty,
                enum_values,
                default: default.map(|d| typed_value(ty, &d)),
                required,
                description,
            };
            let f = ctx.client()?.create_custom_field(&req).await?;
            ctx.emit(&f, || output::fields_table(std::slice::from_ref(&f)))
        }
        FieldsCommand::List => {
            let fields = ctx.client()?.list_custom_fields().await?;
            ctx.emit(&fields, || output::fields_table(&fields))
        }
        FieldsCommand::Delete { name, yes } => {
            if !yes && !prompt::stdin_is_terminal() {
                return Err(Failure::new(
                    FailureKind::ConfirmationRequired,
                    format!(
                        "refusing to delete custom field {name} without confirmation: standard input is not a terminal; pass --yes"
                    ),
                )
                .into());
            }
            if !yes
                && !prompt::confirm(&format!(
                    "Delete custom field {} and every device's value of it?",
                    output::sanitize_for_terminal(&name)
                ))?
            {
                return Err(Failure::new(FailureKind::Aborted, "deletion cancelled").into());
            }
            ctx.client()?.delete_custom_field(&name).await?;
            ctx.note(&format!("Custom field {name} deleted."));
            Ok(())
        }
        FieldsCommand::Set {
            device,
            name,
            value,
        } => {
            let client = ctx.client()?;
            let fields = client.list_custom_fields().await?;
            let Some(def) = fields.iter().find(|f| f.name == name) else {
                return Err(Failure::new(
                    FailureKind::InvalidInput,
                    format!("no custom field {name:?}; see `capstan fields list`"),
                )
                .into());
            };
            client
                .set_custom_field(&device, &name, typed_value(def.field_type, &value))
                .await?;
            ctx.note(&format!("Custom field {name} of device {device} set."));
            Ok(())
        }
        FieldsCommand::Unset { device, name } => {
            ctx.client()?.unset_custom_field(&device, &name).await?;
            ctx.note(&format!(
                "Custom field {name} of device {device} unset; its default applies."
            ));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_read_as_the_field_type() {
        let cases = [
            (FieldType::Number, "42", json!(42.0)),
            (FieldType::Number, "4x", json!("4x")),
            (FieldType::Boolean, "true", json!(true)),
            (FieldType::Boolean, "yes", json!("yes")),
            (FieldType::Date, "2026-01-31", json!("2026-01-31")),
            (
                FieldType::Date,
                "1700000000000",
                json!(1_700_000_000_000i64),
            ),
            (FieldType::String, "42", json!("42")),
            (FieldType::Enum, "gold", json!("gold")),
        ];
        for (ty, text, want) in cases {
            assert_eq!(typed_value(ty, text), want, "{ty:?} {text}");
        }
    }
}
