-- id: NHI-SHARE-001
-- name: shared_credential
-- kind: window
-- severity: high
-- key: credential
-- frameworks: OWASP-NHI:NHI9, NIST-CSF:PR.AA
-- summary: Credential {credential} of {identity} was used from {workload_count} workloads in one window ({workloads_text}); at most {min_workloads} minus one are expected.
-- remediation: Give each workload its own credential (or workload identity) and rotate the shared one.
--
-- One credential used from at least min_workloads distinct workloads in one window.
SELECT
    COALESCE(credential_identity, identity) AS identity,
    credential,
    window_start,
    window_end,
    MIN(time) AS opened_at,
    COUNT(DISTINCT workload) AS workload_count,
    array_sort(array_agg(DISTINCT workload)) AS workloads,
    array_to_string(array_sort(array_agg(DISTINCT workload)), ', ') AS workloads_text
FROM activity
WHERE credential IS NOT NULL
  AND workload IS NOT NULL
GROUP BY COALESCE(credential_identity, identity), credential, window_start, window_end
HAVING COUNT(DISTINCT workload) >= ${min_workloads}
