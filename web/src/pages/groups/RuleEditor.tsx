// The rule builder with its live preview: how many devices the rule matches right now and the
// first of them, re-asked of the server a moment after each edit. A rule the server refuses
// shows its reason (with the JSON pointer of the offending part) instead of a count.
import { Alert, Anchor, Badge, Code, Group, Loader, Stack, Text } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { errorMessage } from "../../api/client";
import { ErrorState, Loading } from "../../components/QueryState";
import { fieldsFromCatalogue, type RuleNode, toRuleJson } from "../../lib/rules";
import { useGroups, usePreview, useRuleFields } from "../../services/groups";
import { RuleBuilder } from "./RuleBuilder";

/** What the builder offers: other groups, and the server's field catalogue (custom fields included). */
export function useBuilderContext(excludeGroup?: string) {
  const groups = useGroups();
  const catalogue = useRuleFields();
  return {
    groups: (groups.data ?? []).filter((g) => g.id !== excludeGroup).map((g) => ({ value: g.id, label: g.name })),
    fields: fieldsFromCatalogue(catalogue.data ?? []),
    catalogue,
  };
}

export function RuleEditor({ value, onChange, excludeGroup }: { value: RuleNode; onChange: (n: RuleNode) => void; excludeGroup?: string }) {
  const ctx = useBuilderContext(excludeGroup);
  const json = toRuleJson(value, ctx.fields);
  const [debounced] = useDebouncedValue(JSON.stringify(json), 400);
  // Values get their JSON type from the catalogue; without it the preview would be misleading.
  const preview = usePreview(ctx.catalogue.isSuccess ? (JSON.parse(debounced) as unknown) : undefined);
  if (ctx.catalogue.isPending) return <Loading label="Loading the rule fields…" />;
  if (ctx.catalogue.isError) return <ErrorState error={ctx.catalogue.error} onRetry={() => ctx.catalogue.refetch()} />;
  return (
    <Stack gap="xs">
      <RuleBuilder value={value} onChange={onChange} ctx={ctx} />
      <Group gap="xs" aria-live="polite" data-testid="rule-preview">
        {preview.isFetching && <Loader size="xs" />}
        {preview.isError ? null : preview.data ? (
          <>
            <Badge size="lg" variant="light" data-testid="preview-count">
              {preview.data.total.toLocaleString()} matching device{preview.data.total === 1 ? "" : "s"}
            </Badge>
            <Text size="sm" c="dimmed">
              {preview.data.devices
                .slice(0, 5)
                .map((d) => d.hostname)
                .join(", ")}
              {preview.data.total > 5 ? ", …" : ""}
            </Text>
          </>
        ) : null}
      </Group>
      {preview.isError && (
        <Alert color="orange" title="The server does not accept this rule yet" role="alert">
          {errorMessage(preview.error)}
        </Alert>
      )}
      <details>
        <summary>
          <Anchor component="span" size="sm">
            Rule as JSON
          </Anchor>
        </summary>
        <Code block>{JSON.stringify(json, null, 2)}</Code>
      </details>
    </Stack>
  );
}
