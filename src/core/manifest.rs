//! Classifying registry manifests: which ones are BuildKit cache, which are indexes (and what they
//! reference). Pure functions over the manifest bytes ECR returns.

use serde::Deserialize;

/// Config media type of a BuildKit registry cache exported with `image-manifest=true`.
pub const BUILDKIT_CACHE_CONFIG: &str = "application/vnd.buildkit.cacheconfig.v0";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 (deprecated, still found in old repositories): always a single manifest.
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Every manifest media type we ask BatchGetImage for, so ECR never converts a manifest.
pub const ACCEPTED_MEDIA_TYPES: [&str; 5] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST_V2,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V1_SIGNED,
];

/// True for media types that are known to be a single (non-index) manifest. Anything else,
/// including an absent media type, may reference other manifests and must be read.
pub fn is_single_manifest_type(media_type: Option<&str>) -> bool {
    matches!(
        media_type,
        Some(OCI_MANIFEST | DOCKER_MANIFEST_V2 | DOCKER_MANIFEST_V1 | DOCKER_MANIFEST_V1_SIGNED)
    )
}

/// What a manifest is, as far as pruning cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestKind {
    /// OCI image manifest whose config is a BuildKit cache config.
    CacheManifest,
    /// An index / manifest list; `children` are every digest it references.
    Index { children: Vec<String> },
    /// Any other single manifest (application image, attestation, signature, ...); `subject` is
    /// the digest an OCI referrer (a signature, an attestation) is attached to.
    OtherManifest {
        config_media_type: Option<String>,
        subject: Option<String>,
    },
    /// Could not be read or parsed; never deleted.
    Unreadable { reason: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    media_type: Option<String>,
    config: Option<Descriptor>,
    manifests: Option<Vec<Descriptor>>,
    /// OCI 1.1 referrers name the manifest they are about.
    #[serde(default)]
    subject: Option<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: Option<String>,
    digest: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize)]
struct RawBlobs {
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// A blob (config or layer) a single manifest references, with its size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
}

/// The config and layer blobs of a single manifest (empty for an index or unreadable body).
pub fn blobs(body: &str) -> Vec<Blob> {
    let Ok(raw) = serde_json::from_str::<RawBlobs>(body) else {
        return Vec::new();
    };
    raw.config
        .into_iter()
        .chain(raw.layers)
        .filter_map(|d| {
            Some(Blob {
                digest: d.digest?,
                size: d.size.unwrap_or(0),
            })
        })
        .collect()
}

/// Classifies manifest bytes. `declared_media_type` is what ECR reports for the image; when the
/// body and the declaration disagree, the manifest is treated as unreadable (kept).
pub fn classify_manifest(body: &str, declared_media_type: Option<&str>) -> ManifestKind {
    let raw: RawManifest = match serde_json::from_str(body) {
        Ok(raw) => raw,
        Err(err) => {
            return ManifestKind::Unreadable {
                reason: format!("manifest is not valid JSON: {err}"),
            }
        }
    };
    let media_type = match (raw.media_type.as_deref(), declared_media_type) {
        (Some(body_type), Some(declared)) if body_type != declared => {
            return ManifestKind::Unreadable {
                reason: format!("manifest says {body_type}, registry says {declared}"),
            }
        }
        (Some(t), _) | (None, Some(t)) => Some(t),
        (None, None) => None,
    };

    if let Some(manifests) = raw.manifests {
        let mut children = Vec::with_capacity(manifests.len());
        for descriptor in manifests {
            match descriptor.digest {
                Some(digest) => children.push(digest),
                // An index entry we cannot resolve could point at anything: refuse to guess.
                None => {
                    return ManifestKind::Unreadable {
                        reason: "index entry without a digest".into(),
                    }
                }
            }
        }
        return ManifestKind::Index { children };
    }
    if matches!(media_type, Some(OCI_INDEX | DOCKER_MANIFEST_LIST)) {
        return ManifestKind::Unreadable {
            reason: "index without a manifests list".into(),
        };
    }

    let config_media_type = raw.config.and_then(|c| c.media_type);
    if media_type == Some(OCI_MANIFEST)
        && config_media_type.as_deref() == Some(BUILDKIT_CACHE_CONFIG)
    {
        ManifestKind::CacheManifest
    } else {
        ManifestKind::OtherManifest {
            config_media_type,
            subject: raw.subject.and_then(|d| d.digest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_manifest() -> String {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": BUILDKIT_CACHE_CONFIG, "digest": "sha256:aa", "size": 10},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:bb", "size": 99}]
        })
        .to_string()
    }

    #[test]
    fn recognises_buildkit_cache_manifest() {
        assert_eq!(
            classify_manifest(&cache_manifest(), Some(OCI_MANIFEST)),
            ManifestKind::CacheManifest
        );
        assert_eq!(
            classify_manifest(&cache_manifest(), None),
            ManifestKind::CacheManifest
        );
    }

    #[test]
    fn application_image_is_not_cache() {
        let body = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:cc", "size": 1},
            "layers": []
        })
        .to_string();
        assert_eq!(
            classify_manifest(&body, Some(OCI_MANIFEST)),
            ManifestKind::OtherManifest {
                config_media_type: Some("application/vnd.oci.image.config.v1+json".into()),
                subject: None,
            }
        );
    }

    #[test]
    fn a_signature_names_its_subject() {
        // A Notation signature as an OCI 1.1 referrer (artifactType, empty config, subject).
        let body = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.cncf.notary.signature",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
            "layers": [{"mediaType": "application/jose+json", "digest": "sha256:dd", "size": 2000}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": "sha256:ee", "size": 900}
        })
        .to_string();
        assert_eq!(
            classify_manifest(&body, Some(OCI_MANIFEST)),
            ManifestKind::OtherManifest {
                config_media_type: Some("application/vnd.oci.empty.v1+json".into()),
                subject: Some("sha256:ee".into()),
            }
        );
    }

    #[test]
    fn docker_v2_manifest_with_cache_config_is_not_trusted_as_cache() {
        let body = serde_json::json!({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST_V2,
            "config": {"mediaType": BUILDKIT_CACHE_CONFIG, "digest": "sha256:cc", "size": 1},
            "layers": []
        })
        .to_string();
        assert!(matches!(
            classify_manifest(&body, Some(DOCKER_MANIFEST_V2)),
            ManifestKind::OtherManifest { .. }
        ));
    }

    #[test]
    fn index_lists_its_children() {
        let body = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": "sha256:01", "size": 1, "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": OCI_MANIFEST, "digest": "sha256:02", "size": 1,
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
            ]
        })
        .to_string();
        assert_eq!(
            classify_manifest(&body, Some(OCI_INDEX)),
            ManifestKind::Index {
                children: vec!["sha256:01".into(), "sha256:02".into()]
            }
        );
    }

    #[test]
    fn garbage_and_contradictions_are_unreadable() {
        assert!(matches!(
            classify_manifest("not json", None),
            ManifestKind::Unreadable { .. }
        ));
        assert!(matches!(
            classify_manifest(&cache_manifest(), Some(OCI_INDEX)),
            ManifestKind::Unreadable { .. }
        ));
        let index_without_digest =
            serde_json::json!({"mediaType": OCI_INDEX, "manifests": [{"size": 1}]});
        assert!(matches!(
            classify_manifest(&index_without_digest.to_string(), None),
            ManifestKind::Unreadable { .. }
        ));
    }

    #[test]
    fn schema1_manifests_are_single_manifests_never_possible_indexes() {
        assert!(is_single_manifest_type(Some(DOCKER_MANIFEST_V1)));
        assert!(is_single_manifest_type(Some(DOCKER_MANIFEST_V1_SIGNED)));
    }

    #[test]
    fn only_known_single_manifest_types_skip_the_index_read() {
        assert!(is_single_manifest_type(Some(OCI_MANIFEST)));
        assert!(is_single_manifest_type(Some(DOCKER_MANIFEST_V2)));
        assert!(!is_single_manifest_type(Some(OCI_INDEX)));
        assert!(!is_single_manifest_type(Some(DOCKER_MANIFEST_LIST)));
        assert!(!is_single_manifest_type(None));
        assert!(!is_single_manifest_type(Some(
            "application/x-something-new"
        )));
    }
}
