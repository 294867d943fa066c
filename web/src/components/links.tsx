// Mantine components that navigate with the router: client-side, with typed `to`.
import {
  Anchor,
  type AnchorProps,
  Button,
  type ButtonProps,
  NavLink,
  type NavLinkProps,
} from "@mantine/core";
import { createLink, type LinkComponent } from "@tanstack/react-router";
import type { AnchorHTMLAttributes, Ref } from "react";

type AnchorAttrs = Omit<AnchorHTMLAttributes<HTMLAnchorElement>, "color" | "style"> & {
  ref?: Ref<HTMLAnchorElement>;
};

function AnchorBase(props: AnchorProps & AnchorAttrs) {
  return <Anchor component="a" {...props} />;
}
function ButtonBase(props: ButtonProps & AnchorAttrs) {
  return <Button component="a" {...props} />;
}
function NavLinkBase(props: NavLinkProps & AnchorAttrs) {
  return <NavLink component="a" {...props} />;
}

const CreatedAnchor = createLink(AnchorBase);
const CreatedButton = createLink(ButtonBase);
const CreatedNavLink = createLink(NavLinkBase);

export const RouterAnchor: LinkComponent<typeof AnchorBase> = (props) => <CreatedAnchor {...props} />;
export const RouterButton: LinkComponent<typeof ButtonBase> = (props) => <CreatedButton {...props} />;
export const RouterNavLink: LinkComponent<typeof NavLinkBase> = (props) => <CreatedNavLink {...props} />;
