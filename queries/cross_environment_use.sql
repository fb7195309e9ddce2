-- id: NHI-ENV-001
-- name: cross_environment_use
-- kind: window
-- severity: high
-- key: credential
-- frameworks: OWASP-NHI:NHI8, NIST-CSF:PR.AA
-- summary: Credential {credential} of {identity} was used in {environments_text} within one window.
-- remediation: Issue separate credentials per environment; rotate this one and find which environment should not hold it.
--
-- One credential used in more than one environment in one window.
SELECT
    COALESCE(credential_identity, identity) AS identity,
    credential,
    window_start,
    window_end,
    MIN(time) AS opened_at,
    array_sort(array_agg(DISTINCT environment)) AS environments,
    array_to_string(array_sort(array_agg(DISTINCT environment)), ' and ') AS environments_text
FROM activity
WHERE credential IS NOT NULL
  AND environment IS NOT NULL
GROUP BY COALESCE(credential_identity, identity), credential, window_start, window_end
HAVING COUNT(DISTINCT environment) > 1
