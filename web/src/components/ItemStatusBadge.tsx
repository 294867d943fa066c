// Where a package stands on a device, as a coloured badge (deployment and device pages).
import { Badge } from "@mantine/core";
import { type ItemStatus, STATUS_COLORS } from "../services/deployments";

export function ItemStatusBadge({ status }: { status: ItemStatus }) {
  return (
    <Badge color={STATUS_COLORS[status]} variant="light" data-status={status}>
      {status.replace("_", " ")}
    </Badge>
  );
}
