// Form pieces shared by everything that assigns software (the deployment wizard, the bulk and
// group assignment dialog): a package's version (or "latest") and the intent.
import { SegmentedControl, Select } from "@mantine/core";
import { useVersions } from "../services/packages";

export type Intent = "required" | "available" | "uninstall";

/** The versions of `pkg`, with "" meaning latest. */
export function VersionSelect({ pkg, value, onChange }: { pkg: string; value: string; onChange: (v: string) => void }) {
  const versions = useVersions(pkg);
  return (
    <Select
      label="Version"
      data={[{ value: "", label: "Latest (follows new versions)" }, ...(versions.data ?? []).map((v) => ({ value: v.version, label: v.version }))]}
      value={value}
      onChange={(v) => onChange(v ?? "")}
      allowDeselect={false}
    />
  );
}

export function IntentControl({ value, onChange }: { value: Intent; onChange: (v: Intent) => void }) {
  return (
    <SegmentedControl
      aria-label="Intent"
      data={[
        { value: "required", label: "Required: install" },
        { value: "available", label: "Available: on request" },
        { value: "uninstall", label: "Uninstall" },
      ]}
      value={value}
      onChange={(v) => onChange(v as Intent)}
    />
  );
}
