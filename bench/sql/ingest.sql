-- Queries only the benchmarks run (loaded by bench/ingest.py), kept out of the product.

-- name: bench_jobset
-- A project with one jobset to ingest into.
WITH p AS (
    INSERT INTO projects (name, repository_url) VALUES ($1, $2) RETURNING id
)
INSERT INTO jobsets (project_id, name) SELECT id, $3 FROM p
RETURNING id, project_id;

-- name: bench_dependency_count
SELECT count(*) FROM build_dependencies;

-- name: bench_backend_pid
SELECT pg_backend_pid();
