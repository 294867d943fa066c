// Removing a software assignment (group and device pages): a small "Remove" button per row and
// the confirmation that says what removing does on the devices it reached.
import { Button } from "@mantine/core";
import { type AssignmentInfo, useRemoveAssignment } from "../services/deployments";
import { ConfirmDialog } from "./Confirm";

/** What removing `a` does where it applies (`where`: "this device", "the members of Web"). */
export function removalEffect(a: Pick<AssignmentInfo, "package_name" | "intent" | "leave_installed">, where: string): string {
  if (a.intent === "uninstall") return `${a.package_name} will no longer be kept off ${where}.`;
  if (a.leave_installed) {
    return `${a.package_name} stays installed on ${where} (the assignment was made with "leave installed"), but is no longer kept there.`;
  }
  return `${a.package_name} will be uninstalled from ${where} unless another assignment keeps it there.`;
}

export function RemoveAssignmentButton({ assignment, onClick }: { assignment: AssignmentInfo; onClick: () => void }) {
  return (
    <Button size="xs" variant="subtle" color="red" aria-label={`Remove the assignment of ${assignment.package_name}`} onClick={onClick}>
      Remove
    </Button>
  );
}

/** The confirmation for removing `assignment` (closed while it is null). */
export function RemoveAssignmentDialog({
  assignment,
  where,
  onClose,
}: {
  assignment: AssignmentInfo | null;
  where: string;
  onClose: () => void;
}) {
  const remove = useRemoveAssignment();
  return (
    <ConfirmDialog
      opened={assignment !== null}
      title="Remove this assignment?"
      confirmLabel="Remove assignment"
      pending={remove.isPending}
      error={remove.error}
      onClose={() => {
        remove.reset();
        onClose();
      }}
      onConfirm={() => {
        if (assignment) remove.mutate(assignment.id, { onSuccess: onClose });
      }}
    >
      {assignment && removalEffect(assignment, where)}
    </ConfirmDialog>
  );
}
