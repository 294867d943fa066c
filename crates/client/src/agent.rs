//! Placeholder: the agent-protocol client (written next).
