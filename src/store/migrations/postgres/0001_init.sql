CREATE TABLE users (
    id uuid PRIMARY KEY,
    username text NOT NULL,
    email text NOT NULL,
    password_hash text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    is_active boolean NOT NULL DEFAULT true,
    is_admin boolean NOT NULL DEFAULT false,
    token_version integer NOT NULL DEFAULT 1,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    version integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_display_name_idx ON users (lower(display_name) text_pattern_ops);
CREATE INDEX users_username_prefix_idx ON users (username text_pattern_ops);

CREATE TABLE refresh_tokens (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id uuid NOT NULL,
    token_hash text NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    used_at bigint,
    revoked_at bigint
);
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE projects (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    owner_id uuid NOT NULL REFERENCES users (id),
    event_seq bigint NOT NULL DEFAULT 0,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    version integer NOT NULL DEFAULT 1
);
CREATE INDEX projects_owner_idx ON projects (owner_id);

CREATE TABLE memberships (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('owner', 'member', 'viewer')),
    joined_at bigint NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id, project_id);

CREATE TABLE tasks (
    id uuid PRIMARY KEY,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title text NOT NULL,
    description text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'in_progress', 'done')),
    priority_rank integer NOT NULL DEFAULT 1 CHECK (priority_rank BETWEEN 0 AND 3),
    assignee_id uuid REFERENCES users (id) ON DELETE SET NULL,
    due_date bigint,
    created_by uuid NOT NULL REFERENCES users (id),
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    version integer NOT NULL DEFAULT 1
);
CREATE INDEX tasks_project_created_idx ON tasks (project_id, created_at, id);
CREATE INDEX tasks_project_updated_idx ON tasks (project_id, updated_at, id);
CREATE INDEX tasks_project_due_idx ON tasks (project_id, due_date, id);
CREATE INDEX tasks_project_priority_idx ON tasks (project_id, priority_rank, id);
CREATE INDEX tasks_assignee_idx ON tasks (assignee_id, project_id);

CREATE TABLE events (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    seq bigint NOT NULL,
    type text NOT NULL,
    actor_id uuid,
    created_at bigint NOT NULL,
    data text NOT NULL,
    PRIMARY KEY (project_id, seq)
);

CREATE TABLE idempotency_keys (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key text NOT NULL,
    method text NOT NULL,
    path text NOT NULL,
    request_hash text NOT NULL,
    status INTEGER,
    response_headers text,
    response_body text,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
