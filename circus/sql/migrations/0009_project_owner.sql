-- Who created a project, as Hydra's `owner`: the user's name, or the API key's. Projects
-- from before this column and the declared ones belong to the administrator, named
-- `root` as Hydra names the account its set-up makes.
ALTER TABLE projects ADD COLUMN owner text NOT NULL DEFAULT 'root';
