-- id: NHI-STALE-001
-- name: dormant_credential
-- kind: state
-- severity: medium
-- key: credential
-- frameworks: OWASP-NHI:NHI1, OWASP-NHI:NHI7, NIST-CSF:PR.AA
-- summary: Credential {credential} of {identity} has not been used for more than {period} (last use or issue: {last_seen_at}).
-- remediation: Revoke the unused credential; if it is still needed, document the owner and the schedule that uses it.
--
-- An active credential unused for the period, counting from issue when never used.
SELECT
    sid,
    identity,
    credential,
    kind,
    last_used_at,
    issued_at,
    COALESCE(last_used_at, issued_at) AS last_seen_at,
    COALESCE(last_used_at, issued_at) + ${period} AS opened_at,
    true AS strict
FROM credentials
