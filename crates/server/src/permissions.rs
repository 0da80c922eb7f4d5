//! Who may do what to a project: one table of role × action, consulted by every handler (API,
//! git HTTP and, later, the web UI). Handlers never compare access levels themselves.
//!
//! Visibility rules mirror GitLab: a private project is invisible (404, never 403) to
//! non-members; internal projects are readable by any signed-in user; public projects by
//! anyone. Instance admins may do everything.

use pipewright_core::{AccessLevel, ProjectCreationLevel, SubgroupCreationLevel, Visibility};

/// Something a caller may want to do to a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See that the project exists, read its settings and members.
    ReadProject,
    /// Clone and fetch; read branches, tags, files and commits.
    ReadRepository,
    /// Push to unprotected branches.
    PushCode,
    /// Change name, description, default branch.
    UpdateProject,
    /// Change visibility.
    ChangeVisibility,
    DeleteProject,
    /// Add, change and remove members below Owner.
    ManageMembers,
    /// Grant or revoke the Owner role.
    ManageOwners,
    ManageProtectedBranches,
    /// List, create and revoke pipeline trigger tokens (GitLab's `manage_trigger`).
    ManageTriggers,
    /// See pipelines and jobs.
    ReadPipelines,
    /// See the values of pipeline (trigger) variables: Maintainers and Owners only.
    ReadPipelineVariableValues,
    /// Run a pipeline (`POST /projects/:id/pipeline`, a trigger's owner).
    CreatePipeline,
    DeletePipelines,
    /// Cancel, retry and play jobs and pipelines (GitLab's `update_build`).
    UpdatePipelines,
    /// Delete a job's artifacts, erase a job.
    DeleteArtifacts,
    /// See and change the job token scope and its allowlist.
    ManageJobTokenScope,
    /// See and change CI/CD variables (GitLab's `admin_cicd_variables`).
    ManageVariables,
    /// See and change webhooks and their deliveries.
    ManageHooks,
    /// Create, edit and remove the project's runners.
    ManageRunners,
    /// Edit, delete and take over anyone's pipeline schedule (GitLab's `admin_pipeline`);
    /// a schedule's own owner needs only `UpdatePipelines`.
    AdministerPipelineSchedules,
}

/// The least role an action needs, and whether non-members can do it on readable projects.
fn minimum_role(action: Action) -> (AccessLevel, bool) {
    use AccessLevel::*;
    match action {
        Action::ReadProject => (Guest, true),
        Action::ReadRepository => (Reporter, true),
        Action::PushCode => (Developer, false),
        Action::UpdateProject => (Maintainer, false),
        Action::ChangeVisibility => (Owner, false),
        Action::DeleteProject => (Owner, false),
        Action::ManageMembers => (Maintainer, false),
        Action::ManageOwners => (Owner, false),
        Action::ManageProtectedBranches => (Maintainer, false),
        Action::ManageTriggers => (Maintainer, false),
        Action::ReadPipelines => (Reporter, true),
        Action::ReadPipelineVariableValues => (Maintainer, false),
        Action::CreatePipeline => (Developer, false),
        Action::DeletePipelines => (Owner, false),
        Action::UpdatePipelines => (Developer, false),
        Action::DeleteArtifacts => (Maintainer, false),
        Action::ManageJobTokenScope => (Maintainer, false),
        Action::ManageVariables => (Maintainer, false),
        Action::ManageHooks => (Maintainer, false),
        Action::ManageRunners => (Maintainer, false),
        Action::AdministerPipelineSchedules => (Maintainer, false),
    }
}

impl Action {
    /// Whether a non-member who can see the project may do this (reading). Everything else
    /// needs a role, so an anonymous caller is asked to authenticate first.
    pub fn open_to_readers(self) -> bool {
        minimum_role(self).1
    }
}

/// What is known about one caller's relation to one project.
#[derive(Debug, Clone, Copy)]
pub struct ProjectAccess {
    pub visibility: Visibility,
    /// The caller's membership role, if a member.
    pub role: Option<AccessLevel>,
    pub authenticated: bool,
    pub admin: bool,
}

impl ProjectAccess {
    /// Whether the project is visible at all; when it is not, callers answer 404.
    pub fn can_see(&self) -> bool {
        self.admin
            || self.role.is_some()
            || match self.visibility {
                Visibility::Public => true,
                Visibility::Internal => self.authenticated,
                Visibility::Private => false,
            }
    }

    pub fn can(&self, action: Action) -> bool {
        if self.admin {
            return true;
        }
        if !self.can_see() {
            return false;
        }
        let (minimum, open_to_readers) = minimum_role(action);
        // A member may always do what a non-member may: a Guest of a public project reads its
        // code and pipelines like any visitor.
        self.role.is_some_and(|role| role >= minimum)
            || (open_to_readers && self.visible_to_non_members())
    }

    /// Whether someone who is no member would see the project.
    fn visible_to_non_members(&self) -> bool {
        match self.visibility {
            Visibility::Public => true,
            Visibility::Internal => self.authenticated,
            Visibility::Private => false,
        }
    }

    /// The role to report in `permissions.project_access`.
    pub fn role(&self) -> Option<AccessLevel> {
        self.role
    }
}

/// Something a caller may want to do to a group, with the least role GitLab requires.
/// GitLab: app/policies/group_policy.rb (checked against its source): `create_projects` by the
/// group's `project_creation_level` (see [`GroupAccess::can`]); `create_subgroup` for Owners,
/// and for Maintainers under `subgroup_creation_level` `maintainer`; `admin_group`,
/// `admin_group_member`, `admin_cicd_variables`, `admin_runners`/`create_runners` and
/// `remove_group` for Owners. Pipewright does not transfer groups or projects (GitLab's
/// `transfer_projects`: Maintainers who may create projects in the target group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAction {
    /// See the group, and those of its subgroups and projects the caller may see.
    ReadGroup,
    /// See its members (GitLab's `read_group_member`).
    ReadMembers,
    /// Create a project in the group (`create_projects`).
    CreateProjects,
    /// Create a subgroup (`create_subgroup`).
    CreateSubgroup,
    /// Change the group's name, path, description, visibility; its CI/CD variables
    /// (`admin_cicd_variables`) and its runners (`admin_runners`, `create_runners`): all
    /// Owners' in GitLab.
    AdminGroup,
    /// Add, change and remove members, Owners included (`admin_group_member`).
    ManageMembers,
    /// Delete the group (`remove_group`).
    RemoveGroup,
    /// List and read the runners its projects can use (`read_group_runners`, which
    /// app/policies/group_policy.rb gives to `maintainer`), but not change them.
    ReadRunners,
}

/// What is known about one caller's relation to one group: the same facts as for a project
/// (the role is the highest of the group's and its ancestors' memberships), and whether the
/// caller may see a project in it or below it.
#[derive(Debug, Clone, Copy)]
pub struct GroupAccess {
    pub access: ProjectAccess,
    /// GitLab's `has_projects` (app/policies/group_policy.rb): a user who sees a project in the
    /// group or a subgroup may read the group itself — so a member of `acme/backend`'s
    /// project sees `acme` — but not its members (`can_read_group_member?`), nor anything
    /// else in it that is not theirs.
    pub sees_projects_below: bool,
    /// The group's effective `project_creation_level` (its own, else the instance's
    /// `default_project_creation`).
    pub project_creation: ProjectCreationLevel,
    pub subgroup_creation: SubgroupCreationLevel,
}

impl GroupAccess {
    /// Whether the group is visible at all; when it is not, callers answer 404.
    pub fn can_see(&self) -> bool {
        self.access.can_see() || self.sees_projects_below
    }

    pub fn can(&self, action: GroupAction) -> bool {
        let a = &self.access;
        let at_least = |least: AccessLevel| a.role.is_some_and(|role| role >= least);
        match action {
            // GitLab: `rule { admin }.enable :create_projects`, the roles by level, and
            // `create_projects_disabled` (`Group.prevent_project_creation?`, app/models/group.rb)
            // preventing it for everyone, administrators too, under `noone`, and for
            // non-administrators under `administrator`.
            GroupAction::CreateProjects => match self.project_creation {
                ProjectCreationLevel::NoOne => false,
                level => a.admin || level.least_role().is_some_and(at_least),
            },
            _ if a.admin => true,
            GroupAction::ReadGroup => self.can_see(),
            // GitLab: `can_read_group_member?` is false for a private group the user has no
            // role in, whoever may read the group.
            GroupAction::ReadMembers => {
                self.can_see() && (a.role.is_some() || a.visibility != Visibility::Private)
            }
            GroupAction::CreateSubgroup => at_least(self.subgroup_creation.least_role()),
            GroupAction::ReadRunners => at_least(AccessLevel::Maintainer),
            GroupAction::AdminGroup | GroupAction::ManageMembers | GroupAction::RemoveGroup => {
                at_least(AccessLevel::Owner)
            }
        }
    }

    pub fn role(&self) -> Option<AccessLevel> {
        self.access.role
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(
        visibility: Visibility,
        role: Option<AccessLevel>,
        authenticated: bool,
    ) -> ProjectAccess {
        ProjectAccess {
            visibility,
            role,
            authenticated,
            admin: false,
        }
    }

    #[test]
    fn private_projects_are_invisible_to_non_members() {
        let a = access(Visibility::Private, None, true);
        assert!(!a.can_see());
        assert!(!a.can(Action::ReadProject));
    }

    #[test]
    fn the_role_table() {
        use AccessLevel::*;
        let cases = [
            (Guest, Action::ReadProject, true),
            (Guest, Action::ReadRepository, false),
            (Reporter, Action::ReadRepository, true),
            (Reporter, Action::PushCode, false),
            (Developer, Action::PushCode, true),
            (Developer, Action::ManageMembers, false),
            (Maintainer, Action::ManageMembers, true),
            (Maintainer, Action::ManageOwners, false),
            (Maintainer, Action::DeleteProject, false),
            (Owner, Action::DeleteProject, true),
            (Maintainer, Action::ManageProtectedBranches, true),
            (Developer, Action::ManageTriggers, false),
            (Maintainer, Action::ManageTriggers, true),
        ];
        for (role, action, expected) in cases {
            let a = access(Visibility::Private, Some(role), true);
            assert_eq!(a.can(action), expected, "{role:?} {action:?}");
        }
    }

    #[test]
    fn public_projects_are_readable_but_not_writable_by_anyone() {
        let anon = access(Visibility::Public, None, false);
        assert!(anon.can(Action::ReadRepository));
        assert!(!anon.can(Action::PushCode));
        let internal_anon = access(Visibility::Internal, None, false);
        assert!(!internal_anon.can_see());
        assert!(access(Visibility::Internal, None, true).can(Action::ReadRepository));
    }

    #[test]
    fn members_may_do_what_visitors_may() {
        use AccessLevel::*;
        let guest = |visibility| access(visibility, Some(Guest), true);
        assert!(guest(Visibility::Public).can(Action::ReadRepository));
        assert!(guest(Visibility::Public).can(Action::ReadPipelines));
        assert!(guest(Visibility::Internal).can(Action::ReadPipelines));
        assert!(!guest(Visibility::Private).can(Action::ReadPipelines));
        assert!(!guest(Visibility::Public).can(Action::PushCode));
    }

    #[test]
    fn admins_can_do_everything() {
        let a = ProjectAccess {
            visibility: Visibility::Private,
            role: None,
            authenticated: true,
            admin: true,
        };
        assert!(a.can(Action::DeleteProject));
    }

    /// A group under GitLab's defaults (`developer`, `maintainer`).
    fn group(visibility: Visibility, role: Option<AccessLevel>) -> GroupAccess {
        GroupAccess {
            access: access(visibility, role, true),
            sees_projects_below: false,
            project_creation: ProjectCreationLevel::Developer,
            subgroup_creation: SubgroupCreationLevel::Maintainer,
        }
    }

    #[test]
    fn the_group_role_table() {
        use AccessLevel::*;
        use GroupAction::*;
        // The least role of each action (GitLab's group_policy.rb under default settings).
        let table = [
            (ReadGroup, Guest),
            (ReadMembers, Guest),
            (CreateProjects, Developer),
            (CreateSubgroup, Maintainer),
            (AdminGroup, Owner),
            (ManageMembers, Owner),
            (RemoveGroup, Owner),
        ];
        for (action, least) in table {
            for role in [Guest, Reporter, Developer, Maintainer, Owner] {
                let g = group(Visibility::Private, Some(role));
                assert_eq!(g.can(action), role >= least, "{role:?} {action:?}");
            }
        }
        let stranger = group(Visibility::Private, None);
        assert!(!stranger.can_see());
        assert!(table.iter().all(|(action, _)| !stranger.can(*action)));
        let public = GroupAccess {
            access: access(Visibility::Public, None, false),
            ..group(Visibility::Public, None)
        };
        assert!(public.can(ReadGroup));
        assert!(public.can(ReadMembers));
        assert!(!public.can(CreateProjects));
    }

    #[test]
    fn the_creation_levels_decide_who_creates_projects_and_subgroups() {
        use AccessLevel::*;
        use ProjectCreationLevel as P;
        // (level, the least role that may create a project; None: no role may).
        let levels = [
            (P::Developer, Some(Developer)),
            (P::Maintainer, Some(Maintainer)),
            (P::Owner, Some(Owner)),
            (P::NoOne, None),
            (P::Administrator, None),
        ];
        for (level, least) in levels {
            for role in AccessLevel::ALL {
                let g = GroupAccess {
                    project_creation: level,
                    ..group(Visibility::Private, Some(role))
                };
                let expected = least.is_some_and(|least| role >= least);
                assert_eq!(
                    g.can(GroupAction::CreateProjects),
                    expected,
                    "{level:?} {role:?}"
                );
            }
            // Administrators may, except under `noone` (Group.prevent_project_creation?).
            let admin = GroupAccess {
                access: ProjectAccess {
                    admin: true,
                    ..access(Visibility::Private, None, true)
                },
                project_creation: level,
                ..group(Visibility::Private, None)
            };
            let expected = level != P::NoOne;
            assert_eq!(
                admin.can(GroupAction::CreateProjects),
                expected,
                "admin {level:?}"
            );
            assert!(admin.can(GroupAction::CreateSubgroup));
        }
        let owners_only = |role| GroupAccess {
            subgroup_creation: SubgroupCreationLevel::Owner,
            ..group(Visibility::Private, Some(role))
        };
        assert!(!owners_only(Maintainer).can(GroupAction::CreateSubgroup));
        assert!(owners_only(Owner).can(GroupAction::CreateSubgroup));
    }

    #[test]
    fn a_private_group_above_a_project_of_yours_is_readable_but_its_members_are_not() {
        let above = GroupAccess {
            sees_projects_below: true,
            ..group(Visibility::Private, None)
        };
        assert!(above.can_see());
        assert!(above.can(GroupAction::ReadGroup));
        assert!(!above.can(GroupAction::ReadMembers));
        assert!(!above.can(GroupAction::CreateProjects));
    }
}
