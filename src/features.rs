//! The 12 features and labels (being written).
