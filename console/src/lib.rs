//! Console lib.
