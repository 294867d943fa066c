// The frame of every page after login: header with the operator and logout, navigation of the
// sections that exist, and the page. Pages under it only render for a logged-in operator.
import { AppShell, Badge, Button, Group, Text, Title } from "@mantine/core";
import { Outlet, useLocation, useNavigate } from "@tanstack/react-router";
import { useEffect, useRef } from "react";
import { isUnauthenticated } from "../api/client";
import { visibleSections } from "../nav";
import { useLogout, useMe } from "../services/auth";
import { useLiveEvents } from "../services/events";
import { RouterNavLink } from "./links";
import { ErrorState, Loading } from "./QueryState";

export function Layout() {
  const me = useMe();
  const location = useLocation();
  const logout = useLogout();
  const navigate = useNavigate();

  const loggedOut = me.isError && isUnauthenticated(me.error);
  const live = useLiveEvents(me.isSuccess);
  // Once only: the layout re-renders while the navigation is pending, and `<Navigate>` would
  // start it again on every render.
  const redirecting = useRef(false);
  useEffect(() => {
    if (loggedOut && !redirecting.current) {
      redirecting.current = true;
      const here = location.href === "/" ? undefined : location.href;
      void navigate({ to: "/login", search: { redirect: here }, replace: true });
    }
  }, [loggedOut, location.href, navigate]);

  if (me.isPending || loggedOut) return <Loading label="Checking your session…" />;
  if (me.isError) {
    return <ErrorState error={me.error} title="The server did not answer" onRetry={() => me.refetch()} />;
  }

  const path = location.pathname;
  return (
    <AppShell header={{ height: 56 }} navbar={{ width: 220, breakpoint: 0 }} padding="lg">
      <AppShell.Header>
        <Group h="100%" px="lg" justify="space-between">
          <Title order={2} size="h4">
            Capstan
          </Title>
          <Group gap="sm">
            <Badge
              variant="dot"
              color={live === "live" ? "green" : "orange"}
              data-testid="live-state"
              title={live === "live" ? "Updates arrive as they happen" : "Reconnecting to the server's live updates…"}
            >
              {live}
            </Badge>
            <Text size="sm" data-testid="current-user">
              {me.data.username}
            </Text>
            <Badge variant="light">{me.data.role}</Badge>
            <Button
              variant="default"
              size="xs"
              loading={logout.isPending}
              onClick={() =>
                logout.mutate(undefined, {
                  onSettled: () => navigate({ to: "/login", search: { redirect: undefined }, replace: true }),
                })
              }
            >
              Log out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Sections">
        {visibleSections().map((s) => (
          <RouterNavLink
            key={s.to}
            to={s.to}
            label={s.label}
            active={s.to === "/" ? path === "/" : path === s.to || path.startsWith(`${s.to}/`)}
          />
        ))}
      </AppShell.Navbar>
      <AppShell.Main>
        <Outlet />
      </AppShell.Main>
    </AppShell>
  );
}
