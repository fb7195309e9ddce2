-- id: NHI-ROT-001
-- name: unrotated_secret
-- kind: state
-- severity: high
-- key: credential
-- frameworks: OWASP-NHI:NHI7, NIST-CSF:PR.AA, NIST-AI-RMF:MANAGE
-- posture: rotation_overdue
-- summary: Static {kind} {credential} of {identity} was last issued or rotated at {last_rotated_at}, more than {max_age} ago.
-- remediation: Rotate the secret now and automate rotation well inside the maximum age; prefer short-lived or workload-bound credentials.
--
-- An active static credential older than max_age since its issue or last rotation.
SELECT
    sid,
    identity,
    credential,
    kind,
    COALESCE(rotated_at, issued_at) AS last_rotated_at,
    COALESCE(rotated_at, issued_at) + ${max_age} AS opened_at,
    true AS strict
FROM credentials
WHERE kind IN ('api_key', 'client_secret', 'password', 'ssh_key', 'certificate')
