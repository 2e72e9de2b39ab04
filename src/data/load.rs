//! (being written)
use serde::{Deserialize, Serialize};
/// What to do with a bad row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadRow {
    /// Refuse the file.
    #[default]
    Error,
    /// Drop the row and count it.
    Skip,
}
/// Options.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Bad-row policy.
    pub on_bad_row: OnBadRow,
}
/// Report.
#[derive(Clone, Debug, Default)]
pub struct LoadReport;
/// Loads a CSV.
pub fn load_csv(
    path: &std::path::Path,
    _opts: &LoadOptions,
) -> crate::Result<(super::Bars, LoadReport)> {
    Err(crate::Error::Data(format!("not yet: {}", path.display())))
}
