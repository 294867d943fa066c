// Enrollment tokens: the list with each token's state, creating one (its secret and the
// one-line install command are shown once, ready to copy), and revoking with confirmation.
import {
  Alert,
  Badge,
  Button,
  Code,
  CopyButton,
  Group,
  Modal,
  Stack,
  Table,
  Text,
  Title,
} from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useState } from "react";
import { errorMessage } from "../api/client";
import { Empty, ErrorState, Loading } from "../components/QueryState";
import { formatDateTime } from "../lib/format";
import { useMe } from "../services/auth";
import {
  type CreatedEnrollmentToken,
  type EnrollmentTokenInfo,
  useCreateEnrollmentToken,
  useEnrollmentTokens,
  useRevokeEnrollmentToken,
} from "../services/enrollment";
import { TokenForm } from "./enrollment/TokenForm";

const STATE_COLORS: Record<string, string> = { active: "green", expired: "gray", exhausted: "orange", revoked: "red" };

function Secret({ label, value }: { label: string; value: string }) {
  return (
    <Stack gap={4}>
      <Group justify="space-between">
        <Text fw={500} size="sm">
          {label}
        </Text>
        <CopyButton value={value}>
          {({ copied, copy }) => (
            <Button size="xs" variant={copied ? "filled" : "light"} color={copied ? "teal" : "blue"} onClick={copy}>
              {copied ? "Copied" : `Copy ${label.toLowerCase()}`}
            </Button>
          )}
        </CopyButton>
      </Group>
      <Code block aria-label={label} style={{ whiteSpace: "pre-wrap", wordBreak: "break-all" }}>
        {value}
      </Code>
    </Stack>
  );
}

function Created({ token, onDone }: { token: CreatedEnrollmentToken; onDone: () => void }) {
  return (
    <Stack>
      <Alert color="yellow" title="Copy it now">
        The token is shown only this once; the server keeps only a hash of it.
      </Alert>
      <Secret label="Install command" value={token.install_command} />
      <Secret label="Token" value={token.token} />
      <Group justify="flex-end">
        <Button onClick={onDone}>Done</Button>
      </Group>
    </Stack>
  );
}

function RevokeDialog({ token, onClose }: { token: EnrollmentTokenInfo | null; onClose: () => void }) {
  const revoke = useRevokeEnrollmentToken();
  return (
    <Modal opened={token !== null} onClose={onClose} title="Revoke enrollment token?">
      {token && (
        <Stack>
          <Text size="sm">
            Machines can no longer enroll with “{token.name}”. Devices already enrolled with it keep working. This
            cannot be undone.
          </Text>
          {revoke.isError && (
            <Alert color="red" role="alert">
              {errorMessage(revoke.error)}
            </Alert>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button
              color="red"
              loading={revoke.isPending}
              onClick={() =>
                revoke.mutate(token.id, {
                  onSuccess: () => {
                    notifications.show({ message: `Token “${token.name}” revoked`, color: "green" });
                    onClose();
                  },
                })
              }
            >
              Revoke
            </Button>
          </Group>
        </Stack>
      )}
    </Modal>
  );
}

export function EnrollmentPage() {
  const tokens = useEnrollmentTokens();
  const create = useCreateEnrollmentToken();
  const me = useMe();
  const canManage = me.data?.role === "admin" || me.data?.role === "operator";
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<CreatedEnrollmentToken | null>(null);
  const [revoking, setRevoking] = useState<EnrollmentTokenInfo | null>(null);
  const closeCreate = () => {
    setCreating(false);
    setCreated(null);
  };

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={1} size="h2">
          Enrollment tokens
        </Title>
        {canManage && <Button onClick={() => setCreating(true)}>Create token</Button>}
      </Group>
      <Text c="dimmed" size="sm">
        A token lets machines enroll as devices. Run the install command it comes with on a Linux machine as root.
      </Text>

      {tokens.isPending ? (
        <Loading label="Loading tokens…" />
      ) : tokens.isError ? (
        <ErrorState error={tokens.error} onRetry={() => tokens.refetch()} />
      ) : tokens.data.length === 0 ? (
        <Empty title="No enrollment tokens yet">Create one to enroll your first machine.</Empty>
      ) : (
        <Table striped aria-label="Enrollment tokens">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th>Uses</Table.Th>
              <Table.Th>Expires</Table.Th>
              <Table.Th>Default tags</Table.Th>
              <Table.Th>Created</Table.Th>
              {canManage && <Table.Th aria-label="Actions" />}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {[...tokens.data]
              .sort((a, b) => b.created_at_ms - a.created_at_ms)
              .map((t) => (
                <Table.Tr key={t.id}>
                  <Table.Td>{t.name}</Table.Td>
                  <Table.Td>
                    <Badge color={STATE_COLORS[t.state] ?? "gray"} variant="light">
                      {t.state}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    {t.uses}
                    {t.max_uses !== null && t.max_uses !== undefined ? ` of ${t.max_uses}` : ""}
                  </Table.Td>
                  <Table.Td>{formatDateTime(t.expires_at_ms)}</Table.Td>
                  <Table.Td>
                    <Group gap={4}>
                      {t.default_tags.map((tag) => (
                        <Badge key={tag} variant="outline" size="sm" tt="none">
                          {tag}
                        </Badge>
                      ))}
                    </Group>
                  </Table.Td>
                  <Table.Td>
                    {formatDateTime(t.created_at_ms)}
                    <Text size="xs" c="dimmed">
                      {t.created_by}
                    </Text>
                  </Table.Td>
                  {canManage && (
                    <Table.Td>
                      {t.state === "active" && (
                        <Button
                          size="xs"
                          variant="light"
                          color="red"
                          onClick={() => setRevoking(t)}
                          aria-label={`Revoke ${t.name}`}
                        >
                          Revoke
                        </Button>
                      )}
                    </Table.Td>
                  )}
                </Table.Tr>
              ))}
          </Table.Tbody>
        </Table>
      )}

      <Modal
        opened={creating}
        onClose={closeCreate}
        title={created ? "Token created" : "Create enrollment token"}
        size="lg"
        closeOnClickOutside={!created}
      >
        {created ? (
          <Created token={created} onDone={closeCreate} />
        ) : (
          <TokenForm onSubmit={async (req) => setCreated(await create.mutateAsync(req))} onCancel={closeCreate} />
        )}
      </Modal>
      <RevokeDialog token={revoking} onClose={() => setRevoking(null)} />
    </Stack>
  );
}
