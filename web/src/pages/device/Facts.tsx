// A two-column table of labelled facts; absent values show as a dash.
import { Table } from "@mantine/core";
import type { ReactNode } from "react";

export type Fact = [label: string, value: ReactNode];

export function Facts({ facts, label }: { facts: Fact[]; label: string }) {
  return (
    <Table aria-label={label} withRowBorders={false} verticalSpacing={4} layout="fixed" maw={720}>
      <Table.Tbody>
        {facts.map(([k, v]) => (
          <Table.Tr key={k}>
            <Table.Th scope="row" w={220} fw={500} c="dimmed">
              {k}
            </Table.Th>
            <Table.Td>{v === null || v === undefined || v === "" ? "—" : v}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

export function yesNo(v: boolean | null | undefined): string {
  if (v === null || v === undefined) return "—";
  return v ? "yes" : "no";
}
