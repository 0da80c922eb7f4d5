-- A group's creation levels (GitLab's `namespaces.project_creation_level` and
-- `subgroup_creation_level`, as the words of lib/gitlab/access.rb's string options).
-- `project_creation_level` NULL follows the instance's `default_project_creation`, as GitLab's
-- `Group#project_creation_level` (`super || default_project_creation`); existing and new
-- groups let Maintainers create subgroups (GitLab's column default, MAINTAINER_SUBGROUP_ACCESS).
ALTER TABLE namespaces ADD COLUMN project_creation_level TEXT;
ALTER TABLE namespaces ADD COLUMN subgroup_creation_level TEXT NOT NULL DEFAULT 'maintainer';
