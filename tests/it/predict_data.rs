//! The vendored training data of the prediction models (`data/predict/`) is what its README
//! says: every file listed there, unmodified (its SHA-256), and nothing unlisted.

use std::path::Path;

use sha2::{Digest, Sha256};

#[test]
fn the_vendored_training_data_matches_its_provenance() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/predict");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let listed: Vec<(&str, &str)> = readme
        .lines()
        .filter_map(|line| line.split_once("  "))
        .filter(|(hash, path)| hash.len() == 64 && path.ends_with(".txt"))
        .collect();
    assert_eq!(listed.len(), 9, "{listed:?}");
    for (hash, path) in &listed {
        let bytes = std::fs::read(dir.join(path)).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), *hash, "{path} changed");
    }
    let mut present = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            for file in std::fs::read_dir(entry.path()).unwrap() {
                let name = file.unwrap().file_name().into_string().unwrap();
                present.push(format!("{}/{name}", entry.file_name().to_string_lossy()));
            }
        }
    }
    present.sort();
    let mut expected: Vec<String> = listed.iter().map(|(_, path)| path.to_string()).collect();
    expected.sort();
    assert_eq!(present, expected, "a file not in the README");
}
