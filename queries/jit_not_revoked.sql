-- id: NHI-JIT-001
-- name: jit_not_revoked
-- kind: state
-- severity: high
-- key: credential
-- frameworks: OWASP-NHI:NHI7, OWASP-ASI:ASI03, NIST-CSF:PR.AA
-- summary: JIT token {credential} of {identity} is still active more than {grace} after its task {task} completed at {task_completed_at}.
-- remediation: Revoke the token and make task completion revoke its JIT credentials automatically.
--
-- A jit_token issued for a task that completed, still active after the grace period.
SELECT
    sid,
    identity,
    credential,
    task,
    issued_at,
    task_completed_at,
    GREATEST(task_completed_at + ${grace}, issued_at) AS opened_at,
    task_completed_at + ${grace} >= issued_at AS strict
FROM credentials
WHERE kind = 'jit_token'
  AND task IS NOT NULL
  AND task_completed_at IS NOT NULL
