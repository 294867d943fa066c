// The console's routes. URL search parameters carry page state (filters, paging, tabs), so
// every view can be bookmarked and shared.
import {
  createRootRoute,
  createRoute,
  createRouter,
  lazyRouteComponent,
  Outlet,
} from "@tanstack/react-router";
import { Layout } from "./components/Layout";
import { Empty } from "./components/QueryState";
import { RouterAnchor } from "./components/links";
import { DashboardPage } from "./pages/Dashboard";
import { DeviceDetailPage, parseDeviceTab } from "./pages/device/DeviceDetail";
import { DevicesPage } from "./pages/Devices";
import { EnrollmentPage } from "./pages/Enrollment";
import { LoginPage } from "./pages/Login";
import { parseDeviceListSearch } from "./services/devices";

function NotFound() {
  return (
    <Empty title="This page does not exist">
      <RouterAnchor to="/">Back to the dashboard</RouterAnchor>
    </Empty>
  );
}

const rootRoute = createRootRoute({
  component: Outlet,
  notFoundComponent: NotFound,
});

const loginRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "/login",
  validateSearch: (raw: Record<string, unknown>): { redirect?: string } =>
    typeof raw.redirect === "string" ? { redirect: raw.redirect } : {},
  component: function Login() {
    const { redirect } = loginRoute.useSearch();
    return <LoginPage redirect={redirect} />;
  },
});

const appRoute = createRoute({
  getParentRoute: () => rootRoute,
  id: "app",
  component: Layout,
});

const dashboardRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/",
  component: DashboardPage,
});

export const devicesRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/devices",
  validateSearch: parseDeviceListSearch,
  component: DevicesPage,
});

export const deviceRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/devices/$deviceId",
  validateSearch: (raw: Record<string, unknown>) => parseDeviceTab(raw),
  component: DeviceDetailPage,
});

const enrollmentRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/enrollment",
  component: EnrollmentPage,
});

// The sections below load their code when first visited, so the first page stays small.
const groupsRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/groups",
  component: lazyRouteComponent(() => import("./pages/groups/GroupsPage"), "GroupsPage"),
});

const groupRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/groups/$groupId",
  component: lazyRouteComponent(() => import("./pages/groups/GroupDetail"), "GroupDetailPage"),
});

const jobsRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/jobs",
  component: lazyRouteComponent(() => import("./pages/jobs/JobsPage"), "JobsPage"),
});

const jobRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/jobs/$jobId",
  component: lazyRouteComponent(() => import("./pages/jobs/JobDetail"), "JobDetailPage"),
});

const softwareRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/software",
  validateSearch: (raw: Record<string, unknown>): { tab?: "sources" } => (raw.tab === "sources" ? { tab: "sources" } : {}),
  component: lazyRouteComponent(() => import("./pages/software/SoftwarePage"), "SoftwarePage"),
});

const packageRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/software/$package",
  component: lazyRouteComponent(() => import("./pages/software/PackageDetail"), "PackageDetailPage"),
});

const deploymentsRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/deployments",
  validateSearch: (raw: Record<string, unknown>): { tab?: "windows"; filter?: "active" | "failing" } =>
    raw.tab === "windows"
      ? { tab: "windows" }
      : raw.filter === "active" || raw.filter === "failing"
        ? { filter: raw.filter }
        : {},
  component: lazyRouteComponent(() => import("./pages/deployments/DeploymentsPage"), "DeploymentsPage"),
});

const deploymentRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/deployments/$deploymentId",
  component: lazyRouteComponent(() => import("./pages/deployments/DeploymentDetail"), "DeploymentDetailPage"),
});

const routeTree = rootRoute.addChildren([
  loginRoute,
  appRoute.addChildren([
    dashboardRoute,
    devicesRoute,
    deviceRoute,
    enrollmentRoute,
    groupsRoute,
    groupRoute,
    jobsRoute,
    jobRoute,
    softwareRoute,
    packageRoute,
    deploymentsRoute,
    deploymentRoute,
  ]),
]);

export const router = createRouter({ routeTree, defaultPreload: "intent", scrollRestoration: true });

declare module "@tanstack/react-router" {
  interface Register {
    router: typeof router;
  }
}
