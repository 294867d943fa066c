// Choosing targets for jobs and deployments: groups from the group list, devices by hostname
// search on the server (the list may hold 50,000 devices, so it is never loaded whole).
import { MultiSelect, Select } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { fetchDevices } from "../services/devices";
import { useGroups } from "../services/groups";

function useDeviceOptions(search: string, keep: readonly { value: string; label: string }[]) {
  const [debounced] = useDebouncedValue(search.trim(), 250);
  const found = useQuery({
    queryKey: ["devices", "picker", debounced],
    queryFn: () => fetchDevices({ offset: 0, limit: 20, ...(debounced ? { search: debounced } : {}) }),
  });
  const options = new Map(keep.map((o) => [o.value, o]));
  for (const d of found.data?.items ?? []) options.set(d.id, { value: d.id, label: d.hostname });
  return [...options.values()];
}

export function GroupMultiPicker({ value, onChange, label = "Groups" }: { value: string[]; onChange: (v: string[]) => void; label?: string }) {
  const groups = useGroups();
  return (
    <MultiSelect
      label={label}
      placeholder={value.length ? undefined : "Pick groups"}
      data={(groups.data ?? []).map((g) => ({ value: g.id, label: `${g.name} (${g.members})` }))}
      value={value}
      onChange={onChange}
      searchable
      clearable
    />
  );
}

export function DeviceMultiPicker({
  value,
  onChange,
  label = "Devices",
  known = [],
}: {
  value: string[];
  onChange: (v: string[]) => void;
  label?: string;
  /** Labels of devices already in `value` (preselected elsewhere), shown instead of their ids. */
  known?: { value: string; label: string }[];
}) {
  const [search, setSearch] = useState("");
  const [chosen, setChosen] = useState<{ value: string; label: string }[]>(known);
  const data = useDeviceOptions(search, chosen);
  return (
    <MultiSelect
      label={label}
      placeholder={value.length ? undefined : "Search hostnames"}
      data={data}
      value={value}
      onChange={(ids) => {
        setChosen(data.filter((o) => ids.includes(o.value)));
        onChange(ids);
      }}
      searchable
      searchValue={search}
      onSearchChange={setSearch}
      filter={({ options }) => options}
      clearable
    />
  );
}

export function DevicePicker({ value, onChange, label = "Device" }: { value: string; onChange: (v: string) => void; label?: string }) {
  const [search, setSearch] = useState("");
  const [chosen, setChosen] = useState<{ value: string; label: string }[]>([]);
  const data = useDeviceOptions(search, chosen);
  return (
    <Select
      label={label}
      placeholder="Search hostnames"
      data={data}
      value={value || null}
      onChange={(id) => {
        setChosen(data.filter((o) => o.value === id));
        onChange(id ?? "");
      }}
      searchable
      searchValue={search}
      onSearchChange={setSearch}
      filter={({ options }) => options}
      clearable
    />
  );
}
