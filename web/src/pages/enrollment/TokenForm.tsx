// The form that creates an enrollment token. The conversion from form values to the API request
// (and its validation, the same rules the server applies) is a pure function, tested on its own.
import { Alert, Button, Group, NumberInput, Select, Stack, TextInput } from "@mantine/core";
import { type FormEvent, useState } from "react";
import { errorMessage } from "../../api/client";
import type { CreateEnrollmentTokenRequest } from "../../services/enrollment";

export const LIFETIMES = [
  { value: String(3600), label: "1 hour" },
  { value: String(86_400), label: "1 day" },
  { value: String(7 * 86_400), label: "7 days" },
  { value: String(30 * 86_400), label: "30 days" },
  { value: String(365 * 86_400), label: "1 year" },
];

export interface TokenFormValues {
  name: string;
  lifetimeSecs: string;
  /** Empty: unlimited. */
  maxUses: number | string;
  /** Comma- or space-separated. */
  tags: string;
}

export const EMPTY_TOKEN_FORM: TokenFormValues = { name: "", lifetimeSecs: String(7 * 86_400), maxUses: "", tags: "" };

export type TokenFormErrors = Partial<Record<keyof TokenFormValues, string>>;

const TAG = /^[\p{L}\p{N}\-_.:/=]{1,64}$/u;

export function buildTokenRequest(
  v: TokenFormValues,
): { ok: true; request: CreateEnrollmentTokenRequest } | { ok: false; errors: TokenFormErrors } {
  const errors: TokenFormErrors = {};
  const name = v.name.trim();
  if (!name) errors.name = "Give the token a name, e.g. the site or team it is for";
  else if (new TextEncoder().encode(name).length > 200) errors.name = "At most 200 characters";
  const lifetime = Number(v.lifetimeSecs);
  if (!Number.isInteger(lifetime) || lifetime <= 0) errors.lifetimeSecs = "Choose how long the token is valid";
  let maxUses: number | undefined;
  if (v.maxUses !== "" && v.maxUses !== undefined) {
    const n = Number(v.maxUses);
    if (!Number.isInteger(n) || n < 1 || n > 4_294_967_295) errors.maxUses = "A whole number of at least 1, or empty for unlimited";
    else maxUses = n;
  }
  const tags = [...new Set(v.tags.split(/[\s,]+/).filter(Boolean))];
  const bad = tags.find((t) => !TAG.test(t));
  if (bad !== undefined) errors.tags = `"${bad}" is not a valid tag: 1 to 64 letters, digits or - _ . : / =`;
  else if (tags.length > 32) errors.tags = "At most 32 tags";
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  const request: CreateEnrollmentTokenRequest = { name, expires_in_secs: lifetime, default_tags: tags };
  if (maxUses !== undefined) request.max_uses = maxUses;
  return { ok: true, request };
}

export function TokenForm({
  onSubmit,
  onCancel,
}: {
  onSubmit: (req: CreateEnrollmentTokenRequest) => Promise<unknown>;
  onCancel?: () => void;
}) {
  const [values, setValues] = useState<TokenFormValues>(EMPTY_TOKEN_FORM);
  const [errors, setErrors] = useState<TokenFormErrors>({});
  const [failure, setFailure] = useState<string | null>(null);
  const [pending, setPending] = useState(false);
  const set = (patch: Partial<TokenFormValues>) => setValues((v) => ({ ...v, ...patch }));

  async function submit(e: FormEvent) {
    e.preventDefault();
    const built = buildTokenRequest(values);
    if (!built.ok) {
      setErrors(built.errors);
      return;
    }
    setErrors({});
    setFailure(null);
    setPending(true);
    try {
      await onSubmit(built.request);
    } catch (err) {
      setFailure(errorMessage(err));
    } finally {
      setPending(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate aria-label="Create enrollment token">
      <Stack>
        {failure && (
          <Alert color="red" role="alert" title="The token was not created">
            {failure}
          </Alert>
        )}
        <TextInput
          label="Name"
          description="What the token is for, e.g. “Berlin office laptops”"
          value={values.name}
          onChange={(e) => set({ name: e.currentTarget.value })}
          error={errors.name}
          required
          data-autofocus
        />
        <Select
          label="Valid for"
          data={LIFETIMES}
          value={values.lifetimeSecs}
          onChange={(v) => set({ lifetimeSecs: v ?? "" })}
          error={errors.lifetimeSecs}
          allowDeselect={false}
        />
        <NumberInput
          label="Maximum enrollments"
          description="Empty for unlimited until it expires"
          min={1}
          allowDecimal={false}
          allowNegative={false}
          value={values.maxUses}
          onChange={(v) => set({ maxUses: v })}
          error={errors.maxUses}
        />
        <TextInput
          label="Default tags"
          description="Given to every device enrolled with this token; separate with spaces or commas"
          value={values.tags}
          onChange={(e) => set({ tags: e.currentTarget.value })}
          error={errors.tags}
        />
        <Group justify="flex-end">
          {onCancel && (
            <Button variant="default" onClick={onCancel}>
              Cancel
            </Button>
          )}
          <Button type="submit" loading={pending}>
            Create token
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
