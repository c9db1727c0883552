//! An in-memory registry implementing the `Registry` port, faithful to ECR where moto is not:
//! listings in pages chained by `nextToken`, at most 100 ids per batch call, `ImageNotFound` and
//! `ImageReferencedByManifestList` failures, DescribeImages-by-id failing whole on a missing id,
//! image status (ARCHIVED manifests cannot be read), injectable faults (5xx, throttle, an answer
//! lost after the call took effect), and a hook that runs before every call so a test can move a
//! tag or push a manifest "concurrently". It records every call.
//!
//! It is also the oracle: it knows what each image really is (the test said so when pushing), so
//! every delete is judged against its own state at that moment, never against the planner's code.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use ecr_cache_pruner::app::ports::{
    DeleteOutcome, ImageFailure, ImageNow, ManifestRead, Page, RegistryError, RegistryReader,
    RegistryWriter, BATCH_SIZE,
};
use ecr_cache_pruner::core::plan::{ImageRecord, ImageStatus};
use serde_json::json;
use sha2::{Digest, Sha256};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CACHE_CONFIG: &str = "application/vnd.buildkit.cacheconfig.v0";
const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const SIGNATURE: &str = "application/vnd.cncf.notary.signature";

/// What an image really is (the oracle's truth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A BuildKit cache manifest (`image-manifest=true`).
    Cache,
    /// A single-platform application image.
    App,
    /// A provenance attestation manifest.
    Attestation,
    /// An index over these digests (platform images, attestations, nested indexes, anything).
    Index(Vec<String>),
    /// A signature: an OCI referrer of this digest (untagged; ECR's listing names its subject
    /// when it reports `artifactMediaType`, else only its manifest does).
    Signature(String),
}

#[derive(Debug, Clone)]
pub struct StoredImage {
    pub digest: String,
    pub tags: BTreeSet<String>,
    pub kind: Kind,
    pub status: ImageStatus,
    pub pushed_at: i64,
    /// `lastRecordedPullTime`: None until something pulls it.
    pub last_pulled_at: Option<i64>,
    /// Whether DescribeImages reports `artifactMediaType` (real ECR may; moto never does).
    pub with_artifact_type: bool,
    /// `imageSizeInBytes` (1000 for the stock kinds; the layers' sum for a layered cache, as ECR).
    pub size_bytes: i64,
    body: String,
}

impl StoredImage {
    /// The manifest as pushed.
    pub fn body(&self) -> &str {
        &self.body
    }

    fn media_type(&self) -> &'static str {
        match self.kind {
            Kind::Index(_) => OCI_INDEX,
            _ => OCI_MANIFEST,
        }
    }

    fn record(&self) -> ImageRecord {
        let artifact = match self.kind {
            Kind::Cache => Some(CACHE_CONFIG),
            Kind::App | Kind::Attestation => Some(IMAGE_CONFIG),
            Kind::Signature(_) => Some(SIGNATURE),
            Kind::Index(_) => None,
        };
        ImageRecord {
            digest: self.digest.clone(),
            tags: self.tags.iter().cloned().collect(),
            status: self.status,
            pushed_at: Some(self.pushed_at),
            last_pulled_at: self.last_pulled_at,
            size_bytes: Some(self.size_bytes),
            manifest_media_type: Some(self.media_type().to_owned()),
            artifact_media_type: artifact
                .filter(|_| self.with_artifact_type)
                .map(str::to_owned),
            // As ECR's `subjectManifestDigest`, reported with the artifact type here.
            subject: match &self.kind {
                Kind::Signature(subject) if self.with_artifact_type => Some(subject.clone()),
                _ => None,
            },
        }
    }
}

/// A fault answered instead of (or after) doing a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 5xx after the SDK's retries: nothing applied.
    ServerError,
    /// Throttled past the SDK's retries: nothing applied.
    Throttle,
    /// The call took effect, then the answer was lost.
    LostAnswer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    ListImages,
    ListRepositories,
    ReadManifests,
    CurrentTags,
    DeleteDigests,
    DescribeTag,
    RemoveTag,
    PutTag,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub seq: u64,
    pub op: Op,
    pub repository: String,
    pub ids: Vec<String>,
    pub fault: Option<Fault>,
}

/// A safety rule broken, seen by the registry at the moment of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub repository: String,
    pub image: String,
    pub seq: u64,
}

/// A deletion the rules could not prevent: a concurrent change landed after the last re-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Race {
    pub what: &'static str,
    pub repository: String,
    pub image: String,
}

#[derive(Default)]
pub struct State {
    pub repositories: BTreeMap<String, BTreeMap<String, StoredImage>>,
    /// Tags that must never be removed (caches of protected branches).
    pub protected_tags: BTreeSet<String>,
    pub now: i64,
    pub seq: u64,
    pub violations: Vec<Violation>,
    pub races: Vec<Race>,
    /// (repository, digest) deleted, in order.
    pub deleted: Vec<(String, String)>,
    /// (repository, tag) removed, in order.
    pub removed_tags: Vec<(String, String)>,
    /// (repository, tag, digest) of every tag a promotion moved.
    pub promoted_tags: Vec<(String, String, String)>,
    /// Count of concurrent changes the hook made.
    pub injected: usize,
    /// Per-digest BatchGetImage failures to answer, each once and in order: (code, message).
    /// `None` answers neither the manifest nor a failure for that digest.
    pub read_failures: HashMap<String, VecDeque<Option<(String, String)>>>,
    counter: u64,
    last_recheck: HashMap<(String, String), u64>,
    /// The last delete call that asked for a digest.
    last_delete_attempt: HashMap<(String, String), u64>,
    /// Injected re-tags of a digest, by sequence number.
    retagged: HashMap<(String, String), Vec<u64>>,
    /// The digest a tag named when last looked up, and when.
    last_lookup: HashMap<(String, String), (u64, String)>,
    /// Injected moves of a tag, by sequence number.
    tag_moved: HashMap<(String, String), Vec<u64>>,
    /// The sequence number of each tag's last DescribeImages-by-tag, found or not.
    last_describe: HashMap<(String, String), u64>,
}

fn sha(text: &str) -> String {
    format!("sha256:{:x}", Sha256::digest(text.as_bytes()))
}

impl State {
    pub fn create_repository(&mut self, name: &str) {
        self.repositories.entry(name.to_owned()).or_default();
    }

    fn body(&mut self, kind: &Kind) -> String {
        self.counter += 1;
        let seed = self.counter;
        let value = match kind {
            Kind::Cache => json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": CACHE_CONFIG, "digest": sha(&format!("cfg{seed}")), "size": 1000},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": sha(&format!("layer{seed}")), "size": 50_000_000}]}),
            Kind::App => json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": IMAGE_CONFIG, "digest": sha(&format!("cfg{seed}")), "size": 1400},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": sha(&format!("layer{seed}")), "size": 3_000_000}]}),
            Kind::Attestation => json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": IMAGE_CONFIG, "digest": sha(&format!("cfg{seed}")), "size": 167},
                "layers": [{"mediaType": "application/vnd.in-toto+json",
                            "digest": sha(&format!("att{seed}")), "size": 1340}]}),
            Kind::Index(children) => json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
                "manifests": children.iter().map(|c| json!({"mediaType": OCI_MANIFEST, "digest": c, "size": 1000})).collect::<Vec<_>>()}),
            Kind::Signature(subject) => json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "artifactType": SIGNATURE,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha("{}"), "size": 2},
                "layers": [{"mediaType": "application/jose+json", "digest": sha(&format!("sig{seed}")), "size": 2048}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1000}}),
        };
        value.to_string()
    }

    /// Bulk setup: pushes a manifest under a tag that names no image yet, without looking for
    /// the tag elsewhere (that scan makes building a 100,000-image repository quadratic).
    pub fn push_with_new_tag(&mut self, repository: &str, kind: Kind, tag: &str) -> String {
        let digest = self.push(repository, kind, None);
        let images = self.repositories.get_mut(repository).expect("repository");
        images
            .get_mut(&digest)
            .expect("just pushed")
            .tags
            .insert(tag.to_owned());
        digest
    }

    /// Pushes a new manifest (tagged or not); a tag that named another image moves here.
    pub fn push(&mut self, repository: &str, kind: Kind, tag: Option<&str>) -> String {
        let body = self.body(&kind);
        let digest = sha(&body);
        self.now += 1;
        let image = StoredImage {
            digest: digest.clone(),
            tags: BTreeSet::new(),
            kind,
            status: ImageStatus::Active,
            pushed_at: self.now,
            last_pulled_at: None,
            with_artifact_type: self.counter.is_multiple_of(2),
            size_bytes: 1000,
            body,
        };
        self.repositories
            .entry(repository.to_owned())
            .or_default()
            .insert(digest.clone(), image);
        if let Some(tag) = tag {
            self.move_tag(repository, tag, &digest);
        }
        digest
    }

    /// Pushes a BuildKit cache manifest over the named layers (`(name, bytes)`: the same name in
    /// two caches is one shared blob), sized by its layers as ECR reports it.
    pub fn push_cache_layers(
        &mut self,
        repository: &str,
        tag: Option<&str>,
        layers: &[(&str, u64)],
    ) -> String {
        self.counter += 1;
        let body = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CACHE_CONFIG, "digest": sha(&format!("cfg{}", self.counter)), "size": 1000},
            "layers": layers.iter().map(|(name, size)| json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": sha(&format!("layer-{name}")), "size": size})).collect::<Vec<_>>()})
        .to_string();
        let digest = sha(&body);
        self.now += 1;
        let image = StoredImage {
            digest: digest.clone(),
            tags: BTreeSet::new(),
            kind: Kind::Cache,
            status: ImageStatus::Active,
            pushed_at: self.now,
            last_pulled_at: None,
            with_artifact_type: self.counter.is_multiple_of(2),
            size_bytes: layers.iter().map(|(_, s)| *s as i64).sum(),
            body,
        };
        self.repositories
            .entry(repository.to_owned())
            .or_default()
            .insert(digest.clone(), image);
        if let Some(tag) = tag {
            self.move_tag(repository, tag, &digest);
        }
        digest
    }

    /// A build pulled the image (its `lastRecordedPullTime` is now).
    pub fn pull(&mut self, repository: &str, digest: &str) {
        let now = self.now;
        if let Some(image) = self
            .repositories
            .get_mut(repository)
            .and_then(|r| r.get_mut(digest))
        {
            image.last_pulled_at = Some(now);
        }
    }

    fn move_tag(&mut self, repository: &str, tag: &str, digest: &str) {
        let images = self.repositories.get_mut(repository).expect("repository");
        for image in images.values_mut() {
            image.tags.remove(tag);
        }
        images
            .get_mut(digest)
            .expect("image")
            .tags
            .insert(tag.to_owned());
    }

    /// A concurrent byte-identical push: `tag` now names the existing `digest`.
    pub fn inject_retag(&mut self, repository: &str, digest: &str, tag: &str) {
        self.injected += 1;
        let key = (repository.to_owned(), digest.to_owned());
        self.retagged.entry(key).or_default().push(self.seq);
        self.tag_moved
            .entry((repository.to_owned(), tag.to_owned()))
            .or_default()
            .push(self.seq);
        self.move_tag(repository, tag, digest);
    }

    /// A concurrent push of a fresh manifest, tagged or not.
    pub fn inject_push(&mut self, repository: &str, kind: Kind, tag: Option<&str>) -> String {
        self.injected += 1;
        if let Some(tag) = tag {
            self.tag_moved
                .entry((repository.to_owned(), tag.to_owned()))
                .or_default()
                .push(self.seq);
        }
        self.push(repository, kind, tag)
    }

    pub fn set_status(&mut self, repository: &str, digest: &str, status: ImageStatus) {
        if let Some(image) = self
            .repositories
            .get_mut(repository)
            .and_then(|r| r.get_mut(digest))
        {
            image.status = status;
        }
    }

    /// Digests referenced by any index in the repository, of any status.
    pub fn referenced(&self, repository: &str) -> BTreeSet<String> {
        self.repositories
            .get(repository)
            .into_iter()
            .flat_map(|r| r.values())
            .filter_map(|i| match &i.kind {
                Kind::Index(children) => Some(children.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    pub fn images(&self, repository: &str) -> Vec<StoredImage> {
        self.repositories
            .get(repository)
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Untagged ACTIVE cache manifests no index references: what a pruner should remove.
    pub fn stale(&self, repository: &str) -> Vec<String> {
        let referenced = self.referenced(repository);
        self.images(repository)
            .into_iter()
            .filter(|i| {
                i.kind == Kind::Cache
                    && i.tags.is_empty()
                    && i.status == ImageStatus::Active
                    && !referenced.contains(&i.digest)
            })
            .map(|i| i.digest)
            .collect()
    }

    fn violation(&mut self, rule: &'static str, repository: &str, image: &str) {
        self.violations.push(Violation {
            rule,
            repository: repository.to_owned(),
            image: image.to_owned(),
            seq: self.seq,
        });
    }

    /// A concurrent change explains what happened (`excused`): a race; otherwise a rule broke.
    fn race_or_violation(
        &mut self,
        excused: bool,
        (race, rule): (&'static str, &'static str),
        repository: &str,
        image: &str,
    ) {
        if excused {
            self.races.push(Race {
                what: race,
                repository: repository.to_owned(),
                image: image.to_owned(),
            });
        } else {
            self.violation(rule, repository, image);
        }
    }

    /// Judges the deletion of `digest` (by digest, or by its last tag) at this moment.
    fn judge_image_deletion(&mut self, repository: &str, digest: &str, by_tag: bool) {
        let Some(image) = self.repositories[repository].get(digest).cloned() else {
            return;
        };
        match &image.kind {
            Kind::Cache => {}
            // A referrer goes only with its subject: deleted before it in the same call, or gone.
            Kind::Signature(subject) if !by_tag => {
                if self.repositories[repository].contains_key(subject) {
                    self.violation(
                        "rule 1: a signature of something not deleted",
                        repository,
                        digest,
                    );
                }
            }
            _ => self.violation("rule 1: not a cache manifest", repository, digest),
        }
        if image.status != ImageStatus::Active {
            self.violation("rule 8: not ACTIVE", repository, digest);
        }
        if by_tag {
            return;
        }
        if !image.tags.is_empty() {
            let key = (repository.to_owned(), digest.to_owned());
            let excused = match self.last_recheck.get(&key) {
                None => false,
                Some(checked) => self
                    .retagged
                    .get(&key)
                    .is_some_and(|seqs| seqs.iter().any(|s| s > checked)),
            };
            self.race_or_violation(
                excused,
                (
                    "re-tagged after its last re-check",
                    "rule 2: tagged at delete time",
                ),
                repository,
                digest,
            );
        }
    }
}

type FaultPlan = Box<dyn FnMut(Op) -> Option<Fault> + Send>;
type Hook = Box<dyn FnMut(Op, &mut State) + Send>;

pub struct MemoryRegistry {
    state: Mutex<State>,
    page_size: usize,
    /// Whether BatchGetImage returns ARCHIVED manifests (AWS does not document it; default no).
    pub archived_readable: bool,
    faults: Mutex<Option<FaultPlan>>,
    hook: Mutex<Option<Hook>>,
    calls: Mutex<Vec<Call>>,
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        MemoryRegistry::new(1000)
    }
}

impl MemoryRegistry {
    /// `page_size`: images (or repositories) per listing page; ECR's maximum is 1000.
    pub fn new(page_size: usize) -> Self {
        MemoryRegistry {
            state: Mutex::new(State::default()),
            page_size,
            archived_readable: false,
            faults: Mutex::new(None),
            hook: Mutex::new(None),
            calls: Mutex::new(Vec::new()),
        }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn set_faults(&self, plan: impl FnMut(Op) -> Option<Fault> + Send + 'static) {
        *self.faults.lock().unwrap() = Some(Box::new(plan));
    }

    pub fn set_hook(&self, hook: impl FnMut(Op, &mut State) + Send + 'static) {
        *self.hook.lock().unwrap() = Some(Box::new(hook));
    }

    pub fn clear_hook_and_faults(&self) {
        *self.hook.lock().unwrap() = None;
        *self.faults.lock().unwrap() = None;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn count(&self, op: Op) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.op == op)
            .count()
    }

    /// Runs the hook, draws a fault and records the call; returns the state and the fault.
    fn begin(
        &self,
        op: Op,
        repository: &str,
        ids: &[String],
    ) -> (std::sync::MutexGuard<'_, State>, Option<Fault>) {
        let mut state = self.state.lock().unwrap();
        state.seq += 1;
        if let Some(hook) = self.hook.lock().unwrap().as_mut() {
            hook(op, &mut state);
        }
        let fault = self
            .faults
            .lock()
            .unwrap()
            .as_mut()
            .and_then(|plan| plan(op));
        self.calls.lock().unwrap().push(Call {
            seq: state.seq,
            op,
            repository: repository.to_owned(),
            ids: ids.to_vec(),
            fault,
        });
        (state, fault)
    }
}

fn operation(op: Op) -> &'static str {
    match op {
        Op::ListImages | Op::CurrentTags | Op::DescribeTag => "DescribeImages",
        Op::ListRepositories => "DescribeRepositories",
        Op::ReadManifests => "BatchGetImage",
        Op::DeleteDigests | Op::RemoveTag => "BatchDeleteImage",
        Op::PutTag => "PutImage",
    }
}

fn fault_error(op: Op, repository: &str, fault: Fault) -> RegistryError {
    RegistryError::Transient {
        operation: operation(op),
        repository: repository.to_owned(),
        message: match fault {
            Fault::ServerError => "service error: HTTP 500 (after retries)".into(),
            Fault::Throttle => "ThrottlingException: Rate exceeded (after retries)".into(),
            Fault::LostAnswer => {
                "dispatch failure: connection reset (the call may have taken effect)".into()
            }
        },
    }
}

/// Faults that stop a call before it takes effect.
fn refused(op: Op, repository: &str, fault: Option<Fault>) -> Result<(), RegistryError> {
    match fault {
        Some(f @ (Fault::ServerError | Fault::Throttle)) => Err(fault_error(op, repository, f)),
        _ => Ok(()),
    }
}

/// A lost answer: the call took effect, the caller sees an error.
fn answer<T>(op: Op, repository: &str, fault: Option<Fault>, value: T) -> Result<T, RegistryError> {
    match fault {
        Some(f @ Fault::LostAnswer) => Err(fault_error(op, repository, f)),
        _ => Ok(value),
    }
}

fn batch_limit(op: Op, repository: &str, ids: &[String]) -> Result<(), RegistryError> {
    if ids.len() > BATCH_SIZE {
        return Err(RegistryError::Api {
            operation: operation(op),
            repository: repository.to_owned(),
            message: format!(
                "InvalidParameterException: {} ids (max {BATCH_SIZE})",
                ids.len()
            ),
        });
    }
    Ok(())
}

fn missing(repository: &str) -> RegistryError {
    RegistryError::RepositoryNotFound {
        repository: repository.to_owned(),
    }
}

/// One page of `items` after the token's key. Tokens name the last key returned, so an item present
/// for the whole listing is listed once even when others are pushed or deleted meanwhile (how a
/// key-ordered store pages; ECR does not document its tokens).
fn page_of<V, T>(
    items: &BTreeMap<String, V>,
    token: Option<&str>,
    page_size: usize,
    item: impl Fn(&String, &V) -> T,
) -> (Vec<T>, Option<String>) {
    use std::ops::Bound::{Excluded, Unbounded};
    let after = token.and_then(|t| t.strip_prefix("after:"));
    let mut rest = match after {
        Some(key) => items.range::<str, _>((Excluded(key), Unbounded)),
        None => items.range::<str, _>((Unbounded, Unbounded)),
    };
    let mut page = Vec::new();
    let mut last = None;
    for (key, value) in rest.by_ref().take(page_size) {
        last = Some(key.clone());
        page.push(item(key, value));
    }
    let more = rest.next().is_some();
    (page, last.filter(|_| more).map(|k| format!("after:{k}")))
}

impl RegistryReader for MemoryRegistry {
    async fn list_images_page(
        &self,
        repository: &str,
        next_token: Option<&str>,
    ) -> Result<Page<ImageRecord>, RegistryError> {
        let (state, fault) = self.begin(Op::ListImages, repository, &[]);
        refused(Op::ListImages, repository, fault)?;
        let images = state
            .repositories
            .get(repository)
            .ok_or_else(|| missing(repository))?;
        let (items, next_token) = page_of(images, next_token, self.page_size, |_, image| {
            image.record()
        });
        answer(
            Op::ListImages,
            repository,
            fault,
            Page { items, next_token },
        )
    }

    async fn list_repositories_page(
        &self,
        next_token: Option<&str>,
    ) -> Result<Page<String>, RegistryError> {
        let (state, fault) = self.begin(Op::ListRepositories, "*", &[]);
        refused(Op::ListRepositories, "*", fault)?;
        let (items, next_token) = page_of(
            &state.repositories,
            next_token,
            self.page_size,
            |name, _| name.clone(),
        );
        answer(Op::ListRepositories, "*", fault, Page { items, next_token })
    }

    async fn read_manifests(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<HashMap<String, ManifestRead>, RegistryError> {
        let (mut state, fault) = self.begin(Op::ReadManifests, repository, digests);
        batch_limit(Op::ReadManifests, repository, digests)?;
        refused(Op::ReadManifests, repository, fault)?;
        let mut failures = std::mem::take(&mut state.read_failures);
        let images = state
            .repositories
            .get(repository)
            .ok_or_else(|| missing(repository))?;
        let mut out = HashMap::new();
        for digest in digests {
            if let Some(planned) = failures.get_mut(digest).and_then(VecDeque::pop_front) {
                if let Some((code, message)) = planned {
                    out.insert(
                        digest.clone(),
                        ManifestRead::Failed {
                            reason: format!("BatchGetImage failure {code}: {message}"),
                        },
                    );
                }
                continue;
            }
            let read = match images.get(digest) {
                Some(image) if image.status == ImageStatus::Active || self.archived_readable => {
                    ManifestRead::Body {
                        body: image.body.clone(),
                        media_type: Some(image.media_type().to_owned()),
                    }
                }
                Some(_) => ManifestRead::Failed {
                    reason: "BatchGetImage failure ImageNotFound: the image is archived".into(),
                },
                None => ManifestRead::Failed {
                    reason: "BatchGetImage failure ImageNotFound: no such image".into(),
                },
            };
            out.insert(digest.clone(), read);
        }
        state.read_failures = failures;
        answer(Op::ReadManifests, repository, fault, out)
    }

    async fn current_tags(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<HashMap<String, ImageNow>, RegistryError> {
        let (mut state, fault) = self.begin(Op::CurrentTags, repository, digests);
        batch_limit(Op::CurrentTags, repository, digests)?;
        refused(Op::CurrentTags, repository, fault)?;
        let seq = state.seq;
        let images = state
            .repositories
            .get(repository)
            .ok_or_else(|| missing(repository))?;
        if digests.iter().any(|d| !images.contains_key(d)) {
            return Err(RegistryError::ImageNotFound {
                operation: "DescribeImages",
                repository: repository.to_owned(),
            });
        }
        let out: HashMap<String, ImageNow> = digests
            .iter()
            .map(|d| {
                let now = ImageNow {
                    tags: images[d].tags.iter().cloned().collect(),
                    status: images[d].status,
                };
                (d.clone(), now)
            })
            .collect();
        for digest in digests {
            state
                .last_recheck
                .insert((repository.to_owned(), digest.clone()), seq);
        }
        answer(Op::CurrentTags, repository, fault, out)
    }

    async fn describe_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<ImageRecord>, RegistryError> {
        let (mut state, fault) = self.begin(Op::DescribeTag, repository, &[tag.to_owned()]);
        refused(Op::DescribeTag, repository, fault)?;
        let seq = state.seq;
        let images = state
            .repositories
            .get(repository)
            .ok_or_else(|| missing(repository))?;
        let found = images
            .values()
            .find(|i| i.tags.contains(tag))
            .map(StoredImage::record);
        state
            .last_describe
            .insert((repository.to_owned(), tag.to_owned()), seq);
        if let Some(image) = &found {
            state.last_lookup.insert(
                (repository.to_owned(), tag.to_owned()),
                (seq, image.digest.clone()),
            );
        }
        answer(Op::DescribeTag, repository, fault, found)
    }
}

impl RegistryWriter for MemoryRegistry {
    async fn delete_digests(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<DeleteOutcome, RegistryError> {
        let (mut state, fault) = self.begin(Op::DeleteDigests, repository, digests);
        batch_limit(Op::DeleteDigests, repository, digests)?;
        // A delete call after an earlier one for the same digest, with no re-check between them,
        // is a retry that skipped the re-check (even if the earlier call never took effect).
        let seq = state.seq;
        for digest in digests {
            let key = (repository.to_owned(), digest.clone());
            let checked = state.last_recheck.get(&key).copied().unwrap_or(0);
            let previous = state.last_delete_attempt.insert(key, seq);
            if previous.is_some_and(|attempt| attempt > checked) {
                state.violation(
                    "rule 2: delete retried without a new re-check",
                    repository,
                    digest,
                );
            }
        }
        refused(Op::DeleteDigests, repository, fault)?;
        if !state.repositories.contains_key(repository) {
            return Err(missing(repository));
        }
        let referenced = state.referenced(repository);
        let mut outcome = DeleteOutcome::default();
        for digest in digests {
            if !state.repositories[repository].contains_key(digest) {
                outcome.already_gone.push(digest.clone());
                continue;
            }
            if referenced.contains(digest) {
                // Asking is the fault: ECR refuses it, but the planner should never have asked.
                state.violation("rule 3: referenced by an index", repository, digest);
                outcome.failures.push(ImageFailure::new(
                    digest,
                    Some("ImageReferencedByManifestList"),
                    Some("referenced by an image index"),
                ));
                continue;
            }
            state.judge_image_deletion(repository, digest, false);
            state
                .repositories
                .get_mut(repository)
                .unwrap()
                .remove(digest);
            state.deleted.push((repository.to_owned(), digest.clone()));
            outcome.deleted.push(digest.clone());
        }
        answer(Op::DeleteDigests, repository, fault, outcome)
    }

    /// Cache promotion, judged by the oracle: the tag may only move to an ACTIVE cache manifest
    /// pushed after the image it names (unless a concurrent push moved the tag since the
    /// promotion's last look-up), never a `KEEP_TAGS` tag.
    async fn put_tag(
        &self,
        repository: &str,
        tag: &str,
        digest: &str,
        _manifest: &str,
        _media_type: Option<&str>,
    ) -> Result<(), RegistryError> {
        let (mut state, fault) = self.begin(Op::PutTag, repository, &[tag.to_owned()]);
        refused(Op::PutTag, repository, fault)?;
        let images = state
            .repositories
            .get(repository)
            .ok_or_else(|| missing(repository))?;
        let Some(target) = images.get(digest).cloned() else {
            return Err(RegistryError::Api {
                operation: "PutImage",
                repository: repository.to_owned(),
                message: format!("ImageNotFound: {digest}"),
            });
        };
        let current = images.values().find(|i| i.tags.contains(tag)).cloned();
        let key = (repository.to_owned(), tag.to_owned());
        if target.kind != Kind::Cache {
            state.violation("promotion: not a cache manifest", repository, digest);
        }
        if target.status != ImageStatus::Active {
            state.violation("promotion: not ACTIVE", repository, digest);
        }
        if tag == "cache-fix-c" {
            state.violation("rule 9: promotion onto a KEEP_TAGS tag", repository, tag);
        }
        // Moved or created by a concurrent push since the promotion's last look-up: a race.
        let moved = match state.last_describe.get(&key).copied() {
            None => false,
            Some(seq) => state
                .tag_moved
                .get(&key)
                .is_some_and(|seqs| seqs.iter().any(|s| *s >= seq)),
        };
        if let Some(current) = current.filter(|c| c.digest != digest) {
            let what = format!("{tag} (on {})", current.digest);
            if current.pushed_at >= target.pushed_at {
                state.race_or_violation(
                    moved,
                    (
                        "tag moved between the promotion's look-up and its move",
                        "promotion over a cache at least as new",
                    ),
                    repository,
                    &what,
                );
            }
            if current.kind != Kind::Cache {
                state.race_or_violation(
                    moved,
                    (
                        "tag moved between the promotion's look-up and its move",
                        "rule 4: promotion moved the tag of a non-cache image",
                    ),
                    repository,
                    &what,
                );
            }
        }
        state.move_tag(repository, tag, digest);
        state
            .promoted_tags
            .push((repository.to_owned(), tag.to_owned(), digest.to_owned()));
        answer(Op::PutTag, repository, fault, ())
    }

    async fn remove_tag(&self, repository: &str, tag: &str) -> Result<bool, RegistryError> {
        let (mut state, fault) = self.begin(Op::RemoveTag, repository, &[tag.to_owned()]);
        refused(Op::RemoveTag, repository, fault)?;
        let images = state
            .repositories
            .get(repository)
            .ok_or_else(|| missing(repository))?;
        let Some(image) = images.values().find(|i| i.tags.contains(tag)).cloned() else {
            return answer(Op::RemoveTag, repository, fault, false);
        };
        let key = (repository.to_owned(), tag.to_owned());
        if state.protected_tags.contains(tag) {
            state.violation(
                "rule 9: protected branch's cache tag removed",
                repository,
                tag,
            );
        }
        // A tag moved by a concurrent push between its look-up and its removal is a race: what
        // the removal then does to the other image is the race's doing, not a rule's.
        let raced = match state.last_lookup.get(&key).cloned() {
            None => {
                state.violation("rule 4: tag removed without a look-up", repository, tag);
                false
            }
            Some((seq, digest)) if digest != image.digest => {
                let moved = state
                    .tag_moved
                    .get(&key)
                    .is_some_and(|seqs| seqs.iter().any(|s| *s >= seq));
                // Named with the image the tag moved to: removing it may delete that image.
                let what = format!("{tag} (now on {})", image.digest);
                state.race_or_violation(
                    moved,
                    (
                        "tag moved between its look-up and its removal",
                        "rule 4: removed a tag it did not judge",
                    ),
                    repository,
                    &what,
                );
                moved
            }
            Some(_) => false,
        };
        if image.kind != Kind::Cache && !raced {
            state.violation("rule 4: tag of a non-cache image removed", repository, tag);
        }
        let last_tag = image.tags.len() == 1;
        if last_tag {
            if state.referenced(repository).contains(&image.digest) {
                if !raced {
                    state.violation(
                        "rule 3: last tag of an index-referenced image",
                        repository,
                        tag,
                    );
                }
                // ECR refuses to delete an image an index references.
                return Err(RegistryError::Api {
                    operation: "BatchDeleteImage",
                    repository: repository.to_owned(),
                    message: "ImageReferencedByManifestList: referenced by an image index".into(),
                });
            }
            if !raced {
                state.judge_image_deletion(repository, &image.digest, true);
            }
        }
        let images = state.repositories.get_mut(repository).unwrap();
        if last_tag {
            images.remove(&image.digest);
        } else {
            images.get_mut(&image.digest).unwrap().tags.remove(tag);
        }
        if last_tag {
            state
                .deleted
                .push((repository.to_owned(), image.digest.clone()));
        }
        state.removed_tags.push(key);
        answer(Op::RemoveTag, repository, fault, true)
    }
}

/// The in-memory registry seen through [`RegistryReader`] alone: no delete, no untag. What is
/// built over it (the savings report, `plan`) shows by compiling that it needs no writer.
pub struct ReaderOnly<'a>(pub &'a MemoryRegistry);

impl RegistryReader for ReaderOnly<'_> {
    async fn list_images_page(
        &self,
        repository: &str,
        next_token: Option<&str>,
    ) -> Result<Page<ImageRecord>, RegistryError> {
        self.0.list_images_page(repository, next_token).await
    }

    async fn list_repositories_page(
        &self,
        next_token: Option<&str>,
    ) -> Result<Page<String>, RegistryError> {
        self.0.list_repositories_page(next_token).await
    }

    async fn read_manifests(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<HashMap<String, ManifestRead>, RegistryError> {
        self.0.read_manifests(repository, digests).await
    }

    async fn current_tags(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<HashMap<String, ImageNow>, RegistryError> {
        self.0.current_tags(repository, digests).await
    }

    async fn describe_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<ImageRecord>, RegistryError> {
        self.0.describe_tag(repository, tag).await
    }
}
