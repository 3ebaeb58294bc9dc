//! Helpers shared by the examples and integration tests of lws-rs.
#![deny(missing_docs)]
