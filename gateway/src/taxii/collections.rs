//! The TAXII collections a node serves: everything a plan may see, the correlator's derived
//! indicators, and one per end-point profile. Each is a stream filter over the one log.

use std::sync::LazyLock;

use domain::filter::Profile;
use domain::Filter;
use serde_json::{json, Value};

use super::media::STIX;

/// One collection: a fixed, derived id, an alias, and the filter that selects its entries.
pub struct Collection {
    pub id: String,
    pub alias: String,
    pub title: String,
    pub description: String,
    pub filter: Filter,
}

impl Collection {
    fn new(alias: &str, title: &str, description: String, pairs: &[(&str, &str)]) -> Self {
        let filter =
            Filter::from_pairs(pairs.iter().copied()).expect("the collections' filters are valid");
        Collection {
            // UUIDv5 of the alias under the project's STIX namespace: the same on every node.
            id: uuid::Uuid::new_v5(
                &sluice_stix::NAMESPACE,
                format!("taxii-collection\n{alias}").as_bytes(),
            )
            .to_string(),
            alias: alias.to_owned(),
            title: title.to_owned(),
            description,
            filter,
        }
    }

    /// The collection resource.
    pub fn resource(&self) -> Value {
        json!({
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "alias": self.alias,
            "can_read": true,
            "can_write": false,
            "media_types": [STIX],
        })
    }
}

static COLLECTIONS: LazyLock<Vec<Collection>> = LazyLock::new(|| {
    let mut collections = vec![
        Collection::new(
            "indicators",
            "Indicators",
            "Every indicator the account's plan may see, within its replay window.".into(),
            &[],
        ),
        Collection::new(
            "correlated",
            "Correlated indicators",
            "Indicators the correlator derived from reports by several providers, with \
             `derived-from` relationships to those reports."
                .into(),
            &[("correlated", "true")],
        ),
    ];
    for profile in Profile::ALL {
        let itypes: Vec<&str> = profile
            .itypes()
            .iter()
            .map(|itype| itype.as_str())
            .collect();
        collections.push(Collection::new(
            profile.as_str(),
            &format!("Profile: {}", profile.as_str()),
            format!(
                "The `{}` end-point profile: {} with confidence at least {}.",
                profile.as_str(),
                itypes.join(", "),
                profile.min_confidence()
            ),
            &[("profile", profile.as_str())],
        ));
    }
    collections
});

/// Every collection, in the order they are listed.
pub fn all() -> &'static [Collection] {
    &COLLECTIONS
}

/// The collection with this id (or, for people typing URLs, this alias).
pub fn find(id: &str) -> Option<&'static Collection> {
    all()
        .iter()
        .find(|collection| collection.id == id || collection.alias == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_have_stable_distinct_ids() {
        let ids: std::collections::HashSet<&str> = all()
            .iter()
            .map(|collection| collection.id.as_str())
            .collect();
        assert_eq!(ids.len(), all().len());
        let everything = find("indicators").unwrap();
        assert!(everything.filter.is_empty());
        assert_eq!(find(&everything.id).unwrap().alias, "indicators");
        assert_eq!(find("correlated").unwrap().filter.correlated(), Some(true));
        assert!(find("firewall").is_some());
        assert!(find("nothing").is_none());
    }
}
