//! Rows as the rest of the system sees them. Plain data: no behaviour, no SQL.

use pipewright_core::{
    AccessLevel, PipelineSource, ProjectCreationLevel, Status, SubgroupCreationLevel, Timestamp,
    Visibility,
};

pub type UserId = i64;
pub type ProjectId = i64;
pub type NamespaceId = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserState {
    Active,
    Blocked,
}

impl UserState {
    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Active => "active",
            UserState::Blocked => "blocked",
        }
    }
    pub(crate) fn parse(s: &str) -> Self {
        if s == "blocked" {
            UserState::Blocked
        } else {
            UserState::Active
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub name: String,
    pub email: String,
    /// An argon2 PHC string; `None` for users who can only use tokens.
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub state: UserState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl User {
    pub fn is_active(&self) -> bool {
        self.state == UserState::Active
    }
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub name: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
}

/// Fields an admin may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub is_admin: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceKind {
    User,
    Group,
}

impl NamespaceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NamespaceKind::User => "user",
            NamespaceKind::Group => "group",
        }
    }
    pub(crate) fn parse(s: &str) -> Self {
        if s == "group" {
            NamespaceKind::Group
        } else {
            NamespaceKind::User
        }
    }
}

#[derive(Debug, Clone)]
pub struct Namespace {
    pub id: NamespaceId,
    pub name: String,
    /// The last segment of the full path.
    pub path: String,
    pub kind: NamespaceKind,
    /// A user namespace's user; `None` for a group.
    pub owner_id: Option<UserId>,
    pub created_at: Timestamp,
    /// A subgroup's parent group.
    pub parent_id: Option<NamespaceId>,
    /// `acme/backend`: every ancestor's path and this one's (a user namespace: the username).
    pub full_path: String,
    /// `Acme / Backend`, GitLab's `full_name`.
    pub full_name: String,
    /// A group's visibility (a user namespace's is `public` and unused).
    pub visibility: Visibility,
    pub description: String,
    /// A group's own `project_creation_level`; `None` follows the instance's
    /// `default_project_creation`.
    pub project_creation_level: Option<ProjectCreationLevel>,
    /// A group's `subgroup_creation_level` (a user namespace's is unused).
    pub subgroup_creation_level: SubgroupCreationLevel,
}

impl Namespace {
    pub fn is_group(&self) -> bool {
        self.kind == NamespaceKind::Group
    }
}

/// A group to create: a top-level group (`parent_id: None`) or a subgroup.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub name: String,
    pub path: String,
    pub parent_id: Option<NamespaceId>,
    pub visibility: Visibility,
    pub description: String,
    /// `None`: follow the instance's `default_project_creation`.
    pub project_creation_level: Option<ProjectCreationLevel>,
    pub subgroup_creation_level: SubgroupCreationLevel,
    /// Made the group's Owner, as GitLab's `Groups::CreateService` does.
    pub creator_id: UserId,
}

/// Changes to a group; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct GroupUpdate {
    pub name: Option<String>,
    pub path: Option<String>,
    pub visibility: Option<Visibility>,
    pub description: Option<String>,
    pub project_creation_level: Option<ProjectCreationLevel>,
    pub subgroup_creation_level: Option<SubgroupCreationLevel>,
}

/// Which groups to list.
#[derive(Debug, Clone)]
pub struct GroupFilter {
    /// Groups the viewer may see: public ones, internal ones to signed-in users, and the
    /// groups related to the user (a member of it or an ancestor, of a descendant, or of a
    /// project in it or below it; GitLab's `GroupsFinder`).
    pub viewer: Viewer,
    /// `Some(None)`: top-level groups only; `Some(Some(id))`: the subgroups of `id`.
    pub parent: Option<Option<NamespaceId>>,
    /// Only groups related to the user, as above (GitLab's `all_available=false`).
    pub membership_of: Option<UserId>,
    pub search: Option<String>,
}

/// A user's membership of a group.
#[derive(Debug, Clone)]
pub struct GroupMember {
    pub group_id: NamespaceId,
    pub user: User,
    pub access_level: AccessLevel,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct PersonalAccessToken {
    pub id: i64,
    pub user_id: UserId,
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<Timestamp>,
    pub revoked: bool,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewPersonalAccessToken {
    pub user_id: UserId,
    pub name: String,
    /// SHA-256 of the token, hex. The token itself is never stored.
    pub token_digest: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: ProjectId,
    pub namespace: Namespace,
    pub name: String,
    pub path: String,
    pub description: Option<String>,
    pub visibility: Visibility,
    pub default_branch: String,
    pub creator_id: Option<UserId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_activity_at: Timestamp,
}

impl Project {
    pub fn full_path(&self) -> String {
        format!("{}/{}", self.namespace.full_path, self.path)
    }
}

#[derive(Debug, Clone)]
pub struct NewProject {
    pub namespace_id: NamespaceId,
    pub name: String,
    pub path: String,
    pub description: Option<String>,
    pub visibility: Visibility,
    pub default_branch: String,
    pub creator_id: UserId,
}

#[derive(Debug, Clone, Default)]
pub struct ProjectUpdate {
    pub name: Option<String>,
    pub path: Option<String>,
    pub description: Option<Option<String>>,
    pub visibility: Option<Visibility>,
    pub default_branch: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectOrder {
    Id,
    Name,
    Path,
    CreatedAt,
    UpdatedAt,
    LastActivityAt,
}

#[derive(Debug, Clone)]
pub struct ProjectFilter {
    /// Projects the viewer may see: `None` = everything (admin), otherwise this user's view
    /// (member projects plus internal and public ones), or anonymous (public only).
    pub viewer: Viewer,
    /// Only projects the user is a member of.
    pub membership_of: Option<UserId>,
    /// Only projects in namespaces the user owns.
    pub owned_by: Option<UserId>,
    pub search: Option<String>,
    /// Only projects in this namespace (`true`: or in any group below it).
    pub namespace: Option<(NamespaceId, bool)>,
    pub order_by: ProjectOrder,
    pub ascending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Admin,
    User(UserId),
    Anonymous,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub project_id: ProjectId,
    pub user: User,
    pub access_level: AccessLevel,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// Who may push to or merge into a protected branch: GitLab's `0` (no one), `30` (Developers
/// and Maintainers), `40` (Maintainers) or `60` (instance admins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectionLevel {
    NoOne,
    AtLeast(AccessLevel),
    Admin,
}

impl ProtectionLevel {
    pub fn from_i64(value: i64) -> Option<Self> {
        match value {
            0 => Some(ProtectionLevel::NoOne),
            60 => Some(ProtectionLevel::Admin),
            30 | 40 => AccessLevel::from_i64(value).map(ProtectionLevel::AtLeast),
            _ => None,
        }
    }

    pub fn as_i64(self) -> i64 {
        match self {
            ProtectionLevel::NoOne => 0,
            ProtectionLevel::Admin => 60,
            ProtectionLevel::AtLeast(level) => level.as_i64(),
        }
    }

    /// Whether a user with `role` (and admin flag) passes this level.
    pub fn allows(self, role: Option<AccessLevel>, admin: bool) -> bool {
        match self {
            ProtectionLevel::NoOne => false,
            ProtectionLevel::Admin => admin,
            ProtectionLevel::AtLeast(level) => admin || role.is_some_and(|r| r >= level),
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            ProtectionLevel::NoOne => "No one",
            ProtectionLevel::Admin => "Administrators",
            ProtectionLevel::AtLeast(AccessLevel::Developer) => "Developers + Maintainers",
            ProtectionLevel::AtLeast(_) => "Maintainers",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProtectedBranch {
    pub id: i64,
    pub project_id: ProjectId,
    /// A branch name or a wildcard pattern such as `release/*`.
    pub name: String,
    pub push_access_level: ProtectionLevel,
    pub merge_access_level: ProtectionLevel,
    pub allow_force_push: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewProtectedBranch {
    pub project_id: ProjectId,
    pub name: String,
    pub push_access_level: ProtectionLevel,
    pub merge_access_level: ProtectionLevel,
    pub allow_force_push: bool,
}

#[derive(Debug, Clone)]
pub struct PushEvent {
    pub id: i64,
    pub project_id: ProjectId,
    pub user_id: Option<UserId>,
    pub ref_name: String,
    pub before_sha: String,
    pub after_sha: String,
    pub push_options: Vec<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewPushEvent {
    pub project_id: ProjectId,
    pub user_id: Option<UserId>,
    pub ref_name: String,
    pub before_sha: String,
    pub after_sha: String,
    pub push_options: Vec<String>,
}

/// A page request: 1-based page number and page size (already clamped by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
}

impl Page {
    pub fn offset(self) -> i64 {
        i64::from(self.page.saturating_sub(1)) * i64::from(self.per_page)
    }
    pub fn limit(self) -> i64 {
        i64::from(self.per_page)
    }
}

/// One page of results plus the total count, for GitLab's pagination headers.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// A pipeline trigger token (never the token itself: see `token_sealed`).
#[derive(Debug, Clone)]
pub struct Trigger {
    pub id: i64,
    pub project_id: ProjectId,
    pub owner_id: Option<UserId>,
    /// Created without an owner (imported); such triggers run with no user.
    pub legacy: bool,
    pub description: String,
    /// The token sealed under the server key; only the server can open it.
    pub token_sealed: String,
    /// The 4 characters after `glptt-` that non-owners see.
    pub short_token: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    /// Which refs and variables the token may use.
    pub restrictions: TriggerRestrictions,
}

/// What a trigger token may run: refs matching one of `ref_patterns` (globs on the branch or
/// tag name) and variables named in `allowed_variables`; an empty list allows any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerRestrictions {
    pub ref_patterns: Vec<String>,
    pub allowed_variables: Vec<String>,
}

/// A rotated trigger token: the new token's digest, sealed copy and short form, and until when
/// the replaced token still works (`None`: not at all).
#[derive(Debug, Clone)]
pub struct RotatedToken {
    pub token_digest: String,
    pub token_sealed: String,
    pub short_token: String,
    pub previous_valid_until: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewTrigger {
    pub project_id: ProjectId,
    pub owner_id: Option<UserId>,
    pub legacy: bool,
    pub description: String,
    pub token_digest: String,
    pub token_sealed: String,
    pub short_token: String,
    pub expires_at: Option<Timestamp>,
    pub restrictions: TriggerRestrictions,
}

/// A pipeline's link to the job that started it (multi-project pipelines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upstream {
    pub job_id: i64,
    pub pipeline_id: i64,
    pub project_id: ProjectId,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: i64,
    pub project_id: ProjectId,
    pub iid: i64,
    pub sha: String,
    pub before_sha: String,
    pub ref_name: String,
    pub tag: bool,
    pub protected_ref: bool,
    pub source: PipelineSource,
    pub status: Status,
    pub user_id: Option<UserId>,
    pub trigger_id: Option<i64>,
    pub trigger_short_token: Option<String>,
    pub upstream: Option<Upstream>,
    pub name: Option<String>,
    pub yaml_errors: Option<String>,
    pub failure_reason: Option<String>,
    pub committed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableType {
    EnvVar,
    File,
}

impl VariableType {
    pub fn as_str(self) -> &'static str {
        match self {
            VariableType::EnvVar => "env_var",
            VariableType::File => "file",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "env_var" => Some(VariableType::EnvVar),
            "file" => Some(VariableType::File),
            _ => None,
        }
    }
}

/// A pipeline variable as stored: the value sealed by the server.
#[derive(Debug, Clone)]
pub struct StoredVariable {
    pub key: String,
    pub value_sealed: String,
    pub variable_type: VariableType,
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub name: String,
    pub stage: String,
    pub stage_idx: i64,
    pub status: Status,
    /// `on_success`, `manual`, … as the plan says.
    pub when: String,
    pub allow_failure: bool,
    /// The planned job as JSON.
    pub spec: String,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub pipeline_id: i64,
    pub project_id: ProjectId,
    pub name: String,
    pub stage: String,
    pub stage_idx: i64,
    pub position: i64,
    pub status: Status,
    pub when: String,
    pub allow_failure: bool,
    pub spec: String,
    pub failure_reason: Option<String>,
    pub created_at: Timestamp,
    pub queued_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub runner_id: Option<i64>,
    pub lease_expires_at: Option<Timestamp>,
    pub exit_code: Option<i64>,
    /// A later attempt replaced this one (`retry`); it no longer counts for the pipeline.
    pub retried: bool,
    /// When a `when: delayed` job becomes pending.
    pub scheduled_at: Option<Timestamp>,
    pub erased_at: Option<Timestamp>,
    pub artifacts: Option<JobArtifacts>,
    /// Bytes of log stored so far.
    pub trace_size: i64,
}

/// What appending a log chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceAppend {
    /// Stored (or, past the size limit, dropped); the log is now `size` bytes.
    Appended { size: u64 },
    /// The chunk did not start where the log ends (`size`); nothing was stored.
    Mismatch { size: u64 },
}

/// A job's artifacts archive (a zip under the data dir, named by the job id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobArtifacts {
    pub filename: String,
    pub size: i64,
    /// `None`: kept forever (`expire_in: never` or "Keep").
    pub expire_at: Option<Timestamp>,
}

/// Everything a new pipeline is made of, written in one transaction.
#[derive(Debug, Clone)]
pub struct NewPipeline {
    pub project_id: ProjectId,
    pub sha: String,
    pub before_sha: String,
    pub ref_name: String,
    pub tag: bool,
    pub protected_ref: bool,
    pub source: PipelineSource,
    pub status: Status,
    pub user_id: Option<UserId>,
    pub trigger_id: Option<i64>,
    pub trigger_short_token: Option<String>,
    pub upstream: Option<Upstream>,
    pub name: Option<String>,
    pub yaml_errors: Option<String>,
    pub failure_reason: Option<String>,
    pub committed_at: Option<Timestamp>,
    pub variables: Vec<StoredVariable>,
    pub jobs: Vec<NewJob>,
}

#[derive(Debug, Clone, Default)]
pub struct PipelineFilter {
    pub statuses: Vec<Status>,
    pub source: Option<PipelineSource>,
    pub ref_name: Option<String>,
    pub sha: Option<String>,
    pub user_id: Option<UserId>,
    pub updated_after: Option<Timestamp>,
    pub updated_before: Option<Timestamp>,
    /// `id`, `status`, `ref`, `updated_at` or `user_id`.
    pub order_by: PipelineOrder,
    pub ascending: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PipelineOrder {
    #[default]
    Id,
    Status,
    Ref,
    UpdatedAt,
    UserId,
}

/// A trigger with what running it needs: its project, its owner and the owner's role.
#[derive(Debug, Clone)]
pub struct TriggerContext {
    pub trigger: Trigger,
    pub project: Project,
    pub owner: Option<User>,
    /// The owner's membership role, if an unexpired member.
    pub owner_role: Option<AccessLevel>,
}

/// Whose jobs a runner may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerType {
    /// Any project's.
    Instance,
    /// The projects' below one group.
    Group,
    /// One project's.
    Project,
}

impl RunnerType {
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerType::Instance => "instance_type",
            RunnerType::Group => "group_type",
            RunnerType::Project => "project_type",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "instance_type" => Some(RunnerType::Instance),
            "group_type" => Some(RunnerType::Group),
            "project_type" => Some(RunnerType::Project),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Runner {
    pub id: i64,
    pub runner_type: RunnerType,
    pub project_id: Option<ProjectId>,
    /// A group runner's group.
    pub group_id: Option<NamespaceId>,
    pub creator_id: Option<UserId>,
    pub description: String,
    pub tag_list: Vec<String>,
    pub run_untagged: bool,
    pub paused: bool,
    pub locked: bool,
    /// `not_protected` or `ref_protected` (only jobs of protected refs).
    pub access_level: String,
    pub maximum_timeout: Option<i64>,
    pub created_at: Timestamp,
    pub contacted_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewRunner {
    pub token_digest: String,
    pub runner_type: RunnerType,
    pub project_id: Option<ProjectId>,
    pub group_id: Option<NamespaceId>,
    pub creator_id: Option<UserId>,
    pub description: String,
    pub tag_list: Vec<String>,
    pub run_untagged: bool,
    pub paused: bool,
    pub locked: bool,
    pub access_level: String,
    pub maximum_timeout: Option<i64>,
}

/// Fields of a runner its managers may change; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct RunnerUpdate {
    pub description: Option<String>,
    pub tag_list: Option<Vec<String>>,
    pub run_untagged: Option<bool>,
    pub paused: Option<bool>,
    pub locked: Option<bool>,
    pub access_level: Option<String>,
    pub maximum_timeout: Option<Option<i64>>,
}

/// Which runners a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerScope {
    All,
    /// Runners of projects where this user is a Maintainer or Owner, and of groups they own.
    ManagedBy(UserId),
    /// The runners a group's projects can use: the instance's, and the group runners of the
    /// group and of its ancestors (GitLab's `Ci::Runner.group_or_instance_wide`, listed by
    /// `GET /groups/:id/runners`).
    AvailableInGroup(NamespaceId),
}

/// A CI/CD variable of a project (`project_id: Some`) or of the instance (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiVariable {
    pub id: i64,
    /// `None` with `group_id` `None`: an instance variable.
    pub project_id: Option<ProjectId>,
    /// A group's variable, which every project below the group receives.
    pub group_id: Option<NamespaceId>,
    pub key: String,
    /// The value, sealed under the server key.
    pub value_sealed: String,
    pub variable_type: VariableType,
    pub protected: bool,
    pub masked: bool,
    pub raw: bool,
    pub description: Option<String>,
    pub environment_scope: String,
}

/// A project webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectHook {
    pub id: i64,
    pub project_id: ProjectId,
    pub url: String,
    /// `X-Gitlab-Token`, sealed under the server key.
    pub token_sealed: Option<String>,
    pub push_events: bool,
    pub push_events_branch_filter: Option<String>,
    pub tag_push_events: bool,
    pub pipeline_events: bool,
    pub job_events: bool,
    pub enable_ssl_verification: bool,
    pub created_at: Timestamp,
}

/// One webhook request: queued, being sent, delivered or given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookDelivery {
    pub id: i64,
    pub hook_id: i64,
    /// `Push Hook`, `Tag Push Hook`, `Pipeline Hook`, `Job Hook`.
    pub event: String,
    pub uuid: String,
    pub payload: String,
    /// `pending`, `sending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A delivery to queue.
#[derive(Debug, Clone)]
pub struct NewHookDelivery {
    pub hook_id: i64,
    pub event: String,
    pub uuid: String,
    pub payload: String,
}

/// What one attempt at a delivery came to.
#[derive(Debug, Clone)]
pub struct DeliveryAttempt {
    /// `delivered`, `pending` (retry at `next_attempt_at`) or `failed`.
    pub state: String,
    pub next_attempt_at: Timestamp,
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
}

/// A signed-in browser. `id_digest` is the SHA-256 of the cookie's random id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub id_digest: String,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What the database reports to the server's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Jobs in `pending`: the runners' queue depth.
    pub pending_jobs: i64,
    /// Webhook deliveries waiting for their first or next attempt (or being sent).
    pub queued_deliveries: i64,
}
