//! Tests of revisits against the in-memory parts: see tests/revisit.rs for the simulators.
