// The console's Mantine theme: the defaults, with a colour and fonts from the operating system.
import { createTheme } from "@mantine/core";

export const theme = createTheme({
  primaryColor: "blue",
  defaultRadius: "sm",
});
