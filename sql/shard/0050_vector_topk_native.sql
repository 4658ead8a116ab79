-- 0050_vector_topk_native.sql — shard database (unde_shard), issue 9: the
-- vector branch as one C function, where the shard's PostgreSQL can load it.
--
-- unde_vector_install(library) creates unde_vector_topk from the module
-- src/shard/pg/unde_vector.c (installed as $(pkglibdir)/unde_vector.so),
-- or replaces it; unde-db calls it after every shard migration with the
-- module's path, so a shard migrated before the module was there gets it
-- on the next `unde-db migrate shard`. It returns NULL when the function
-- is there, else why not ("SQLSTATE: message": the library is not on this
-- server or was built for another PostgreSQL, or the caller may not
-- create a C function, which only a superuser may), and unde-shard search
-- then runs the same branch in SQL.
-- The path must be the same on every node of the shard's cluster: a
-- replica promoted without it fails the native call, and search falls
-- back to SQL (logged).
CREATE FUNCTION unde_vector_install(library text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION unde_vector_topk(messages regclass, conversation uuid,'
        ' query vector, model text, cmin int, cmax int, radius int, metric text, k int)'
        ' RETURNS TABLE(id uuid, distance float8)'
        ' AS %L, %L LANGUAGE C STABLE PARALLEL RESTRICTED ROWS 20', library, 'unde_vector_topk');
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
