// Renders a component the way the app does (inside Mantine's provider), with a user-event
// session for typing and clicking like an operator.
import { MantineProvider } from "@mantine/core";
import { render } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { ReactElement } from "react";
import { theme } from "../src/theme";

export function renderUi(ui: ReactElement) {
  const user = userEvent.setup();
  const result = render(<MantineProvider theme={theme}>{ui}</MantineProvider>);
  return { user, ...result };
}
