// Entry point: providers (theme, data cache, notifications) around the router.
import "@mantine/core/styles.css";
import "@mantine/notifications/styles.css";
import { MantineProvider } from "@mantine/core";
import { Notifications } from "@mantine/notifications";
import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { RouterProvider } from "@tanstack/react-router";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { isUnauthenticated } from "./api/client";
import { router } from "./router";
import { authKeys } from "./services/auth";
import { theme } from "./theme";

// A session that expires while a page is open: any 401 re-checks who is logged in, and the
// layout sends the operator to the login page.
function onAuthError(e: unknown) {
  if (isUnauthenticated(e)) {
    void queryClient.invalidateQueries({ queryKey: authKeys.me });
  }
}

const queryClient: QueryClient = new QueryClient({
  queryCache: new QueryCache({
    onError: (e, query) => {
      // The session check itself must not trigger another session check.
      if (query.queryKey[0] !== authKeys.me[0]) onAuthError(e);
    },
  }),
  mutationCache: new MutationCache({ onError: onAuthError }),
  defaultOptions: {
    queries: {
      retry: (count, e) => !isUnauthenticated(e) && count < 2,
      refetchOnWindowFocus: true,
    },
  },
});

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <MantineProvider theme={theme}>
        <Notifications />
        <QueryClientProvider client={queryClient}>
          <RouterProvider router={router} />
        </QueryClientProvider>
      </MantineProvider>
    </StrictMode>,
  );
}
