//! Traffic Light Protocol levels, ordered from most shareable (`white`) to least (`red`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Tlp {
    White,
    Green,
    #[default]
    Amber,
    Red,
}

impl Tlp {
    pub const ALL: [Tlp; 4] = [Tlp::White, Tlp::Green, Tlp::Amber, Tlp::Red];

    pub fn as_str(self) -> &'static str {
        match self {
            Tlp::White => "white",
            Tlp::Green => "green",
            Tlp::Amber => "amber",
            Tlp::Red => "red",
        }
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TLP level `{0}`: expected white, green, amber or red")]
pub struct UnknownTlp(pub String);

impl FromStr for Tlp {
    type Err = UnknownTlp;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lowered = text.trim().to_ascii_lowercase();
        Tlp::ALL
            .into_iter()
            .find(|tlp| tlp.as_str() == lowered)
            .ok_or_else(|| UnknownTlp(text.to_owned()))
    }
}

/// A string with the four level names, from `Tlp::ALL`, so the description cannot drift.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Tlp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "Traffic Light Protocol level, from most shareable (`white`) to least (`red`).",
            ))
            .enum_values(Some(Tlp::ALL.map(Tlp::as_str)))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Tlp {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively_and_orders() {
        assert_eq!("GREEN".parse::<Tlp>(), Ok(Tlp::Green));
        assert_eq!(" red ".parse::<Tlp>(), Ok(Tlp::Red));
        assert!("blue".parse::<Tlp>().is_err());
        assert!(Tlp::White < Tlp::Green && Tlp::Green < Tlp::Amber && Tlp::Amber < Tlp::Red);
    }

    #[test]
    fn serialises_as_its_name() {
        assert_eq!(serde_json::to_string(&Tlp::Amber).unwrap(), "\"amber\"");
        assert_eq!(serde_json::from_str::<Tlp>("\"red\"").unwrap(), Tlp::Red);
    }
}
