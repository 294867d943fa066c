//! Placeholder: the console REST API client (written next).
