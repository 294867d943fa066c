// The console's routes. URL search parameters carry page state (filters, paging, tabs), so
// every view can be bookmarked and shared.
import {
  createRootRoute,
  createRoute,
  createRouter,
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

const routeTree = rootRoute.addChildren([
  loginRoute,
  appRoute.addChildren([dashboardRoute, devicesRoute, deviceRoute, enrollmentRoute]),
]);

export const router = createRouter({ routeTree, defaultPreload: "intent", scrollRestoration: true });

declare module "@tanstack/react-router" {
  interface Register {
    router: typeof router;
  }
}
