-- Evaluation ingest writes a membership row and a few dependency rows per job, and every
-- row's foreign-key checks lock the referenced builds one by one: half the time of a
-- 100 000-job ingest. These rows only ever link builds of one jobset, so they go when
-- their builds go: a statement-level trigger deletes them set-wise instead of per-row
-- cascades. (Membership keeps its check on the evaluation: one row, locked once.)

ALTER TABLE build_dependencies
    DROP CONSTRAINT build_dependencies_build_id_fkey,
    DROP CONSTRAINT build_dependencies_dependency_id_fkey;
ALTER TABLE aggregate_constituents
    DROP CONSTRAINT aggregate_constituents_aggregate_id_fkey,
    DROP CONSTRAINT aggregate_constituents_constituent_id_fkey;
ALTER TABLE evaluation_builds DROP CONSTRAINT evaluation_builds_build_id_fkey;
-- The unique (jobset_id, job, drv_path) index finds a job's builds as well; one index
-- fewer to fill per new build.
DROP INDEX builds_job_idx;
CREATE INDEX aggregate_constituents_constituent_idx ON aggregate_constituents (constituent_id);

CREATE FUNCTION builds_forget_links() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM evaluation_builds e USING gone g WHERE e.build_id = g.id;
    DELETE FROM build_dependencies d USING gone g WHERE d.build_id = g.id;
    DELETE FROM build_dependencies d USING gone g WHERE d.dependency_id = g.id;
    DELETE FROM aggregate_constituents a USING gone g WHERE a.aggregate_id = g.id;
    DELETE FROM aggregate_constituents a USING gone g WHERE a.constituent_id = g.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER builds_forget_links
    AFTER DELETE ON builds
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION builds_forget_links();
