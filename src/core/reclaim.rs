//! Estimating the storage a deletion frees. ECR stores each blob once per repository, and
//! consecutive cache manifests share most layers, so the sum of deleted manifests' sizes overstates
//! it: only blobs that no remaining manifest references are freed.

use std::collections::{HashMap, HashSet};

use super::manifest::Blob;

/// Bytes of blobs referenced by `deleted` manifests and by no other manifest in `blobs`, which
/// should hold every single manifest of the repository (deleted and kept).
pub fn reclaimed_bytes(deleted: &[String], blobs: &HashMap<String, Vec<Blob>>) -> u64 {
    let deleted_set: HashSet<&String> = deleted.iter().collect();
    let still_used: HashSet<&str> = blobs
        .iter()
        .filter(|(digest, _)| !deleted_set.contains(digest))
        .flat_map(|(_, list)| list.iter().map(|b| b.digest.as_str()))
        .collect();
    let mut freed: HashMap<&str, u64> = HashMap::new();
    for digest in deleted {
        for blob in blobs.get(digest).into_iter().flatten() {
            if !still_used.contains(blob.digest.as_str()) {
                freed.insert(&blob.digest, blob.size);
            }
        }
    }
    // Saturating: sizes come from manifests anyone could push.
    freed
        .values()
        .fold(0u64, |sum, size| sum.saturating_add(*size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_sizes_saturate_instead_of_overflowing() {
        let blobs = HashMap::from([(
            "m".to_string(),
            vec![blob("a", u64::MAX / 2 + 1), blob("b", u64::MAX / 2 + 1)],
        )]);
        assert_eq!(reclaimed_bytes(&["m".to_string()], &blobs), u64::MAX);
    }

    fn blob(d: &str, size: u64) -> Blob {
        Blob {
            digest: d.into(),
            size,
        }
    }

    #[test]
    fn shared_layers_are_not_counted() {
        // old1 and old2 are superseded caches; current is tagged. Layers: base (shared by all),
        // dep (old1+old2), src1 (old1 only), src2 (old2 only), src3 (current only).
        let blobs = HashMap::from([
            (
                "old1".to_string(),
                vec![
                    blob("cfg1", 1),
                    blob("base", 1000),
                    blob("dep", 500),
                    blob("src1", 50),
                ],
            ),
            (
                "old2".to_string(),
                vec![
                    blob("cfg2", 2),
                    blob("base", 1000),
                    blob("dep", 500),
                    blob("src2", 60),
                ],
            ),
            (
                "current".to_string(),
                vec![blob("cfg3", 3), blob("base", 1000), blob("src3", 70)],
            ),
        ]);
        // Deleting both old caches frees their configs, dep (counted once) and src1/src2.
        assert_eq!(
            reclaimed_bytes(&["old1".into(), "old2".into()], &blobs),
            1 + 2 + 500 + 50 + 60
        );
        // Deleting only old1 frees cfg1 and src1: dep is still used by old2.
        assert_eq!(reclaimed_bytes(&["old1".into()], &blobs), 1 + 50);
        // Summing manifest sizes would have said 1551 + 1562.
        assert_eq!(reclaimed_bytes(&[], &blobs), 0);
    }
}
