//! Filled in by the conformance-suite work.
