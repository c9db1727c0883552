//! Realistic registry content, pushed to moto the way buildx pushes it.

use std::collections::BTreeMap;

use aws_sdk_ecr::Client;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const CACHE_CONFIG: &str = "application/vnd.buildkit.cacheconfig.v0";

pub fn fake_digest(seed: &str) -> String {
    format!("sha256:{:x}", Sha256::digest(seed.as_bytes()))
}

pub struct Manifest {
    pub body: String,
    pub media_type: &'static str,
    pub digest: String,
}

impl Manifest {
    fn new(value: Value, media_type: &'static str) -> Self {
        let body = serde_json::to_string(&value).unwrap();
        let digest = format!("sha256:{:x}", Sha256::digest(body.as_bytes()));
        Manifest {
            body,
            media_type,
            digest,
        }
    }
}

/// A BuildKit `mode=max,image-manifest=true` cache manifest; `seed` makes it unique.
pub fn cache_manifest(seed: &str) -> Manifest {
    let layers: Vec<Value> = (0..3)
        .map(|i| {
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": fake_digest(&format!("{seed}-layer-{i}")), "size": 52_428_800 + i,
                   "annotations": {"buildkit/createdat": "2026-11-27T10:00:00Z",
                                   "containerd.io/uncompressed": fake_digest(&format!("{seed}-diff-{i}"))}})
        })
        .collect();
    Manifest::new(
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": CACHE_CONFIG, "digest": fake_digest(&format!("{seed}-config")), "size": 1832},
               "layers": layers}),
        OCI_MANIFEST,
    )
}

/// A cache manifest over the given `(seed, size)` layers, so tests control which layers two
/// manifests share.
pub fn cache_manifest_with_layers(seed: &str, layers: &[(&str, u64)]) -> Manifest {
    let layers: Vec<Value> = layers
        .iter()
        .map(|(layer, size)| {
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": fake_digest(layer), "size": size})
        })
        .collect();
    Manifest::new(
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": CACHE_CONFIG, "digest": fake_digest(&format!("{seed}-config")), "size": 1000},
               "layers": layers}),
        OCI_MANIFEST,
    )
}

/// A single-platform application image manifest.
pub fn app_manifest(seed: &str, arch: &str) -> Manifest {
    Manifest::new(
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                          "digest": fake_digest(&format!("{seed}-{arch}-config")), "size": 1469},
               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                           "digest": fake_digest(&format!("{seed}-{arch}-layer")), "size": 3_623_807}]}),
        OCI_MANIFEST,
    )
}

/// A buildx provenance attestation manifest for `subject`.
pub fn attestation_manifest(seed: &str, subject: &str) -> Manifest {
    Manifest::new(
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                          "digest": fake_digest(&format!("{seed}-att-config")), "size": 167},
               "layers": [{"mediaType": "application/vnd.in-toto+json",
                           "digest": fake_digest(&format!("{seed}-att")), "size": 1340,
                           "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2",
                                           "vnd.docker.reference.digest": subject}}]}),
        OCI_MANIFEST,
    )
}

/// An OCI index over `children` (platform manifests, attestations, nested indexes, anything).
/// A Notation signature as an OCI 1.1 referrer of `subject` (untagged when pushed).
pub fn signature_of(seed: &str, subject: &str) -> Manifest {
    Manifest::new(
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "artifactType": "application/vnd.cncf.notary.signature",
               "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                          "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
               "layers": [{"mediaType": "application/jose+json", "digest": fake_digest(&format!("{seed}-sig")), "size": 2048}],
               "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1200},
               "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": "[\"0f3a\"]"}}),
        OCI_MANIFEST,
    )
}

pub fn index(children: &[(&Manifest, Value)]) -> Manifest {
    let manifests: Vec<Value> = children
        .iter()
        .map(|(m, extra)| {
            let mut entry =
                json!({"mediaType": m.media_type, "digest": m.digest, "size": m.body.len()});
            if let (Some(obj), Some(more)) = (entry.as_object_mut(), extra.as_object()) {
                obj.extend(more.clone());
            }
            entry
        })
        .collect();
    Manifest::new(
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
        OCI_INDEX,
    )
}

pub fn platform(arch: &str) -> Value {
    json!({"platform": {"architecture": arch, "os": "linux"}})
}

pub fn attestation_of(subject: &str) -> Value {
    json!({"platform": {"architecture": "unknown", "os": "unknown"},
           "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                           "vnd.docker.reference.digest": subject}})
}

pub async fn create_repository(ecr: &Client, name: &str) {
    ecr.create_repository()
        .repository_name(name)
        .send()
        .await
        .expect("create repository");
}

/// Pushes a manifest, tagged or not (an untagged push is how children, attestations and
/// superseded cache manifests end up in ECR).
pub async fn push(ecr: &Client, repository: &str, manifest: &Manifest, tag: Option<&str>) {
    ecr.put_image()
        .repository_name(repository)
        .image_manifest(&manifest.body)
        .image_manifest_media_type(manifest.media_type)
        .image_digest(&manifest.digest)
        .set_image_tag(tag.map(str::to_owned))
        .send()
        .await
        .expect("put image");
}

/// digest → tags, as the registry holds them now.
pub async fn contents(ecr: &Client, repository: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut pages = ecr
        .describe_images()
        .repository_name(repository)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for d in page.expect("describe images").image_details() {
            let mut tags = d.image_tags().to_vec();
            tags.sort();
            out.insert(d.image_digest().unwrap().to_owned(), tags);
        }
    }
    out
}

/// A new repository with one superseded (untagged) cache manifest and the current `cache-main`.
pub async fn repository_with_stale_cache(
    ecr: &Client,
    prefix: &str,
) -> (String, Manifest, Manifest) {
    let name = super::moto::unique_name(prefix);
    create_repository(ecr, &name).await;
    let stale = cache_manifest(&format!("{name}-stale"));
    push(ecr, &name, &stale, None).await;
    let current = cache_manifest(&format!("{name}-current"));
    push(ecr, &name, &current, Some("cache-main")).await;
    (name, stale, current)
}
