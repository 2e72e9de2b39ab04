//! The 12 features and labels (being written).
/// Number of features.
pub const FEATURE_COUNT: usize = 12;
