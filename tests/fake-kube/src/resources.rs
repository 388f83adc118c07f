//! Resource kinds the fake serves, keyed by (group, version, plural).

use kube::api::ApiResource;

/// The `CryptoClient` custom resource's API group.
pub const CRYPTO_GROUP: &str = "crypto.fleet.dev";
/// The `CryptoClient` custom resource's version.
pub const CRYPTO_VERSION: &str = "v1alpha1";
/// The `CryptoClient` custom resource's plural.
pub const CRYPTO_PLURAL: &str = "cryptoclients";
/// The `CryptoClient` custom resource's kind.
pub const CRYPTO_KIND: &str = "CryptoClient";

/// (group, version, plural) — the key of a resource kind. The core group is "".
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvr {
    pub group: String,
    pub version: String,
    pub plural: String,
}

impl Gvr {
    pub fn new(group: &str, version: &str, plural: &str) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
        }
    }
}

/// One resource kind the fake serves.
#[derive(Clone, Debug)]
pub struct ResourceType {
    pub gvr: Gvr,
    pub kind: String,
    /// Namespaced (`/namespaces/{ns}/{plural}`) or cluster-scoped.
    pub namespaced: bool,
    /// Has a `/status` subresource: main-resource writes keep `status`,
    /// status writes change only `status`.
    pub status_subresource: bool,
    /// A custom resource: strategic merge patch answers 415, as for real CRDs.
    pub custom: bool,
}

impl ResourceType {
    /// A namespaced kind without a status subresource.
    pub fn new(group: &str, version: &str, kind: &str, plural: &str) -> Self {
        Self {
            gvr: Gvr::new(group, version, plural),
            kind: kind.into(),
            namespaced: true,
            status_subresource: false,
            custom: false,
        }
    }

    pub fn cluster_scoped(mut self) -> Self {
        self.namespaced = false;
        self
    }

    pub fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    pub fn custom(mut self) -> Self {
        self.custom = true;
        self
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.gvr.group.is_empty() {
            self.gvr.version.clone()
        } else {
            format!("{}/{}", self.gvr.group, self.gvr.version)
        }
    }

    /// `plural.group` as the API server names it in messages.
    pub fn qualified_name(&self) -> String {
        if self.gvr.group.is_empty() {
            self.gvr.plural.clone()
        } else {
            format!("{}.{}", self.gvr.plural, self.gvr.group)
        }
    }
}

/// The kinds every fake starts with.
pub fn defaults() -> Vec<ResourceType> {
    vec![
        crypto_client_type(),
        ResourceType::new("coordination.k8s.io", "v1", "Lease", "leases"),
        ResourceType::new("events.k8s.io", "v1", "Event", "events"),
        ResourceType::new("", "v1", "Event", "events"),
        ResourceType::new("", "v1", "Secret", "secrets"),
        ResourceType::new("", "v1", "ConfigMap", "configmaps"),
        ResourceType::new("", "v1", "Namespace", "namespaces")
            .cluster_scoped()
            .with_status(),
        ResourceType::new(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        )
        .cluster_scoped()
        .with_status(),
    ]
}

/// `crypto.fleet.dev/v1alpha1` `CryptoClient`: namespaced, status subresource.
pub fn crypto_client_type() -> ResourceType {
    ResourceType::new(CRYPTO_GROUP, CRYPTO_VERSION, CRYPTO_KIND, CRYPTO_PLURAL)
        .with_status()
        .custom()
}

/// The [`ApiResource`] for `Api<DynamicObject>` on `CryptoClient`s.
pub fn crypto_client_api_resource() -> ApiResource {
    ApiResource {
        group: CRYPTO_GROUP.into(),
        version: CRYPTO_VERSION.into(),
        api_version: format!("{CRYPTO_GROUP}/{CRYPTO_VERSION}"),
        kind: CRYPTO_KIND.into(),
        plural: CRYPTO_PLURAL.into(),
    }
}

/// The registered kinds.
#[derive(Clone, Debug)]
pub(crate) struct Registry {
    types: Vec<ResourceType>,
}

impl Registry {
    pub fn new() -> Self {
        Self { types: defaults() }
    }

    /// Adds `rt`, replacing a kind with the same (group, version, plural).
    pub fn register(&mut self, rt: ResourceType) {
        self.types.retain(|t| t.gvr != rt.gvr);
        self.types.push(rt);
    }

    pub fn get(&self, gvr: &Gvr) -> Option<&ResourceType> {
        self.types.iter().find(|t| &t.gvr == gvr)
    }

    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }
}
