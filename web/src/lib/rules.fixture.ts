// A slice of the server's rule-field catalogue (`GET /api/v1/groups/rule-fields`, from
// capstan_core::rules::rule_fields) for the builder's tests: one field of each type, a list as
// a whole, an enum custom field.
import { type CatalogueEntry, type FieldDef, fieldsFromCatalogue } from "./rules";

const STRING_OPS = ["eq", "ne", "in", "contains", "starts_with", "ends_with", "regex", "version_eq", "version_ne", "version_gt", "version_gte", "version_lt", "version_lte", "exists", "not_exists"];

export const CATALOGUE: CatalogueEntry[] = [
  { name: "os.id", type: "string", operators: STRING_OPS, description: "os-release `ID`, e.g. `debian`, `ubuntu`, `rhel`." },
  { name: "os.hostname", type: "string", operators: STRING_OPS, description: "The hostname." },
  { name: "os.domain.name", type: "string", operators: STRING_OPS, description: "The domain's name." },
  { name: "os.version_id", type: "string", operators: STRING_OPS, description: "os-release `VERSION_ID`." },
  {
    name: "network.interfaces[].ipv4",
    type: "address",
    operators: ["eq", "ne", "in", "contains", "starts_with", "ends_with", "regex", "cidr", "exists", "not_exists"],
    description: "IPv4 addresses with prefix length.",
  },
  {
    name: "hardware.memory_bytes",
    type: "number",
    operators: ["eq", "ne", "in", "gt", "gte", "lt", "lte", "exists", "not_exists"],
    description: "Installed memory in bytes.",
  },
  { name: "status.online", type: "boolean", operators: ["eq", "ne", "exists", "not_exists"], description: "Connected now." },
  {
    name: "status.last_seen",
    type: "timestamp",
    operators: ["eq", "ne", "gt", "gte", "lt", "lte", "older_than", "newer_than", "exists", "not_exists"],
    description: "Last check-in.",
  },
  { name: "tags", type: "string", operators: ["contains", "exists", "not_exists"], description: "The list as a whole (tags[])." },
  { name: "custom.tier", type: "string", operators: STRING_OPS, description: "Custom field tier (choice).", values: ["gold", "silver"] },
];

export const FIELDS: FieldDef[] = fieldsFromCatalogue(CATALOGUE);
