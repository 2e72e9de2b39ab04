//! Chronological splits and walk-forward folds (being written).
