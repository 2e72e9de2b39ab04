//! Configuration schema (being written).
