//! (being written)
/// Params.
#[derive(Clone, Debug, Default)]
pub struct SyntheticParams;
/// Generates bars.
pub fn generate(_p: &SyntheticParams) -> super::Bars {
    super::Bars::default()
}
