-- Groups (GitLab's `Group < Namespace`): a namespace of kind 'group' with a parent, members and
-- a visibility. `path_lower` now holds the namespace's FULL path, lowercased (`acme/backend`),
-- so its UNIQUE constraint is GitLab's routes table: a full path names one namespace, a path is
-- unique among its siblings, and a top-level group cannot take a username. A user's namespace
-- is top-level, so its rows are unchanged.
-- `ancestor_ids` lists the ids of every ancestor, root first, as `/1/5/` (`/` at the top):
-- GitLab's `traversal_ids` without the namespace itself; inherited membership reads it.

ALTER TABLE namespaces ADD COLUMN parent_id BIGINT REFERENCES namespaces(id) ON DELETE CASCADE;
ALTER TABLE namespaces ADD COLUMN full_path TEXT NOT NULL DEFAULT '';
ALTER TABLE namespaces ADD COLUMN full_name TEXT NOT NULL DEFAULT '';
ALTER TABLE namespaces ADD COLUMN ancestor_ids TEXT NOT NULL DEFAULT '/';
ALTER TABLE namespaces ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public';
ALTER TABLE namespaces ADD COLUMN description TEXT NOT NULL DEFAULT '';
UPDATE namespaces SET full_path = path, full_name = name;
CREATE INDEX namespaces_parent ON namespaces(parent_id);

-- GitLab's `members` rows with `source_type = 'Namespace'` (app/models/members/group_member.rb).
CREATE TABLE group_members (
    group_id        BIGINT NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access_level    BIGINT NOT NULL,
    expires_at      BIGINT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members(user_id);

-- Every role a user holds in a project, direct or inherited from the project's group and each
-- of its ancestors (GitLab's `project_authorizations`, there a table kept up to date by
-- workers; here a view, so it is never stale). Callers take the highest live row: the ONE
-- definition of "effective role" every permission check reads.
CREATE VIEW project_authorizations AS
SELECT m.project_id, m.user_id, m.access_level, m.expires_at, m.created_at
FROM project_members m
UNION ALL
SELECT p.id AS project_id, g.user_id, g.access_level, g.expires_at, g.created_at
FROM projects p
JOIN namespaces n ON n.id = p.namespace_id
JOIN group_members g
  ON g.group_id = n.id OR n.ancestor_ids LIKE '%/' || CAST(g.group_id AS TEXT) || '/%';

-- The same for groups: a user's roles in a group, direct or inherited from its ancestors.
CREATE VIEW group_authorizations AS
SELECT n.id AS group_id, g.user_id, g.access_level, g.expires_at, g.created_at
FROM namespaces n
JOIN group_members g
  ON g.group_id = n.id OR n.ancestor_ids LIKE '%/' || CAST(g.group_id AS TEXT) || '/%'
WHERE n.kind = 'group';
