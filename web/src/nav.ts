// Every section of the console, in navigation order. A section appears in the navigation only
// once its pages exist (`built`), so the console never shows a dead link; later increments flip
// the flag when they add the pages.
export interface Section {
  label: string;
  /** The route path of the section's main page. */
  to: string;
  built: boolean;
}

export const SECTIONS: readonly Section[] = [
  { label: "Dashboard", to: "/", built: true },
  { label: "Devices", to: "/devices", built: true },
  { label: "Groups", to: "/groups", built: true },
  { label: "Jobs", to: "/jobs", built: true },
  { label: "Software", to: "/software", built: true },
  { label: "Deployments", to: "/deployments", built: true },
  { label: "Enrollment", to: "/enrollment", built: true },
];

export function visibleSections(sections: readonly Section[] = SECTIONS): Section[] {
  return sections.filter((s) => s.built);
}
